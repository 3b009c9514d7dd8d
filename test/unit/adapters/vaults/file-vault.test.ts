import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileVault, WRITE_BATCH_BYTES } from '#adapters/vaults/file';
import { openVault } from '#adapters/vaults/index';
import { RetryingVault } from '#adapters/vaults/retrying';
import { S3Vault } from '#adapters/vaults/s3';
import { PlanError, VaultError } from '#core/errors';
import type { VaultConfig } from '#core/plan';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-file-vault-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function keys(vault: FileVault, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const object of vault.list(prefix)) out.push(object.key);
  return out;
}

const body = (text: string) => Readable.from([Buffer.from(text)]);

describe('FileVault', () => {
  it('lists in S3 byte order, where a directory sorts as its name plus "/"', async () => {
    const vault = new FileVault(join(dir, 'order'));
    const names = ['a/1', 'a-b/1', 'a.z', 'a0', 'A', 'a/b/c', 'b'];
    for (const key of names) await vault.put(key, body(key));
    const expected = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect(await keys(vault, '')).toEqual(expected);
    expect(expected).toEqual(['A', 'a-b/1', 'a.z', 'a/1', 'a/b/c', 'a0', 'b']);
  });

  it('skips in-progress writes of other processes when listing', async () => {
    const root = join(dir, 'partials');
    const vault = new FileVault(root);
    await vault.put('x/data', body('done'));
    await writeFile(join(root, 'x', '.manifest.json.partial-0123456789abcdef'), 'half');
    expect(await keys(vault, '')).toEqual(['x/data']);
  });

  it('removes directories a delete leaves empty, and keeps the root', async () => {
    const root = join(dir, 'prune');
    const vault = new FileVault(`file://${root}`);
    await vault.put('backups/db/one/data', body('1'));
    await vault.put('backups/db/two/data', body('2'));
    await vault.delete(['backups/db/one/data']);
    expect(await readdir(join(root, 'backups', 'db'))).toEqual(['two']);
    await vault.delete(['backups/db/two/data']);
    expect(await readdir(root)).toEqual([]);
  });

  it('fails a put it cannot write with a VaultError that says where, leaving nothing', async () => {
    const root = join(dir, 'readonly');
    await mkdir(root);
    const vault = new FileVault(root);
    // A file where a directory should be: works as root too (unlike permission bits).
    await writeFile(join(root, 'blocked'), '');
    const error = await vault.put('blocked/data', body('x')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VaultError);
    expect((error as Error).message).toMatch(/cannot write blocked\/data in file:\/\/.*readonly/);
    expect(await readdir(root)).toEqual(['blocked']);
  });

  it('writes objects that survive as whole files with the data given', async () => {
    const root = join(dir, 'whole');
    const vault = new FileVault(root);
    const result = await vault.put('k', Readable.from(['text ', Buffer.from('and bytes')]));
    expect(result.sizeBytes).toBe(14);
    expect((await stat(join(root, 'k'))).size).toBe(14);
  });

  it('writes chunks of every size in order, also across its write batches', async () => {
    // Prepare: sealed chunks and their tags, an empty chunk, text, ending mid-batch.
    const root = join(dir, 'batches');
    const vault = new FileVault(root);
    const pieces: (Buffer | string)[] = [];
    for (let i = 0; i < 40; i++) pieces.push(randomBytes(65_536), randomBytes(16), Buffer.alloc(0), `${i};`);
    const expected = Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));

    // Act
    const result = await vault.put('k', Readable.from(pieces));

    // Assess
    expect(expected.length).toBeGreaterThan(2 * WRITE_BATCH_BYTES);
    expect(result.sizeBytes).toBe(expected.length);
    expect((await readFile(join(root, 'k'))).equals(expected)).toBe(true);
  });

  it('does not treat a directory as an object', async () => {
    const vault = new FileVault(join(dir, 'dirs'));
    await vault.put('d/inner', body('x'));
    expect(await vault.head('d')).toBeUndefined();
    await expect(vault.get('d')).rejects.toThrow(/does not exist/);
  });

  it('names itself by its file URL and refuses relative locations', () => {
    expect(new FileVault('/mnt/nas/strongbox/').url).toBe('file:///mnt/nas/strongbox');
    expect(() => new FileVault('relative/path')).toThrow(VaultError);
  });
});

describe('openVault', () => {
  const base: VaultConfig = {
    url: 'file:///tmp/x',
    region: 'us-east-1',
    checksums: 'when-supported',
    partSizeMiB: 16,
    queueSize: 4,
    storageClass: 'STANDARD',
  };

  it('chooses the vault by URL scheme and wraps it in a RetryingVault', async () => {
    const file = await openVault(base);
    const s3 = await openVault({ ...base, url: 's3://bucket-name/prefix' });
    expect(file).toBeInstanceOf(RetryingVault);
    expect(file.inner).toBeInstanceOf(FileVault);
    expect(file.url).toBe('file:///tmp/x');
    expect(s3).toBeInstanceOf(RetryingVault);
    expect(s3.inner).toBeInstanceOf(S3Vault);
    expect(s3.url).toBe('s3://bucket-name/prefix');
    await expect(openVault({ ...base, url: 'ftp://host/x' })).rejects.toThrow(PlanError);
  });
});
