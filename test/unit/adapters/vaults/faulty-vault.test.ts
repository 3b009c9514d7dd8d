import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Faults, FaultyVault } from '#adapters/vaults/faulty';
import { FileVault } from '#adapters/vaults/file';
import { RetryingVault } from '#adapters/vaults/retrying';
import { createS3Client, S3Vault } from '#adapters/vaults/s3';
import { VaultError } from '#core/errors';
import type { Vault } from '#core/ports';
import { S3RVER_CREDENTIALS, type S3rverInstance, startS3rver } from '#test/support/s3rver';

const MiB = 1024 * 1024;
let dir: string;
let vaultNumber = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-faulty-vault-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A FaultyVault over a fresh FileVault holding `seeded`, and the files below the FileVault's root. */
async function setUp(faults: Faults, seeded: string[] = []) {
  vaultNumber += 1;
  const root = join(dir, `v${vaultNumber}`);
  const real = new FileVault(root);
  for (const key of seeded) await real.put(key, Readable.from([Buffer.from(key)]));
  const files = async () =>
    (await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []))
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name).slice(root.length + 1));
  return { real, vault: new FaultyVault(real, faults), files };
}

const bytes = (text: string) => Readable.from([Buffer.from(text)]);

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function keys(vault: Vault, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const object of vault.list(prefix)) out.push(object.key);
  return out;
}

/** A body of `size` random bytes in 64 KiB chunks. */
function body(size: number): { stream: Readable; data: Buffer } {
  const data = randomBytes(size);
  const pieces = Array.from({ length: Math.ceil(size / 65_536) }, (_, i) =>
    data.subarray(i * 65_536, (i + 1) * 65_536),
  );
  return { stream: Readable.from(pieces), data };
}

const isManifest = (key: string) => key.endsWith('manifest.json');

