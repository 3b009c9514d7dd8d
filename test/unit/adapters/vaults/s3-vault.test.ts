import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  RestoreObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  createS3Client,
  encodeTags,
  MAX_PART_BYTES,
  parseRestoreHeader,
  parseS3Url,
  partSizeFor,
  S3Vault,
  toVaultError,
} from '#adapters/vaults/s3';
import { describeError, NotFoundError, PlanError, VaultError } from '#core/errors';
import type { VaultConfig } from '#core/plan';

const s3 = mockClient(S3Client);
const config: VaultConfig = {
  url: 's3://acme-backups/strongbox',
  region: 'eu-west-1',
  checksums: 'when-supported',
  partSizeMiB: 16,
  queueSize: 4,
  storageClass: 'STANDARD',
};

function awsError(name: string, status: number): Error {
  return Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode: status } });
}

const vault = () => new S3Vault(config, { client: new S3Client({}) });

beforeEach(() => {
  s3.reset();
});

describe('S3Vault', () => {
  it('aborts incomplete multipart uploads below a prefix begun before the cutoff, over every page', async () => {
    const old = new Date('2026-01-01T00:00:00Z');
    const fresh = new Date('2026-01-02T12:00:00Z');
    s3.on(ListMultipartUploadsCommand)
      .resolvesOnce({
        IsTruncated: true,
        NextKeyMarker: 'k',
        NextUploadIdMarker: 'u',
        Uploads: [{ Key: 'strongbox/backups/db/a/data.zst.sbx', UploadId: 'u1', Initiated: old }],
      })
      .resolvesOnce({
        IsTruncated: false,
        Uploads: [{ Key: 'strongbox/backups/db/b/data.zst.sbx', UploadId: 'u2', Initiated: fresh }],
      });
    s3.on(AbortMultipartUploadCommand).resolves({});

    const removed = await vault().removeAbandoned('backups/db/', new Date('2026-01-02T00:00:00Z'));

    expect(removed).toEqual(['backups/db/a/data.zst.sbx']);
    expect(s3.commandCalls(ListMultipartUploadsCommand)[0]?.args[0].input.Prefix).toBe(
      'strongbox/backups/db/',
    );
    expect(s3.commandCalls(ListMultipartUploadsCommand)[1]?.args[0].input.KeyMarker).toBe('k');
    const aborts = s3.commandCalls(AbortMultipartUploadCommand).map((c) => c.args[0].input);
    expect(aborts).toEqual([
      { Bucket: 'acme-backups', Key: 'strongbox/backups/db/a/data.zst.sbx', UploadId: 'u1' },
    ]);
  });

  it('only lists abandoned uploads on a dry run', async () => {
    s3.on(ListMultipartUploadsCommand).resolves({
      Uploads: [{ Key: 'strongbox/backups/db/a/data.zst.sbx', UploadId: 'u1', Initiated: new Date(0) }],
    });
    expect(await vault().removeAbandoned('backups/db/', new Date(), { dryRun: true })).toHaveLength(1);
    expect(s3.commandCalls(AbortMultipartUploadCommand)).toHaveLength(0);
  });

  it('maps NoSuchKey on get to NotFoundError and an archived object to a VaultError saying so', async () => {
    s3.on(GetObjectCommand)
      .rejectsOnce(awsError('NoSuchKey', 404))
      .rejectsOnce(awsError('InvalidObjectState', 403));
    await expect(vault().get('backups/db/x/data.sbx')).rejects.toBeInstanceOf(NotFoundError);
    await expect(vault().get('backups/db/x/data.sbx')).rejects.toThrow(/is archived .* request a restore/);
    expect(s3.commandCalls(GetObjectCommand)[0]?.args[0].input).toEqual({
      Bucket: 'acme-backups',
      Key: 'strongbox/backups/db/x/data.sbx',
    });
  });

  it('reports the storage class and the Restore header of an archived object', async () => {
    s3.on(HeadObjectCommand).resolves({
      ContentLength: 42,
      LastModified: new Date('2024-12-06T02:00:00Z'),
      StorageClass: 'GLACIER',
      Restore: 'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"',
    });
    expect(await vault().head('k')).toEqual({
      key: 'k',
      sizeBytes: 42,
      lastModified: new Date('2024-12-06T02:00:00Z'),
      storageClass: 'GLACIER',
      restore: { ongoing: false, expiresAt: new Date('2012-12-21T00:00:00Z') },
    });
  });

  it('reports a missing object on head as undefined', async () => {
    s3.on(HeadObjectCommand).rejects(awsError('NotFound', 404));
    expect(await vault().head('k')).toBeUndefined();
  });

  it.each([
    [awsError('SlowDown', 503), true],
    [awsError('InternalError', 500), true],
    [awsError('ThrottlingException', 400), true],
    [Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), true],
    [awsError('AccessDenied', 403), false],
    [awsError('NoSuchBucket', 404), false],
  ])('classifies %s as retryable: %s', async (error, retryable) => {
    s3.on(HeadObjectCommand).rejects(error);
    const thrown = await vault()
      .head('k')
      .catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(VaultError);
    expect((thrown as VaultError).retryable).toBe(retryable);
    expect((thrown as Error).message).toContain('head s3://acme-backups/strongbox/k failed');
    expect((thrown as Error).cause).toBe(error);
  });

  it('hints at the IAM policy when access is denied', () => {
    expect(toVaultError(awsError('AccessDenied', 403), 'put x').message).toMatch(/check the IAM policy/);
  });

  it('deletes in batches with prefixed keys and reports refused deletions', async () => {
    s3.on(DeleteObjectsCommand)
      .resolvesOnce({})
      .resolvesOnce({ Errors: [{ Key: 'strongbox/k1001', Code: 'AccessDenied', Message: 'Object Lock' }] });
    const keys = Array.from({ length: 1001 }, (_, i) => `k${i}`);
    await expect(vault().delete(keys)).rejects.toThrow(
      /delete refused for 1 object.*k1001: AccessDenied Object Lock/,
    );
    const calls = s3.commandCalls(DeleteObjectsCommand);
    expect(calls).toHaveLength(2);
    expect(calls[0]?.args[0].input.Delete?.Objects).toHaveLength(1000);
    expect(calls[1]?.args[0].input.Delete?.Objects).toEqual([{ Key: 'strongbox/k1000' }]);
  });

  it.each([
    [{ $metadata: { httpStatusCode: 202 } }, 'started'],
    [{ $metadata: { httpStatusCode: 200 } }, 'restored'],
    [awsError('RestoreAlreadyInProgress', 409), 'ongoing'],
    [awsError('InvalidObjectState', 403), 'not-archived'],
  ])('requests a Glacier restore: %o → %s', async (outcome, status) => {
    if (outcome instanceof Error) s3.on(RestoreObjectCommand).rejects(outcome);
    else s3.on(RestoreObjectCommand).resolves(outcome);
    expect(await vault().requestRestore('backups/db/x/data.sbx', 3, 'Bulk')).toBe(status);
    expect(s3.commandCalls(RestoreObjectCommand)[0]?.args[0].input).toEqual({
      Bucket: 'acme-backups',
      Key: 'strongbox/backups/db/x/data.sbx',
      RestoreRequest: { Days: 3, GlacierJobParameters: { Tier: 'Bulk' } },
    });
  });
});

