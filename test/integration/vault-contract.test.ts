/**
 * The Vault contract (core/ports.ts), one suite run against every implementation: FileVault on a temp
 * directory, the RetryingVault wrapper around one (as openVault opens every vault), and S3Vault on a
 * real S3-protocol server (s3rver, started here). Each case gets a fresh, empty vault (a new directory,
 * or a new prefix in the bucket).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { HeadObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Faults, FaultyVault } from '#adapters/vaults/faulty';
import { FileVault } from '#adapters/vaults/file';
import { RetryingVault } from '#adapters/vaults/retrying';
import { S3Vault } from '#adapters/vaults/s3';
import { runBackup } from '#agent/backup';
import { NotFoundError, VaultError } from '#core/errors';
import type { Job, VaultConfig } from '#core/plan';
import type { Vault } from '#core/ports';
import { testRuntime } from '#test/support/runtime';
import { type S3rverInstance, s3rverClient, s3rverVaultConfig, startS3rver } from '#test/support/s3rver';

const MiB = 1024 * 1024;

/** One request as it went over the wire. */
interface SentRequest {
  command: string;
  headers: Record<string, string>;
}

/** A fresh vault of one implementation, and what the suite may inspect behind it. */
interface Subject {
  vault: Vault;
  /** Anything a failed put may have left behind: temp files, in-progress multipart uploads. */
  leftovers(): Promise<string[]>;
  /** Requests sent (S3 only). */
  sent?: SentRequest[];
  /** Storage class as the backend stored it, read around the vault (S3 only). */
  storedClass?(key: string): Promise<string | undefined>;
}

interface Implementation {
  name: string;
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
  open(): Promise<Subject>;
}

let scratch: string;

const fileImplementation: Implementation = {
  name: 'FileVault',
  async setUp() {},
  async tearDown() {},
  async open() {
    const root = await mkdtemp(join(scratch, 'file-vault-'));
    return {
      vault: new FileVault(`file://${root}`),
      leftovers: async () =>
        (await readdir(root, { recursive: true, withFileTypes: true }))
          .filter((e) => e.isFile())
          .map((e) => join(e.parentPath, e.name)),
    };
  },
};

/** The wrapper must keep the contract of the vault it wraps. */
const retryingFileImplementation: Implementation = {
  ...fileImplementation,
  name: 'RetryingVault(FileVault)',
  open: async () => {
    const subject = await fileImplementation.open();
    return { ...subject, vault: new RetryingVault(subject.vault) };
  },
};

let s3: S3rverInstance;
let vaultNumber = 0;

/** A client for s3rver that records each request's command and headers. */
function recordingClient(config: VaultConfig, sent: SentRequest[]): S3Client {
  const client = s3rverClient(config);
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      sent.push({ command: context.commandName ?? '?', headers: { ...request.headers } });
      return next(args);
    },
    { step: 'finalizeRequest', name: 'recordRequests' },
  );
  return client;
}

