import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openKeyProvider } from '#adapters/keys/index';
import {
  canonicalContext,
  generateMasterKeyFile,
  keyFingerprint,
  LocalKeyProvider,
} from '#adapters/keys/local';
import { KeyError } from '#core/errors';
import { encryptionContext } from '#core/manifest';

let dir: string;
let keyPath: string;
const context = encryptionContext('db', '20241206T020000Z-3f9a1c');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-keys-'));
  keyPath = join(dir, 'master.key');
  await generateMasterKeyFile(keyPath);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('generateMasterKeyFile', () => {
  it('writes 32 random bytes as base64 with mode 0600 and reports the fingerprint', async () => {
    const path = join(dir, 'nested', 'new.key');
    const { fingerprint } = await generateMasterKeyFile(path);
    const text = await readFile(path, 'utf8');
    const key = Buffer.from(text.trim(), 'base64');
    expect(key).toHaveLength(32);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(fingerprint).toBe(createHash('sha256').update(key).digest('hex').slice(0, 16));
  });

  it('refuses to overwrite an existing key file', async () => {
    const before = await readFile(keyPath, 'utf8');
    await expect(generateMasterKeyFile(keyPath)).rejects.toThrow(KeyError);
    await expect(generateMasterKeyFile(keyPath)).rejects.toThrow(/refusing to overwrite/);
    expect(await readFile(keyPath, 'utf8')).toBe(before);
  });
});

describe('LocalKeyProvider', () => {
  it('round-trips a data key bound to its context', async () => {
    const keys = new LocalKeyProvider(keyPath);
    const dataKey = await keys.generateDataKey(context);
    expect(dataKey.plaintext).toHaveLength(32);
    expect(dataKey.key).toEqual({ type: 'local', fingerprint: await keys.fingerprint() });
    expect(Buffer.from(dataKey.wrapped, 'base64')).toHaveLength(12 + 32 + 16);
    expect(dataKey.wrapped).not.toContain(dataKey.plaintext.toString('base64'));

    const again = new LocalKeyProvider(keyPath);
    const plaintext = await again.decryptDataKey(dataKey.wrapped, dataKey.key, { ...context });
    expect(plaintext.equals(dataKey.plaintext)).toBe(true);
  });

  it('gives every backup a fresh data key', async () => {
    const keys = new LocalKeyProvider(keyPath);
    const [a, b] = await Promise.all([keys.generateDataKey(context), keys.generateDataKey(context)]);
    expect(a.plaintext.equals(b.plaintext)).toBe(false);
  });

  it('does not depend on the order of the context keys', async () => {
    const keys = new LocalKeyProvider(keyPath);
    const dataKey = await keys.generateDataKey({ b: '2', a: '1' });
    const plaintext = await keys.decryptDataKey(dataKey.wrapped, dataKey.key, { a: '1', b: '2' });
    expect(plaintext.equals(dataKey.plaintext)).toBe(true);
    expect(canonicalContext({ b: '2', a: '1' })).toBe('{"a":"1","b":"2"}');
  });

  it('rejects another context, saying the context differs', async () => {
    const keys = new LocalKeyProvider(keyPath);
    const dataKey = await keys.generateDataKey(context);
    const other = encryptionContext('db', '20241207T020000Z-000000');
    const error = await keys.decryptDataKey(dataKey.wrapped, dataKey.key, other).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyError);
    expect((error as Error).message).toMatch(/does not authenticate .* context .*differs/);
  });

  it('rejects another master key by fingerprint, naming both keys', async () => {
    const otherPath = join(await mkdtemp(join(dir, 'copy-')), 'master.key');
    const { fingerprint: otherFingerprint } = await generateMasterKeyFile(otherPath);
    const keys = new LocalKeyProvider(keyPath);
    const dataKey = await keys.generateDataKey(context);
    const other = new LocalKeyProvider(otherPath);
    const error = await other.decryptDataKey(dataKey.wrapped, dataKey.key, context).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyError);
    expect((error as Error).message).toContain(`wrapped by master key ${await keys.fingerprint()}`);
    expect((error as Error).message).toContain(otherFingerprint);
  });

  it('rejects a corrupted wrapped key', async () => {
    const keys = new LocalKeyProvider(keyPath);
    const dataKey = await keys.generateDataKey(context);
    const bytes = Buffer.from(dataKey.wrapped, 'base64');
    bytes[20] = (bytes[20] as number) ^ 1;
    await expect(keys.decryptDataKey(bytes.toString('base64'), dataKey.key, context)).rejects.toThrow(
      KeyError,
    );
    await expect(keys.decryptDataKey('c2hvcnQ=', dataKey.key, context)).rejects.toThrow(/malformed/);
  });

  it('rejects a data key wrapped by KMS', async () => {
    const keys = new LocalKeyProvider(keyPath);
    await expect(
      keys.decryptDataKey('AAAA', { type: 'kms', keyId: 'arn:aws:kms:eu-west-1:1:key/x' }, context),
    ).rejects.toThrow(/wrapped by KMS key arn:aws:kms/);
  });

  it.each([0o644, 0o640, 0o604, 0o660, 0o620])('refuses a key file with mode %o', async (mode) => {
    const path = join(dir, `loose-${mode.toString(8)}.key`);
    await generateMasterKeyFile(path);
    await chmod(path, mode);
    const keys = new LocalKeyProvider(path);
    const error = await keys.generateDataKey(context).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyError);
    expect((error as Error).message).toMatch(/accessible by group or others .* chmod 600/);
  });

  it.each([0o600, 0o400])('accepts a key file with mode %o', async (mode) => {
    const path = join(dir, `ok-${mode.toString(8)}.key`);
    await generateMasterKeyFile(path);
    await chmod(path, mode);
    await expect(new LocalKeyProvider(path).fingerprint()).resolves.toMatch(/^[0-9a-f]{16}$/);
  });

  it('says how to create a missing key file, and reads it once it exists', async () => {
    const path = join(dir, 'later.key');
    const keys = new LocalKeyProvider(path);
    await expect(keys.fingerprint()).rejects.toThrow(/does not exist \(create one with `strongbox keygen`\)/);
    await generateMasterKeyFile(path);
    await expect(keys.fingerprint()).resolves.toMatch(/^[0-9a-f]{16}$/);
  });

  it('refuses a file that does not hold a 32-byte key', async () => {
    const path = join(dir, 'bad.key');
    await writeFile(path, 'not a key\n', { mode: 0o600 });
    await expect(new LocalKeyProvider(path).fingerprint()).rejects.toThrow(/does not hold a key/);
  });

  it('fingerprints keys by the first 16 hex digits of SHA-256', () => {
    expect(keyFingerprint(Buffer.alloc(32))).toBe('66687aadf862bd77');
  });
});

