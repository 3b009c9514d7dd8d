/**
 * ZstdTarWatch (agent/sources/postgres-physical/zstd-tar-watch.ts) over real zstd: the compressed
 * archive passes unchanged while the tar's facts are read from a decompressed side copy, and an archive
 * that does not decompress (corrupt, cut) errors the stream instead of ending it.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ZstdTarWatch } from '#agent/sources/postgres-physical/zstd-tar-watch';

const sh = promisify(execFile);
let dir: string;
let tar: Buffer;
let compressed: Buffer;
const LABEL = 'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: 1\n';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-zstd-tar-'));
  const tree = join(dir, 'tree');
  await mkdir(join(tree, 'pg_wal'), { recursive: true });
  await mkdir(join(tree, 'base'), { recursive: true });
  await writeFile(join(tree, 'backup_label'), LABEL);
  // Incompressible data, several MiB, so the stream takes many chunks and the side pipe fills.
  await writeFile(
    join(tree, 'base', '16384'),
    Buffer.from(Array.from({ length: 6 << 20 }, (_, i) => (i * 7919) % 251)),
  );
  await writeFile(join(tree, 'pg_wal', '000000010000000000000002'), Buffer.alloc(1 << 20, 1));
  await sh('tar', ['-c', '-f', join(dir, 'base.tar'), '-C', tree, 'backup_label', 'base', 'pg_wal']);
  await sh('zstd', ['-q', '-1', join(dir, 'base.tar'), '-o', join(dir, 'base.tar.zst')]);
  tar = await readFile(join(dir, 'base.tar'));
  compressed = await readFile(join(dir, 'base.tar.zst'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Feeds `data` in 32 KiB pieces, as the server's CopyData messages come, and collects the output. */
async function watch(data: Buffer): Promise<{ out: Buffer; watcher: ZstdTarWatch }> {
  const pieces = Array.from({ length: Math.ceil(data.length / 32768) }, (_, i) =>
    data.subarray(i * 32768, (i + 1) * 32768),
  );
  const watcher = new ZstdTarWatch();
  const collected = buffer(watcher);
  collected.catch(() => {});
  await pipeline(Readable.from(pieces), watcher);
  return { out: await collected, watcher };
}

describe('ZstdTarWatch', () => {
  it('passes the compressed bytes unchanged and learns the facts of the tar inside', async () => {
    const { out, watcher } = await watch(compressed);

    expect(out.equals(compressed)).toBe(true);
    expect(watcher.tarBytes).toBe(tar.length);
    expect(watcher.facts).toMatchObject({
      backupLabel: LABEL,
      walSegments: ['000000010000000000000002'],
      fileCount: 3,
      fileBytes: LABEL.length + (6 << 20) + (1 << 20),
    });
  });

  it.each([
    [
      'corrupt',
      () =>
        Buffer.concat([compressed.subarray(0, 4096), Buffer.alloc(4096, 0xff), compressed.subarray(8192)]),
    ],
    ['cut short', () => compressed.subarray(0, Math.floor(compressed.length / 2))],
  ])('errors on an archive that is %s instead of ending', async (_name, bad) => {
    await expect(watch(bad())).rejects.toThrow(/zstd -d/);
  });
});