const s3Implementation: Implementation = {
  name: 'S3Vault on s3rver',
  async setUp() {
    s3 = await startS3rver('backups-test', { conditionalWrites: true });
  },
  async tearDown() {
    await s3?.stop();
  },
  async open() {
    vaultNumber += 1;
    const prefix = `contract-${vaultNumber}`;
    const sent: SentRequest[] = [];
    const config = s3rverVaultConfig(s3, prefix);
    const client = recordingClient(config, sent);
    return {
      vault: new S3Vault(config, { client }),
      sent,
      leftovers: async () => {
        const uploads = await client.send(
          new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: `${prefix}/` }),
        );
        return (uploads.Uploads ?? []).map((u) => `multipart upload of ${u.Key}`);
      },
      storedClass: async (key) =>
        (await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${key}` })))
          .StorageClass,
    };
  },
};

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function listKeys(vault: Vault, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of vault.list(prefix)) keys.push(object.key);
  return keys;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** A body that yields `bytes` of data in 1 MiB pieces, then fails. */
function failingBody(bytes: number, error: Error): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= bytes) {
        this.destroy(error);
        return;
      }
      const size = Math.min(MiB, bytes - sent);
      sent += size;
      this.push(randomBytes(size));
    },
  });
}

/** A body that never ends; calls `onBytes` with the total produced so far. */
function endlessBody(onBytes: (total: number) => void): Readable {
  let sent = 0;
  return new Readable({
    read() {
      sent += MiB;
      onBytes(sent);
      setTimeout(() => this.push(randomBytes(MiB)), 1);
    },
  });
}

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'strongbox-vault-contract-'));
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe.each([fileImplementation, retryingFileImplementation, s3Implementation])(
  'Vault contract: $name',
  (implementation) => {
    beforeAll(() => implementation.setUp());
    afterAll(() => implementation.tearDown());

    it('stores an object whole: put, head, get', async () => {
      // Prepare
      const { vault } = await implementation.open();
      const data = randomBytes(300_000);
      const before = Date.now();

      // Act
      const put = await vault.put('backups/db/20241206T020000Z-3f9a1c/data.sbx', Readable.from([data]));
      const head = await vault.head('backups/db/20241206T020000Z-3f9a1c/data.sbx');
      const got = await readAll(await vault.get('backups/db/20241206T020000Z-3f9a1c/data.sbx'));

      // Assess
      expect(put.sizeBytes).toBe(data.length);
      expect(head).toMatchObject({
        key: 'backups/db/20241206T020000Z-3f9a1c/data.sbx',
        sizeBytes: data.length,
      });
      expect(head?.storageClass).toBe('STANDARD');
      expect(Math.abs((head?.lastModified.getTime() ?? 0) - before)).toBeLessThan(60_000);
      expect(got.equals(data)).toBe(true);
    });

    it('stores an empty object', async () => {
      const { vault } = await implementation.open();
      expect((await vault.put('empty', Readable.from([], { objectMode: false }))).sizeBytes).toBe(0);
      expect((await vault.head('empty'))?.sizeBytes).toBe(0);
      expect((await readAll(await vault.get('empty'))).length).toBe(0);
    });

    it('lists every object below a prefix once, in key order', async () => {
      // s3rver lists in directory-walk order, which differs from S3's byte order when a sibling name
      // continues with a byte below '/' ('a-b' against 'a/…'); FileVault's exact S3 order for those is
      // tested in test/unit/adapters/vaults/file-vault.test.ts.
      const { vault } = await implementation.open();
      const keys = [
        'backups/a/2/x',
        'wal/db/00000001/000000010000000000000001',
        'backups/a/10',
        'backups/ab/1',
        'backups/a/1',
        'backups/b/1',
      ];
      for (const key of keys) await vault.put(key, Readable.from([Buffer.from(key)]));

      expect(await listKeys(vault, '')).toEqual([...keys].sort());
      expect(await listKeys(vault, 'backups/')).toEqual([
        'backups/a/1',
        'backups/a/10',
        'backups/a/2/x',
        'backups/ab/1',
        'backups/b/1',
      ]);
      expect(await listKeys(vault, 'backups/a/')).toEqual(['backups/a/1', 'backups/a/10', 'backups/a/2/x']);
      expect(await listKeys(vault, 'backups/a')).toEqual([
        'backups/a/1',
        'backups/a/10',
        'backups/a/2/x',
        'backups/ab/1',
      ]);
      expect(await listKeys(vault, 'backups/a/1')).toEqual(['backups/a/1', 'backups/a/10']);
      expect(await listKeys(vault, 'nothing/')).toEqual([]);
      const listed = [];
      for await (const object of vault.list('backups/b/')) listed.push(object);
      expect(listed).toHaveLength(1);
      expect(listed[0]).toMatchObject({ key: 'backups/b/1', sizeBytes: 11, storageClass: 'STANDARD' });
    });

    it('never writes over an object: a put to a key that exists is refused and the object stays as it was', async () => {
      const { vault, leftovers } = await implementation.open();
      await vault.put('k/object', Readable.from([Buffer.from('first version, longer')]));
      const before = await leftovers();
      await expect(vault.put('k/object', Readable.from([Buffer.from('second')]))).rejects.toThrow(
        /k\/object.*refused: the object already exists/,
      );
      expect((await readAll(await vault.get('k/object'))).toString()).toBe('first version, longer');
      expect(await listKeys(vault, 'k/')).toEqual(['k/object']);
      expect(await leftovers()).toEqual(before);
    });

    it('reports a missing object: get throws NotFoundError, head is undefined', async () => {
      const { vault } = await implementation.open();
      await expect(vault.get('backups/none/manifest.json')).rejects.toBeInstanceOf(NotFoundError);
      expect(await vault.head('backups/none/manifest.json')).toBeUndefined();
    });

    it('deletes objects and ignores keys that do not exist', async () => {
      const { vault } = await implementation.open();
      await vault.put('d/one', Readable.from([Buffer.from('1')]));
      await vault.put('d/two', Readable.from([Buffer.from('2')]));
      await vault.delete(['d/one', 'd/never-existed']);
      expect(await listKeys(vault, 'd/')).toEqual(['d/two']);
      await expect(vault.get('d/one')).rejects.toBeInstanceOf(NotFoundError);
      await vault.delete([]);
    });

    it.each([
      ['small', 200_000],
      ['multipart', 11 * MiB],
    ])('leaves nothing when the body fails midway (%s)', async (_name, failAfterBytes) => {
      // Prepare
      const subject = await implementation.open();
      const broken = new Error('pg_dump exited with status 1');

      // Act
      const put = subject.vault.put('backups/db/x/data.sbx', failingBody(failAfterBytes, broken));

      // Assess: the body's own error, unchanged, and no trace of the object.
      await expect(put).rejects.toBe(broken);
      expect(await subject.vault.head('backups/db/x/data.sbx')).toBeUndefined();
      expect(await listKeys(subject.vault, '')).toEqual([]);
      expect(await subject.leftovers()).toEqual([]);
      if (subject.sent && failAfterBytes > 5 * MiB) {
        const commands = subject.sent.map((r) => r.command);
        expect(commands).toContain('CreateMultipartUploadCommand');
        expect(commands).toContain('AbortMultipartUploadCommand');
      }
    });

    it('leaves nothing when the put is aborted through its signal', async () => {
      const subject = await implementation.open();
      const controller = new AbortController();
      const body = endlessBody((total) => {
        if (total === 12 * MiB) controller.abort();
      });

      const put = subject.vault.put('backups/db/y/data.sbx', body, { signal: controller.signal });

      await expect(put).rejects.toMatchObject({ name: 'AbortError' });
      expect(body.destroyed).toBe(true);
      expect(await subject.vault.head('backups/db/y/data.sbx')).toBeUndefined();
      expect(await listKeys(subject.vault, '')).toEqual([]);
      expect(await subject.leftovers()).toEqual([]);
    });

    it('refuses to start a put whose signal is already aborted', async () => {
      const subject = await implementation.open();
      const put = subject.vault.put('z', Readable.from([Buffer.from('z')]), { signal: AbortSignal.abort() });
      await expect(put).rejects.toMatchObject({ name: 'AbortError' });
      expect(await subject.vault.head('z')).toBeUndefined();
      expect(await subject.leftovers()).toEqual([]);
    });

    it('round-trips a large object spanning several parts byte for byte', async () => {
      const subject = await implementation.open();
      const data = randomBytes(12 * MiB + 12_345);
      const pieces = Array.from({ length: Math.ceil(data.length / 65_552) }, (_, i) =>
        data.subarray(i * 65_552, (i + 1) * 65_552),
      );

      const put = await subject.vault.put('backups/db/big/data.sbx', Readable.from(pieces));
      const got = await readAll(await subject.vault.get('backups/db/big/data.sbx'));

      expect(put.sizeBytes).toBe(data.length);
      expect((await subject.vault.head('backups/db/big/data.sbx'))?.sizeBytes).toBe(data.length);
      expect(sha256(got)).toBe(sha256(data));
      if (subject.sent) {
        expect(subject.sent.filter((r) => r.command === 'UploadPartCommand')).toHaveLength(3);
      }
    });

    it('sends tags, storage class and object lock with the object (never a separate tagging call)', async () => {
      const subject = await implementation.open();
      const retainUntil = new Date('2031-01-01T00:00:00Z');
      const options = {
        tags: { 'strongbox:tier': 'daily', 'strongbox:job': 'db main' },
        storageClass: 'STANDARD_IA',
        lock: { mode: 'GOVERNANCE' as const, retainUntil },
        contentType: 'application/octet-stream',
      };

      await subject.vault.put('t/small', Readable.from([randomBytes(1000)]), options);
      await subject.vault.put('t/large', Readable.from([randomBytes(6 * MiB)]), options);

      if (!subject.sent || !subject.storedClass) {
        // File vaults ignore tags and storage classes: retention there is `strongbox prune`.
        expect((await subject.vault.head('t/small'))?.storageClass).toBe('STANDARD');
        return;
      }
      for (const command of ['PutObjectCommand', 'CreateMultipartUploadCommand']) {
        const request = subject.sent.find((r) => r.command === command);
        expect(request?.headers, command).toMatchObject({
          'x-amz-tagging': 'strongbox%3Atier=daily&strongbox%3Ajob=db%20main',
          'x-amz-storage-class': 'STANDARD_IA',
          'x-amz-object-lock-mode': 'GOVERNANCE',
          'x-amz-object-lock-retain-until-date': '2031-01-01T00:00:00Z',
        });
      }
      expect(subject.sent.map((r) => r.command)).not.toContain('PutObjectTaggingCommand');
      expect(await subject.storedClass('t/small')).toBe('STANDARD_IA');
      expect(await subject.storedClass('t/large')).toBe('STANDARD_IA');
    });

    it.each(['../escape', '/absolute', 'a//b', 'a/./b', 'a/../b', 'back\\slash', ''])(
      'rejects the key %j everywhere',
      async (key) => {
        const { vault } = await implementation.open();
        await expect(vault.put(key, Readable.from([Buffer.from('x')]))).rejects.toBeInstanceOf(VaultError);
        await expect(vault.get(key)).rejects.toBeInstanceOf(VaultError);
        await expect(vault.head(key)).rejects.toBeInstanceOf(VaultError);
        await expect(vault.delete([key])).rejects.toBeInstanceOf(VaultError);
      },
    );
  },
);

/**
 * The backup's commit invariants, over every vault: whatever the vault does wrong — it stores fewer
 * bytes than were sent, the data is stored but the manifest write fails, the upload fails after some
 * parts, a stored object's answer is lost, the manifest is stored but its answer is lost, cleanup is
 * refused — the backup fails with the vault's error and leaves no manifest, and (unless cleanup was
 * refused) no data object and no partial upload. A FaultyVault (adapters/vaults/faulty.ts) injects each
 * fault into the real vault.
 */
describe.each([fileImplementation, s3Implementation])('backup commit invariants: $name', (implementation) => {
  let tree: string;
  const JOB = 'files-job';

  beforeAll(async () => {
    await implementation.setUp();
    tree = await mkdtemp(join(scratch, 'tree-'));
    // Incompressible, so the stored object is larger than two S3 parts (5 MiB each here).
    await writeFile(join(tree, 'weights.bin'), randomBytes(12 * MiB));
    await writeFile(join(tree, 'app.yaml'), 'listen: 8080\n');
  });
  afterAll(() => implementation.tearDown());

  async function backupWith(faults: Faults) {
    const subject = await implementation.open();
    const faulty = new FaultyVault(subject.vault, faults);
    const { runtime, dir } = await testRuntime({
      jobs: [{ name: JOB, source: { kind: 'files', paths: [tree] } }],
      wrapVault: () => faulty,
    });
    const outcome = await runBackup(runtime, runtime.plan.jobs[0] as Job).then(
      (result) => ({ result, error: undefined }),
      (error: unknown) => ({ result: undefined, error }),
    );
    const keys = await listKeys(subject.vault, '');
    const leftovers = await subject.leftovers();
    await rm(dir, { recursive: true, force: true });
    return { outcome, keys, leftovers, faulty };
  }

  const isData = (key: string) => key.startsWith(`backups/${JOB}/`) && !key.endsWith('/manifest.json');
  const isManifest = (key: string) => key.endsWith('/manifest.json');

  it('commits a backup when nothing goes wrong (the faults below are what make the others fail)', async () => {
    const { outcome, keys } = await backupWith({});
    expect(outcome.error).toBeUndefined();
    expect(keys.filter(isManifest)).toHaveLength(1);
    expect(keys.filter(isData)).toHaveLength(1);
  });

  it.each<[string, Faults, RegExp]>([
    [
      'the vault reports fewer bytes than were sent',
      { put: [{ when: isData, fail: 'misreport', reportBytes: (n) => n - 1 }] },
      /the vault stored \d+ bytes but \d+ were sent/,
    ],
    [
      'the data object is stored but the manifest write fails',
      { put: [{ when: isManifest, fail: 'before' }] },
      /injected fault: put .*manifest\.json/,
    ],
    [
      'the upload fails after some parts',
      { put: [{ when: isData, fail: 'cut', afterBytes: 11 * MiB }] },
      /injected fault/,
    ],
    [
      'the data object is stored but the answer is lost',
      { put: [{ when: isData, fail: 'after' }] },
      /injected fault: put .*data\.zst\.sbx/,
    ],
    [
      'the manifest is stored but the answer is lost',
      { put: [{ when: isManifest, fail: 'after' }] },
      /injected fault: put .*manifest\.json/,
    ],
  ])('leaves no manifest and no data object when %s', async (_, faults, message) => {
    const { outcome, keys, leftovers, faulty } = await backupWith(faults);

    expect(faulty.injected.length).toBeGreaterThan(0);
    expect(outcome.error).toBeInstanceOf(VaultError);
    expect((outcome.error as Error).message).toMatch(message);
    expect(keys.filter(isManifest)).toEqual([]);
    expect(keys.filter(isData)).toEqual([]);
    expect(leftovers).toEqual([]);
  });

  it("reports the vault's error, not the cleanup's, and leaves an incomplete backup when cleanup is refused", async () => {
    const { outcome, keys } = await backupWith({
      put: [{ when: isManifest, fail: 'before' }],
      delete: [{ when: isData, error: new VaultError('AccessDenied: Object Lock') }],
    });

    expect((outcome.error as Error).message).toMatch(/injected fault: put .*manifest\.json/);
    expect(keys.filter(isManifest)).toEqual([]);
    expect(keys.filter(isData)).toHaveLength(1);
  });
});
