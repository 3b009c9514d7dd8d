/**
 * RestoreInput `openInto` (agent/read-backup): an object read straight into a tool's stdin — for zstd,
 * the decompressor writes into the tool's pipe itself — with the same checks as `open`: the stored
 * bytes authenticated and checksummed, the plaintext's size against the manifest, and on any failure
 * the tool's input ends (it never waits for ever) and the read rejects.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { openBackup } from '#agent/read-backup';
import { readManifest } from '#core/catalog';
import { IntegrityError } from '#core/errors';
import type { Job } from '#core/plan';
import { testRuntime } from '#test/support/runtime';

/** ~6 MB the command source backs up: compressible, so zstd's output differs from its input. */
const PAYLOAD_SCRIPT = 'for i in $(seq 1 200000); do echo "row $i of the strongbox test payload"; done';
let dir: string | undefined;

afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function backedUp(algorithm: 'zstd' | 'none') {
  const made = await testRuntime({
    jobs: [
      {
        name: 'into',
        compression: { algorithm },
        source: {
          kind: 'command',
          backup: { argv: ['sh', '-c', PAYLOAD_SCRIPT] },
          restore: { argv: ['true'] },
        },
      },
    ],
  });
  dir = made.dir;
  const { runtime } = made;
  const result = await runBackup(runtime, runtime.plan.jobs[0] as Job);
  const manifest = await readManifest(runtime.vault, 'into', result.backupId);
  const payload = await new Promise<Buffer>((resolve) => {
    const sh = spawn('sh', ['-c', PAYLOAD_SCRIPT]);
    const chunks: Buffer[] = [];
    sh.stdout.on('data', (c: Buffer) => chunks.push(c));
    sh.on('close', () => resolve(Buffer.concat(chunks)));
  });
  return { runtime, manifest, payload, vaultDir: join(made.dir, 'vault') };
}

/** `sha256sum` reading its stdin: the digest of what reached it, once its input ended. */
function digestTool() {
  const child = spawn('sha256sum', [], { stdio: ['pipe', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const digest = new Promise<string>((resolve) => child.on('close', () => resolve(out.split(' ')[0] ?? '')));
  return { stdin: child.stdin, digest };
}

async function storedFiles(root: string): Promise<string[]> {
  const names = await readdir(root, { recursive: true });
  return names.filter((n) => n.endsWith('.sbx')).map((n) => join(root, n));
}

describe('reading an object into a tool', () => {
  it.each(['zstd', 'none'] as const)('hands a %s object to the tool whole and checked', async (algorithm) => {
    const { runtime, manifest, payload } = await backedUp(algorithm);
    const reader = await openBackup(runtime, manifest, new AbortController().signal);
    const tool = digestTool();

    await reader.openInto(reader.objects[0]?.name as string, tool.stdin);

    expect(await tool.digest).toBe(createHash('sha256').update(payload).digest('hex'));
    expect(await reader.finish()).toMatchObject({ sourceBytes: payload.length });
  });

  it('rejects with an IntegrityError and ends the tool input when a stored byte is flipped', async () => {
    const { runtime, manifest, vaultDir } = await backedUp('zstd');
    const [file] = await storedFiles(vaultDir);
    const bytes = await readFile(file as string);
    const middle = Math.floor(bytes.length / 2);
    bytes.writeUInt8((bytes.readUInt8(middle) ^ 0x01) & 0xff, middle);
    await writeFile(file as string, bytes);
    const reader = await openBackup(runtime, manifest, new AbortController().signal);
    const tool = digestTool();

    await expect(reader.openInto(reader.objects[0]?.name as string, tool.stdin)).rejects.toThrow(
      IntegrityError,
    );
    // The tool's input ended: it finished instead of waiting for the rest.
    await tool.digest;
  });

  it('rejects an object the backup does not have, and ends the tool input', async () => {
    const { runtime, manifest } = await backedUp('zstd');
    const reader = await openBackup(runtime, manifest, new AbortController().signal);
    const tool = digestTool();

    await expect(reader.openInto('no-such-object', tool.stdin)).rejects.toThrow(
      /has no object 'no-such-object'/,
    );
    await tool.digest;
  });

  it('rejects when the plaintext is not as long as the manifest says', async () => {
    const { runtime, manifest } = await backedUp('zstd');
    const object = manifest.objects[0] as (typeof manifest.objects)[number];
    const altered = { ...manifest, objects: [{ ...object, sourceBytes: object.sourceBytes + 1 }] };
    const reader = await openBackup(runtime, altered, new AbortController().signal);
    const tool = digestTool();

    await expect(reader.openInto(reader.objects[0]?.name as string, tool.stdin)).rejects.toThrow(
      `restored ${object.sourceBytes} bytes, the source produced ${object.sourceBytes + 1}`,
    );
    await tool.digest;
  });
});
