/**
 * The WAL archive in a vault (agent/wal-archive, format strongbox-wal-v1) and the `wal-push` /
 * `wal-fetch` commands PostgreSQL runs: durable before acknowledged, idempotent by content, loud on a
 * conflict, authenticated on the way back, non-zero for a file that is not archived and fatal (126) for
 * one that fails authentication.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultyVault } from '#adapters/vaults/faulty';
import { VaultWalArchive } from '#agent/wal-archive';
import { IntegrityError, NotFoundError, PlanError, VaultError } from '#core/errors';
import type { Vault } from '#core/ports';
import { strongbox } from '#test/support/cli';
import { testRuntime } from '#test/support/runtime';

const SEGMENT = '000000010000000000000003';
const NEXT = '000000010000000000000004';
const job = { name: 'pitr', source: { kind: 'postgres-physical' } };
const dirs: string[] = [];

afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function archiveIn(wrap?: (vault: Vault) => Vault) {
  const { runtime, dir, fileVault } = await testRuntime({ jobs: [job] });
  dirs.push(dir);
  const vault = wrap ? wrap(fileVault) : fileVault;
  return {
    archive: new VaultWalArchive(vault, runtime.keys, 'pitr', { compression: 'zstd' }),
    dir,
    runtime,
    fileVault,
  };
}

async function read(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A WAL-like segment: 1 MiB, half random (compresses little), half zeros. */
function segment(): Buffer {
  return Buffer.concat([randomBytes(512 * 1024), Buffer.alloc(512 * 1024)]);
}