describe('openKeyProvider', () => {
  it('resolves a relative local key path against the plan directory', async () => {
    const keys = await openKeyProvider({ type: 'local', path: 'master.key' }, { baseDir: dir });
    expect(keys).toBeInstanceOf(LocalKeyProvider);
    expect((keys as LocalKeyProvider).path).toBe(keyPath);
    const absolute = await openKeyProvider({ type: 'local', path: keyPath }, { baseDir: '/elsewhere' });
    expect((absolute as LocalKeyProvider).path).toBe(keyPath);
  });
});

describe('LocalKeyProvider.wrapDataKey (copies with their own key)', () => {
  it("wraps another provider's data key so that only this key unwraps it, for the same context", async () => {
    // Prepare
    const otherPath = join(await mkdtemp(join(dir, 'copy-')), 'master.key');
    await generateMasterKeyFile(otherPath);
    const primary = new LocalKeyProvider(keyPath);
    const copy = new LocalKeyProvider(otherPath);
    const dataKey = await primary.generateDataKey(context);

    // Act
    const wrapped = await copy.wrapDataKey(dataKey.plaintext, context);

    // Assess
    expect(wrapped.key).toEqual({ type: 'local', fingerprint: await copy.fingerprint() });
    expect((await copy.decryptDataKey(wrapped.wrapped, wrapped.key, context)).equals(dataKey.plaintext)).toBe(
      true,
    );
    await expect(primary.decryptDataKey(wrapped.wrapped, wrapped.key, context)).rejects.toThrow(KeyError);
    await expect(
      copy.decryptDataKey(wrapped.wrapped, wrapped.key, encryptionContext('db', '20241207T020000Z-3f9a1c')),
    ).rejects.toThrow(KeyError);
  });

  it('refuses what is not a 32-byte data key', async () => {
    await expect(new LocalKeyProvider(keyPath).wrapDataKey(Buffer.alloc(16), context)).rejects.toThrow(
      KeyError,
    );
  });
});