describe('S3 helpers', () => {
  it.each([
    ['s3://acme-backups', { bucket: 'acme-backups', prefix: '' }],
    ['s3://acme-backups/', { bucket: 'acme-backups', prefix: '' }],
    ['s3://acme-backups/a/b/', { bucket: 'acme-backups', prefix: 'a/b/' }],
    ['s3://acme-backups/a/b', { bucket: 'acme-backups', prefix: 'a/b/' }],
  ])('parses %s', (url, parts) => {
    expect(parseS3Url(url)).toEqual(parts);
  });

  it('refuses a URL that is not s3://bucket', () => {
    expect(() => parseS3Url('s3://B')).toThrow(PlanError);
  });

  it('names the vault by bucket and prefix', () => {
    expect(vault().url).toBe('s3://acme-backups/strongbox');
  });

  it.each([
    [undefined, undefined],
    ['ongoing-request="true"', { ongoing: true }],
    [
      'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"',
      { ongoing: false, expiresAt: new Date('2012-12-21T00:00:00Z') },
    ],
  ])('parses the Restore header %s', (header, restore) => {
    expect(parseRestoreHeader(header)).toEqual(restore);
  });

  it('URL-encodes tags for the x-amz-tagging header', () => {
    expect(
      encodeTags([
        ['strongbox:tier', 'daily'],
        ['a b', 'c&d=e'],
      ]),
    ).toBe('strongbox%3Atier=daily&a%20b=c%26d%3De');
  });

  it('builds a path-style client without the AWS checksum default for an endpoint that asks for it', async () => {
    const client = createS3Client(
      { ...config, endpoint: 'http://127.0.0.1:9000', checksums: 'when-required' },
      { AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret', AWS_REGION: 'ap-south-1' },
    );
    expect(client.config.forcePathStyle).toBe(true);
    expect(await client.config.region()).toBe('eu-west-1');
    expect(await client.config.requestChecksumCalculation()).toBe('WHEN_REQUIRED');
    expect(await client.config.responseChecksumValidation()).toBe('WHEN_REQUIRED');
    expect((await client.config.credentials()).accessKeyId).toBe('id');
  });

  it('keeps the SDK defaults on AWS, in the region of the deployment', async () => {
    const client = createS3Client(config, { AWS_REGION: 'ap-south-1' });
    expect(client.config.forcePathStyle).toBe(false);
    expect(await client.config.region()).toBe('ap-south-1');
    expect(await client.config.requestChecksumCalculation()).toBe('WHEN_SUPPORTED');
  });
});

describe('part sizes', () => {
  const MiB = 1024 * 1024;
  it('takes the configured size unless twice the expected bytes need more than 10,000 such parts', () => {
    expect(partSizeFor(8 * MiB)).toBe(8 * MiB);
    expect(partSizeFor(8 * MiB, 0)).toBe(8 * MiB);
    expect(partSizeFor(8 * MiB, 30 * 2 ** 30)).toBe(8 * MiB);
    // 200 GiB last time: 400 GiB in 10,000 parts is 40.96 MiB, rounded up to whole MiB.
    expect(partSizeFor(8 * MiB, 200 * 2 ** 30)).toBe(41 * MiB);
    // At most S3's 5 GiB, or what one Buffer holds where that is less (4 GiB under Node 20).
    expect(partSizeFor(8 * MiB, 30 * 2 ** 40)).toBe(MAX_PART_BYTES);
  });

  it('uploads in the parts the expected size asks for', async () => {
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'u1' });
    s3.on(UploadPartCommand).resolves({ ETag: '"e"' });
    s3.on(CompleteMultipartUploadCommand).resolves({});
    s3.on(PutObjectCommand).resolves({});
    const small = new S3Vault(
      { ...config, partSizeMiB: 5, queueSize: 1 },
      { client: new S3Client({ region: 'eu-west-1' }) },
    );
    const body = () => Readable.from([Buffer.alloc(12 * MiB)]);

    await small.put('backups/db/x/data.sbx', body());
    expect(s3.commandCalls(UploadPartCommand)).toHaveLength(3);

    s3.resetHistory();
    // 60 GiB last time: parts of 13 MiB, so the 12 MiB body is one PutObject.
    await small.put('backups/db/y/data.sbx', body(), { expectedBytes: 60 * 2 ** 30 });
    expect(s3.commandCalls(UploadPartCommand)).toHaveLength(0);
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(1);
  });
});