describe('VaultWalArchive', () => {
  it('stores a file under wal/<job>/<timeline>/<name> and gives back exactly its bytes', async () => {
    const { archive, dir } = await archiveIn();
    const data = segment();

    expect(await archive.push(SEGMENT, () => Readable.from([data]))).toBe('stored');

    expect(await read(await archive.fetch(SEGMENT))).toEqual(data);
    const stored = await readFile(join(dir, 'vault', 'wal', 'pitr', '00000001', SEGMENT));
    expect(stored.subarray(0, 8).toString('latin1')).toBe('SBXWAL1\n');
    expect(stored.includes(data.subarray(0, 64))).toBe(false);
  });

  it('answers exists for the same content again, and refuses other content without changing the archive', async () => {
    const { archive } = await archiveIn();
    const data = segment();
    await archive.push(SEGMENT, () => Readable.from([data]));

    expect(await archive.push(SEGMENT, () => Readable.from([Buffer.from(data)]))).toBe('exists');
    const other = Buffer.from(data);
    other[1000] = (other[1000] as number) ^ 1;
    await expect(archive.push(SEGMENT, () => Readable.from([other]))).rejects.toThrow(IntegrityError);
    expect(await read(await archive.fetch(SEGMENT))).toEqual(data);
  });

  it('says NotFound for a file that is not archived', async () => {
    const { archive } = await archiveIn();
    await expect(archive.fetch(NEXT)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('fails authentication for a flipped byte, and for an object moved to another name', async () => {
    const { archive, dir } = await archiveIn();
    await archive.push(SEGMENT, () => Readable.from([segment()]));
    const path = join(dir, 'vault', 'wal', 'pitr', '00000001', SEGMENT);
    const stored = await readFile(path);
    await writeFile(join(dir, 'vault', 'wal', 'pitr', '00000001', NEXT), stored);
    stored[stored.length - 100] = (stored[stored.length - 100] as number) ^ 0x40;
    await writeFile(path, stored);

    await expect(read(await archive.fetch(SEGMENT))).rejects.toThrow(IntegrityError);
    await expect(archive.fetch(NEXT)).rejects.toThrow(IntegrityError);
  });

  it('rejects names that are not WAL files', async () => {
    const { archive } = await archiveIn();
    await expect(
      archive.push('../../etc/passwd', () => Readable.from([Buffer.alloc(1)])),
    ).rejects.toBeInstanceOf(PlanError);
  });

  it('fails a push during a vault outage and leaves nothing archived', async () => {
    const { archive, fileVault } = await archiveIn(
      (vault) => new FaultyVault(vault, { put: [{ fail: 'cut', afterBytes: 1000 }] }),
    );

    await expect(archive.push(SEGMENT, () => Readable.from([segment()]))).rejects.toBeInstanceOf(VaultError);
    const left: string[] = [];
    for await (const object of fileVault.list('wal/')) left.push(object.key);
    expect(left).toEqual([]);
  });

  it('lists archived files in WAL order, history files with their timeline', async () => {
    const { archive } = await archiveIn();
    for (const name of [NEXT, '00000002.history', SEGMENT, '000000020000000000000004'])
      await archive.push(name, () => Readable.from([Buffer.from(name)]));

    const names: string[] = [];
    for await (const entry of archive.list()) names.push(`${entry.timeline}:${entry.name}`);

    expect(names).toEqual([`1:${SEGMENT}`, `1:${NEXT}`, '2:00000002.history', '2:000000020000000000000004']);
  });
});

describe('strongbox wal-push and wal-fetch', () => {
  it('exit 0 when archived and restored, 1 for a file not archived, 126 for one that fails authentication, 2 for a conflict', async () => {
    const { runtime, dir } = await testRuntime({ jobs: [job] });
    dirs.push(dir);
    const plan = join(dir, 'plan.yaml');
    await writeFile(
      plan,
      JSON.stringify({ version: 1, vault: runtime.plan.vault, key: runtime.plan.key, jobs: [job] }),
    );
    const pgWal = join(dir, 'pg_wal');
    await import('node:fs/promises').then((fs) => fs.mkdir(pgWal));
    const data = segment();
    await writeFile(join(pgWal, SEGMENT), data);

    const pushed = await strongbox(['wal-push', '--plan', plan, '--job', 'pitr', '-q', join(pgWal, SEGMENT)]);
    const again = await strongbox(['wal-push', '--plan', plan, '--job', 'pitr', '-q', join(pgWal, SEGMENT)]);
    const fetched = await strongbox([
      'wal-fetch',
      '--plan',
      plan,
      '--job',
      'pitr',
      SEGMENT,
      join(dir, 'RECOVERYXLOG'),
    ]);
    const missing = await strongbox([
      'wal-fetch',
      '--plan',
      plan,
      '--job',
      'pitr',
      NEXT,
      join(dir, 'RECOVERYXLOG2'),
    ]);
    await writeFile(
      join(pgWal, SEGMENT),
      Buffer.concat([data.subarray(0, 10), Buffer.from('x'), data.subarray(11)]),
    );
    const conflict = await strongbox([
      'wal-push',
      '--plan',
      plan,
      '--job',
      'pitr',
      '-q',
      join(pgWal, SEGMENT),
    ]);
    const stored = join(dir, 'vault', 'wal', 'pitr', '00000001', SEGMENT);
    const bytes = await readFile(stored);
    bytes[bytes.length - 40] = (bytes[bytes.length - 40] as number) ^ 1;
    await writeFile(stored, bytes);
    const flipped = await strongbox([
      'wal-fetch',
      '--plan',
      plan,
      '--job',
      'pitr',
      SEGMENT,
      join(dir, 'RECOVERYXLOG3'),
    ]);

    expect([pushed.code, again.code, fetched.code, missing.code, conflict.code, flipped.code]).toEqual([
      0, 0, 0, 1, 2, 126,
    ]);
    expect(again.stdout).toMatch(/already archived with the same content/);
    expect(await readFile(join(dir, 'RECOVERYXLOG'))).toEqual(data);
    expect(conflict.lastError).toMatch(/already archived .* with different content/);
    expect(flipped.lastError).toMatch(/WAL file 000000010000000000000003 .*authenticat/);
    expect((await readdir(dir)).filter((name) => name.includes('RECOVERYXLOG3'))).toEqual([]);
  });
});
