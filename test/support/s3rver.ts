/**
 * s3rver for tests: a real S3-protocol server (one Node process, files in a temp dir) on a free port,
 * with one bucket. Clients must use path-style addressing, any region, the credentials
 * {@link S3RVER_CREDENTIALS}, and `checksums: 'when-required'` (s3rver stores trailing-checksum bodies
 * verbatim; see NOTES-tools.md).
 *
 * s3rver 3.7 does not implement AbortMultipartUpload or ListMultipartUploads; both are added here over
 * its file store (an upload is the directory `<bucket>/._S3rver_uploads/<uploadId>`), so vault code
 * can be tested for leaving no multipart upload behind with the real S3 calls.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { createS3Client, S3Vault } from '#adapters/vaults/s3';
import type { VaultConfig } from '#core/plan';

/** The credentials s3rver accepts (its built-in account). */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** A running s3rver. */
export interface S3rverInstance {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  bucket: string;
  /** The directory s3rver stores into. */
  dir: string;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

/**
 * Starts s3rver on a free port with `bucket` created; stop it in `afterAll`.
 * @example
 * let s3: S3rverInstance;
 * beforeAll(async () => { s3 = await startS3rver(); });
 * afterAll(() => s3?.stop());
 */
export async function startS3rver(
  bucket = 'backups-test',
  options: {
    /**
     * Enforce S3's conditional writes, which s3rver 3.7 ignores: a PutObject or CompleteMultipartUpload
     * with `If-None-Match: *` on a key that exists answers 412 PreconditionFailed, as S3 does.
     */
    conditionalWrites?: boolean;
  } = {},
): Promise<S3rverInstance> {
  const dir = await mkdtemp(join(tmpdir(), 'strongbox-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: bucket }],
  });
  server.middleware.unshift(multipartUploadsMiddleware(dir));
  if (options.conditionalWrites) server.middleware.unshift(conditionalWritesMiddleware(server));
  let address: Awaited<ReturnType<S3rver['run']>>;
  try {
    address = await server.run();
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    bucket,
    dir,
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

type Middleware = S3rver['middleware'][number];

/** AbortMultipartUpload (`DELETE /bucket/key?uploadId=`) and ListMultipartUploads (`GET /bucket?uploads`). */
function multipartUploadsMiddleware(dir: string): Middleware {
  const uploadsDir = (bucket: string) => join(dir, bucket, '._S3rver_uploads');
  return async (ctx, next) => {
    const [, bucket = '', ...keyParts] = ctx.path.split('/');
    const key = decodeURIComponent(keyParts.join('/'));
    if (ctx.method === 'DELETE' && typeof ctx.query.uploadId === 'string' && key !== '') {
      const uploadId = ctx.query.uploadId;
      const path = join(uploadsDir(bucket), uploadId);
      const exists = /^[0-9a-f]+$/.test(uploadId) && (await stat(path).catch(() => undefined));
      if (!exists) return sendError(ctx, 404, 'NoSuchUpload', 'The specified upload does not exist.');
      await rm(path, { recursive: true, force: true });
      ctx.status = 204;
      ctx.body = null;
      return;
    }
    if (ctx.method === 'GET' && 'uploads' in ctx.query && key === '') {
      const prefix = typeof ctx.query.prefix === 'string' ? ctx.query.prefix : '';
      const ids = await readdir(uploadsDir(bucket)).catch(() => [] as string[]);
      const uploads: string[] = [];
      for (const id of ids.sort()) {
        const uploadKey = await readFile(join(uploadsDir(bucket), id, 'key'), 'utf8').catch(() => undefined);
        if (uploadKey === undefined || !uploadKey.startsWith(prefix)) continue;
        uploads.push(`<Upload><Key>${escapeXml(uploadKey)}</Key><UploadId>${id}</UploadId></Upload>`);
      }
      ctx.status = 200;
      ctx.type = 'application/xml';
      ctx.body =
        '<?xml version="1.0" encoding="UTF-8"?>' +
        '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
        `<Bucket>${escapeXml(bucket)}</Bucket><Prefix>${escapeXml(prefix)}</Prefix>` +
        `<IsTruncated>false</IsTruncated>${uploads.join('')}</ListMultipartUploadsResult>`;
      return;
    }
    await next();
  };
}

/** `If-None-Match: *` on PutObject (`PUT` without `uploadId`) and CompleteMultipartUpload (`POST ?uploadId`). */
function conditionalWritesMiddleware(server: S3rver): Middleware {
  return async (ctx, next) => {
    const [, bucket = '', ...keyParts] = ctx.path.split('/');
    const key = decodeURIComponent(keyParts.join('/'));
    const uploadId = typeof ctx.query.uploadId === 'string';
    const writes = (ctx.method === 'PUT' && !uploadId) || (ctx.method === 'POST' && uploadId);
    if (
      writes &&
      key !== '' &&
      ctx.headers['if-none-match'] === '*' &&
      (await server.store.existsObject(bucket, key))
    ) {
      return sendError(
        ctx,
        412,
        'PreconditionFailed',
        'At least one of the pre-conditions you specified did not hold',
      );
    }
    await next();
  };
}

function sendError(ctx: Parameters<Middleware>[0], status: number, code: string, message: string): void {
  ctx.status = status;
  ctx.type = 'application/xml';
  ctx.body =
    '<?xml version="1.0" encoding="UTF-8"?>' +
    `<Error><Code>${code}</Code><Message>${message}</Message><RequestId>${randomBytes(8).toString('hex')}</RequestId></Error>`;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * An S3Vault on a running s3rver, as the agent would open it from a plan whose vault points there.
 * @example const vault = s3rverVault(s3, plan.vault)
 */
export function s3rverVault(s3: Pick<S3rverInstance, 'bucket' | 'endpoint'>, config: VaultConfig): S3Vault {
  const onS3rver: VaultConfig = {
    ...config,
    url: `s3://${s3.bucket}`,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    checksums: 'when-required',
  };
  return new S3Vault(onS3rver, { client: s3rverClient(onS3rver) });
}

/**
 * A vault section for `prefix` on a running s3rver, with the smallest parts S3 allows (5 MiB) so
 * multipart uploads are cheap to reach; `overrides` changes any field.
 * @example const vault = new S3Vault(s3rverVaultConfig(s3, 'p1'), { client: s3rverClient(config) })
 */
export function s3rverVaultConfig(
  s3: Pick<S3rverInstance, 'bucket' | 'endpoint'>,
  prefix: string,
  overrides: Partial<VaultConfig> = {},
): VaultConfig {
  return {
    url: `s3://${s3.bucket}/${prefix}`,
    endpoint: s3.endpoint,
    region: 'us-east-1',
    checksums: 'when-required',
    partSizeMiB: 5,
    queueSize: 2,
    storageClass: 'STANDARD',
    ...overrides,
  };
}

/** An S3 client of `config` with s3rver's credentials (tests add middleware to it). */
export function s3rverClient(config: VaultConfig): S3Client {
  return createS3Client(config, {
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  });
}