describe('a failed put whose cleanup fails too', () => {
  it('reports the put failure first and the abort refused as a sentence, never the raw reply', async () => {
    // Prepare: the part upload fails on the server, and so does every abort of the upload
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: 'u1' });
    s3.on(UploadPartCommand).rejects(awsError('InternalError', 500));
    s3.on(AbortMultipartUploadCommand).rejects(
      Object.assign(new Error('<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>'), {
        name: 'AccessDenied',
        $metadata: { httpStatusCode: 403 },
      }),
    );
    const small = new S3Vault({ ...config, partSizeMiB: 5, queueSize: 1 }, { client: new S3Client({}) });

    // Act
    const thrown = await small
      .put('backups/db/x/data.sbx', Readable.from([Buffer.alloc(6 * 1024 * 1024)]))
      .catch((e: unknown) => e);

    // Assess
    expect(thrown).toBeInstanceOf(VaultError);
    const line = describeError(thrown);
    expect(line).toMatch(
      /^put s3:\/\/acme-backups\/strongbox\/backups\/db\/x\/data\.sbx failed: InternalError/,
    );
    expect(line).toMatch(
      /; cleaning up also failed: the unfinished upload of \S+ could not be aborted \(the server answered AccessDenied \(HTTP 403\)\); prune or the bucket's lifecycle rule removes it$/,
    );
    expect(line).not.toContain('<?xml');
  });
});

describe('S3Vault.objectLock', () => {
  it.each<[string, object, object]>([
    [
      'compliance for 30 days',
      {
        ObjectLockConfiguration: {
          ObjectLockEnabled: 'Enabled',
          Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 30 } },
        },
      },
      { enabled: true, mode: 'compliance', days: 30 },
    ],
    [
      'governance for a year',
      {
        ObjectLockConfiguration: {
          ObjectLockEnabled: 'Enabled',
          Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Years: 1 } },
        },
      },
      { enabled: true, mode: 'governance', days: 365 },
    ],
    [
      'enabled without a default retention',
      { ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' } },
      { enabled: true },
    ],
  ])('reads a bucket locked %s', async (_what, answer, state) => {
    s3.on(GetObjectLockConfigurationCommand).resolves(answer);
    expect(await vault().objectLock()).toEqual(state);
    expect(s3.commandCalls(GetObjectLockConfigurationCommand)[0]?.args[0].input).toEqual({
      Bucket: 'acme-backups',
    });
  });

  it('says a bucket created without Object Lock has none, and fails on other answers', async () => {
    s3.on(GetObjectLockConfigurationCommand)
      .rejectsOnce(awsError('ObjectLockConfigurationNotFoundError', 404))
      .rejectsOnce(awsError('NotImplemented', 501));
    expect(await vault().objectLock()).toEqual({ enabled: false });
    await expect(vault().objectLock()).rejects.toThrow(
      /read the Object Lock configuration of s3:\/\/acme-backups\/strongbox failed: NotImplemented/,
    );
  });
});