describe('FaultyVault', () => {
  it('passes every call through when no fault matches', async () => {
    // Prepare
    const { real, vault } = await setUp(
      {
        put: [{ when: isManifest, fail: 'before' }],
        get: [{ when: isManifest }],
        head: [{ when: isManifest }],
        list: [{ when: (prefix) => prefix === 'wal/' }],
        delete: [{ when: isManifest }],
      },
      ['b/one', 'b/two'],
    );

    // Act
    const put = await vault.put('b/data.sbx', bytes('data'));
    const got = await readAll(await vault.get('b/data.sbx'));
    const head = await vault.head('b/one');
    const listed = await keys(vault, 'b/');
    await vault.delete(['b/one']);

    // Assess
    expect(vault.url).toBe(real.url);
    expect(put).toEqual({ sizeBytes: 4 });
    expect(got.toString()).toBe('data');
    expect(head?.sizeBytes).toBe(5);
    expect(listed).toEqual(['b/data.sbx', 'b/one', 'b/two']);
    expect(await keys(real, 'b/')).toEqual(['b/data.sbx', 'b/two']);
    expect(vault.injected).toEqual([]);
  });

  it('refuses a matching put before storing anything, and destroys its body', async () => {
    const { real, vault, files } = await setUp({ put: [{ when: isManifest, fail: 'before' }] });
    const stream = bytes('{"version":2}');

    await expect(vault.put('b/x/manifest.json', stream)).rejects.toBeInstanceOf(VaultError);

    expect(stream.destroyed).toBe(true);
    expect(await real.head('b/x/manifest.json')).toBeUndefined();
    expect(await files()).toEqual([]);
    expect(vault.injected).toEqual([{ verb: 'put', key: 'b/x/manifest.json', what: 'put before' }]);
  });

  it('stores a put whole and then fails it (the answer was lost)', async () => {
    const { real, vault } = await setUp({ put: [{ fail: 'after' }] });

    await expect(vault.put('b/x/manifest.json', bytes('{"version":2}'))).rejects.toThrow(
      'injected fault: put after b/x/manifest.json',
    );

    expect((await readAll(await real.get('b/x/manifest.json'))).toString()).toBe('{"version":2}');
  });

  it('reports fewer bytes than it stored: the vault stores N but says N-1', async () => {
    const { real, vault } = await setUp({
      put: [{ when: (key) => key.endsWith('.sbx'), fail: 'misreport', reportBytes: (n) => n - 1 }],
    });
    const { stream, data } = body(300_000);

    const put = await vault.put('b/x/data.sbx', stream);

    expect(put).toEqual({ sizeBytes: 299_999 });
    expect((await real.head('b/x/data.sbx'))?.sizeBytes).toBe(300_000);
    expect((await readAll(await real.get('b/x/data.sbx'))).equals(data)).toBe(true);
    expect(vault.injected.map((i) => i.what)).toEqual(['put misreport 299999 of 300000 bytes']);
  });

  it('cuts a put stream after K bytes: the put fails, nothing is stored, the body is torn down', async () => {
    // Prepare
    const error = new VaultError('UploadPart failed: SlowDown (HTTP 503)', { retryable: true });
    const { vault, files } = await setUp({ put: [{ fail: 'cut', afterBytes: 200_000, error }] });
    const { stream } = body(1_000_000);

    // Act
    const put = vault.put('b/x/data.sbx', stream);

    // Assess: the vault's own contract (nothing left) holds, and the caller sees the injected error.
    await expect(put).rejects.toBe(error);
    expect(stream.destroyed).toBe(true);
    expect(await files()).toEqual([]);
    expect(vault.injected).toEqual([
      { verb: 'put', key: 'b/x/data.sbx', what: 'put cut after 200000 bytes' },
    ]);
  });

  it('stores a put whose body is no longer than the cut whole', async () => {
    const { real, vault } = await setUp({ put: [{ fail: 'cut', afterBytes: 100_000 }] });
    const { stream, data } = body(100_000);

    expect(await vault.put('b/x/data.sbx', stream)).toEqual({ sizeBytes: 100_000 });
    expect((await readAll(await real.get('b/x/data.sbx'))).equals(data)).toBe(true);
    expect(vault.injected).toEqual([]);
  });

  it('tears the body down when the wrapped vault refuses a cut put before reading it', async () => {
    // The cut is far beyond what the streams buffer: only the wrapper can tear the body down.
    const { vault } = await setUp({ put: [{ fail: 'cut', afterBytes: MiB }] });
    const { stream } = body(2 * MiB);

    await expect(vault.put('../escape', stream)).rejects.toThrow('invalid vault key');
    expect(stream.destroyed).toBe(true);
  });

  it('hits only `times` matching calls, then the fault is spent', async () => {
    const { vault } = await setUp({ head: [{ when: (key) => key.startsWith('b/'), times: 2 }] }, ['b/one']);

    await expect(vault.head('b/one')).rejects.toBeInstanceOf(VaultError);
    expect(await vault.head('c/other')).toBeUndefined(); // not matching: does not spend the fault
    await expect(vault.head('b/one')).rejects.toBeInstanceOf(VaultError);
    expect((await vault.head('b/one'))?.sizeBytes).toBe(5);
    expect(vault.injected.map((i) => i.what)).toEqual(['head', 'head']);
  });

  it('tries faults in order: the first unspent match applies', async () => {
    const { real, vault } = await setUp({
      put: [
        { when: isManifest, fail: 'before', times: 1 },
        { when: isManifest, fail: 'misreport', reportBytes: () => 0 },
      ],
    });

    await expect(vault.put('m/manifest.json', bytes('{}'))).rejects.toBeInstanceOf(VaultError);
    expect(await vault.put('m/manifest.json', bytes('{}'))).toEqual({ sizeBytes: 0 });
    expect((await real.head('m/manifest.json'))?.sizeBytes).toBe(2);
  });

  it('fails get, head and list with the given error (a function gets the key)', async () => {
    const { vault } = await setUp(
      {
        get: [{ error: (key) => new VaultError(`get ${key}: ECONNRESET`, { retryable: true }) }],
        head: [{ error: new VaultError('AccessDenied (HTTP 403)') }],
        list: [{ error: new VaultError('list: SlowDown', { retryable: true }) }],
      },
      ['b/one'],
    );

    await expect(vault.get('b/one')).rejects.toMatchObject({
      message: 'get b/one: ECONNRESET',
      retryable: true,
    });
    await expect(vault.head('b/one')).rejects.toMatchObject({ message: 'AccessDenied (HTTP 403)' });
    await expect(keys(vault, 'b/')).rejects.toMatchObject({ message: 'list: SlowDown' });
    expect(vault.injected.map((i) => i.what)).toEqual(['get', 'head', 'list after 0 objects']);
  });

  it('cuts a get stream after K bytes: reading fails after at most K bytes', async () => {
    const { real, vault } = await setUp({ get: [{ afterBytes: 100_000 }] });
    await real.put('b/x/data.sbx', body(500_000).stream);
    const received: Buffer[] = [];

    const stream = await vault.get('b/x/data.sbx');
    const reading = (async () => {
      for await (const chunk of stream) received.push(chunk as Buffer);
    })();

    await expect(reading).rejects.toThrow('injected fault: get cut after 100000 bytes b/x/data.sbx');
    expect(Buffer.concat(received).length).toBeLessThanOrEqual(100_000);
  });

  it('breaks a listing after N objects', async () => {
    const { vault } = await setUp({ list: [{ afterObjects: 2 }] }, ['b/1', 'b/2', 'b/3']);
    const listed: string[] = [];

    const listing = (async () => {
      for await (const object of vault.list('b/')) listed.push(object.key);
    })();

    await expect(listing).rejects.toThrow('injected fault: list after 2 objects b/');
    expect(listed).toEqual(['b/1', 'b/2']);
  });

  it('refuses the matching keys of a delete, deletes the others, then fails', async () => {
    const { real, vault } = await setUp({ delete: [{ when: isManifest }] }, [
      'b/x/data.sbx',
      'b/x/manifest.json',
      'b/y/data.sbx',
    ]);

    await expect(vault.delete(['b/x/data.sbx', 'b/x/manifest.json', 'b/y/data.sbx'])).rejects.toThrow(
      'injected fault: delete refused for 1 of 3 keys b/x/manifest.json',
    );

    expect(await keys(real, 'b/')).toEqual(['b/x/manifest.json']);
  });

  it('lets RetryingVault recover from a retryable fault that hits twice', async () => {
    const { vault } = await setUp(
      { get: [{ times: 2, error: () => new VaultError('SlowDown (HTTP 503)', { retryable: true }) }] },
      ['b/one'],
    );
    const retrying = new RetryingVault(vault, { sleep: async () => {} });

    expect((await readAll(await retrying.get('b/one'))).toString()).toBe('b/one');
    expect(vault.injected).toHaveLength(2);
  });

  it.each([
    { put: [{ fail: 'cut' as const, afterBytes: -1 }] },
    { list: [{ afterObjects: -2 }] },
    { head: [{ times: -1 }] },
  ])('refuses negative counts: %j', async (faults) => {
    const { real } = await setUp({});
    expect(() => new FaultyVault(real, faults)).toThrow(RangeError);
  });
});

