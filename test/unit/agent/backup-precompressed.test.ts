/**
 * Objects a source's server already compressed (SourceObject.compressed, agent/backup.ts): stored without
 * compressing again, restoring to the source's bytes, with the uncompressed size the source reports; and
 * refused — nothing stored — when they are not compressed exactly as the job's manifest will say.
 */
import { execFileSync } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runBackup } from '#agent/backup';
import { openBackup } from '#agent/read-backup';
import { readManifest } from '#core/catalog';
import type { Job } from '#core/plan';
import type { SourceObject } from '#core/ports';
import { testRuntime } from '#test/support/runtime';

const fake = vi.hoisted(() => ({ object: undefined as unknown as () => SourceObject }));
vi.mock('#agent/sources/index', () => ({
  sourceDriver: () => ({
    backup: async () => ({
      objects: (async function* () {
        yield fake.object();
      })(),
      done: Promise.resolve({
        details: { kind: 'command', command: 'true', streamBytes: 0, streamSha256: '0'.repeat(64) },
        tools: {},
      }),
    }),
  }),
}));

const payload = Buffer.from('the server compressed this tar '.repeat(1000));
const zstdFrame = execFileSync('zstd', ['-q', '-c', '-1'], { input: payload });
let dir: string | undefined;

afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function setup() {
  const made = await testRuntime({
    jobs: [
      { name: 'srv', source: { kind: 'command', backup: { argv: ['true'] }, restore: { argv: ['true'] } } },
    ],
  });
  dir = made.dir;
  return { runtime: made.runtime, job: made.runtime.plan.jobs[0] as Job };
}

describe('an object the source compressed already', () => {
  it('is stored without compressing again and restores to the bytes the server compressed', async () => {
    const { runtime, job } = await setup();
    fake.object = () => ({
      name: 'base.tar',
      stream: Readable.from([zstdFrame]),
      compressed: { algorithm: 'zstd', level: 1, sourceBytes: () => payload.length },
    });

    const result = await runBackup(runtime, job);

    const manifest = await readManifest(runtime.vault, 'srv', result.backupId);
    expect(manifest.objects[0]).toMatchObject({ name: 'base.tar.zst.sbx', sourceBytes: payload.length });
    const reader = await openBackup(runtime, manifest, new AbortController().signal);
    expect((await buffer(await reader.open('base.tar'))).equals(payload)).toBe(true);
    await reader.finish();
  });

  it.each([
    ['another algorithm', 'gzip', 1],
    ['another level', 'zstd', 3],
  ] as const)(
    'is refused when compressed with %s, and nothing is stored',
    async (_name, algorithm, level) => {
      const { runtime, job } = await setup();
      fake.object = () => ({
        name: 'base.tar',
        stream: Readable.from([zstdFrame]),
        compressed: { algorithm, level, sourceBytes: () => payload.length },
      });

      await expect(runBackup(runtime, job)).rejects.toThrow(
        `sent base.tar compressed with ${algorithm} level ${level}, not the job's zstd level 1`,
      );
      const left = await readdir(join(dir as string, 'vault'), { recursive: true }).catch(() => []);
      expect(left.filter((f) => f.endsWith('.sbx') || f.endsWith('manifest.json'))).toEqual([]);
    },
  );
});