describe('FaultyVault over an S3 vault', () => {
  let s3: S3rverInstance;

  beforeAll(async () => {
    s3 = await startS3rver('faulty-test');
  });

  afterAll(() => s3?.stop());

  it('cuts a multipart upload after some parts: the parts are sent, then the upload is aborted', async () => {
    // Prepare: 5 MiB parts, a 12 MiB body cut after 6 MiB, so one part is uploaded before the cut.
    const config = {
      url: `s3://${s3.bucket}/cut`,
      endpoint: s3.endpoint,
      region: 'us-east-1',
      checksums: 'when-required' as const,
      partSizeMiB: 5,
      queueSize: 1,
      storageClass: 'STANDARD' as const,
    };
    const client = createS3Client(config, {
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    });
    const commands: string[] = [];
    client.middlewareStack.add(
      (next, context) => async (args) => {
        commands.push(context.commandName ?? '?');
        return next(args);
      },
      { step: 'initialize', name: 'recordCommands' },
    );
    const vault = new FaultyVault(new S3Vault(config, { client }), {
      put: [{ fail: 'cut', afterBytes: 6 * MiB }],
    });

    // Act
    const put = vault.put('backups/db/x/data.sbx', body(12 * MiB).stream);

    // Assess
    await expect(put).rejects.toThrow('injected fault: put cut after 6291456 bytes');
    expect(commands).toContain('UploadPartCommand');
    expect(commands).toContain('AbortMultipartUploadCommand');
    expect(await vault.head('backups/db/x/data.sbx')).toBeUndefined();
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: 'cut/' }));
    expect(uploads.Uploads ?? []).toEqual([]);
  });
});
