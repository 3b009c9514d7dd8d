/**
 * A vault in an S3 bucket (AWS) or an S3-compatible server (MinIO, Ceph, s3rver), at
 * `s3://bucket/optional/prefix`.
 *
 * Puts stream through the vault's own multipart writer ({@link PartWriter}): one PutObject for bodies
 * smaller than a part, else CreateMultipartUpload, UploadPart with `queueSize` parts at once, and
 * CompleteMultipartUpload. Parts are `partSizeMiB`, or larger when the put's `expectedBytes` (the
 * object's size in the previous backup) needs it: big enough for twice that size in S3's 10,000 parts
 * ({@link partSizeFor}), so an object can double between two backups. An object that outgrows that
 * (a job's first backup has no previous size) still fits: after the first half of the parts the part
 * size doubles every 400 parts ({@link partSizeAt}), which at 5 MiB reaches S3's 5 TiB object limit.
 * Memory: (queueSize + 1) part buffers per put, allocated once and reused, larger ones only once the
 * parts grow (docs/adr/0007-s3-memory.md). Tags, storage class, content type and object lock go in
 * the create request (PutObject or CreateMultipartUpload), so an object is never visible untagged. A
 * put that fails or is aborted leaves no object and no multipart upload: the first failed request
 * stops reading the body, and the vault sends AbortMultipartUpload (ignoring NoSuchUpload).
 *
 * Every write is create-only: `If-None-Match: *` goes on the PutObject and on the
 * CompleteMultipartUpload (UploadPart carries no such header, as S3 documents), so a put never
 * replaces an object, and a put to a key that exists fails with a VaultError saying so (S3 answers 412). The deployment's host policy denies writes without the header, so a stolen
 * host credential cannot overwrite a backup either (docs/deploy.md).
 *
 * Credentials come from the SDK's default provider chain (environment, profile, instance role), or
 * from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` in the `env` the entry point passes down.
 */

import { constants as bufferConstants } from 'node:buffer';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  type PutObjectCommandInput,
  paginateListObjectsV2,
  RestoreObjectCommand,
  S3Client,
  type S3ClientConfig,
  type StorageClass,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { awsErrorName, awsHttpStatus, describeAwsReply, isRetryableAwsError } from '#adapters/aws/errors';
import { AGENT_ENV } from '#core/deployment';
import {
  describeError,
  NotFoundError,
  PlanError,
  StrongboxError,
  VaultError,
  withCleanupProblem,
} from '#core/errors';
import type { VaultConfig } from '#core/plan';
import type { ObjectLockState, PutOptions, StoredObject, Vault } from '#core/ports';
import type { RetrievalTier } from '#core/storage-classes';
import { checkKey } from './vault-key';

const MiB = 1024 * 1024;
/** S3 accepts at most this many tags per object. */
export const MAX_TAGS = 10;
/** DeleteObjects takes at most this many keys per request. */
const DELETE_BATCH = 1000;

/** S3's limits of a multipart upload (../shared/NOTES-aws.md). */
export const MAX_PARTS = 10_000;
/** S3 allows parts of up to 5 GiB; a Buffer of Node 20 holds at most 4 GiB (the schedule still reaches 5 TiB). */
export const MAX_PART_BYTES = Math.min(5 * 1024 * MiB, bufferConstants.MAX_LENGTH);

/** When the parts of one upload grow: after how many parts at the first size, then every how many. */
export interface PartGrowth {
  afterParts: number;
  everyParts: number;
}
/**
 * Half of S3's parts at the size chosen for the put, so an object up to its expected size (or 39 GiB at
 * 8 MiB on a first backup) keeps the memory it was given; then doubling every 400 parts.
 */
export const PART_GROWTH: PartGrowth = { afterParts: MAX_PARTS / 2, everyParts: 400 };

/**
 * The size of part `partNumber` (1-based) of an upload whose parts start at `first`: `first` up to
 * `growth.afterParts`, then twice as large every `growth.everyParts` parts, at most {@link MAX_PART_BYTES}.
 * @example partSizeAt(8 * MiB, 5001) // 16 MiB
 */
export function partSizeAt(first: number, partNumber: number, growth: PartGrowth = PART_GROWTH): number {
  if (partNumber <= growth.afterParts) return first;
  const doublings = Math.ceil((partNumber - growth.afterParts) / growth.everyParts);
  return Math.min(MAX_PART_BYTES, first * 2 ** doublings);
}

/**
 * The part size of a put: `minimum`, or the smallest whole MiB that fits twice `expectedBytes` in
 * {@link MAX_PARTS} parts, at most {@link MAX_PART_BYTES}.
 * @example partSizeFor(8 * MiB, 200 * 2 ** 30) // 41 MiB: 400 GiB in 10,000 parts
 */
export function partSizeFor(minimum: number, expectedBytes?: number): number {
  if (expectedBytes === undefined || !(expectedBytes > 0)) return minimum;
  const needed = Math.ceil((2 * expectedBytes) / MAX_PARTS / MiB) * MiB;
  return Math.min(MAX_PART_BYTES, Math.max(minimum, needed));
}

/** Options of an S3 vault. */
export interface S3VaultOptions {
  /** A client to use instead of one built from the config (tests, Lambdas with a module-scope client). */
  client?: S3Client;
  /** When the parts of an upload grow ({@link PART_GROWTH}; tests use small numbers). */
  partGrowth?: PartGrowth;
  /** The environment, read by the entry point: `AWS_REGION` and optional static credentials. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** Glacier retrieval tiers (core/storage-classes). */
export type { RetrievalTier } from '#core/storage-classes';

/**
 * What a restore request found: a retrieval was `started`, was already `ongoing`, a temporary copy is
 * already `restored` (its expiry extended), or the object is `not-archived` and readable now.
 */
export type RestoreRequestStatus = 'started' | 'ongoing' | 'restored' | 'not-archived';

/** The parts of an `s3://bucket/prefix` URL; the prefix is empty or ends with `/`. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(\/.*)?$/.exec(url);
  if (!match) throw new PlanError([`vault.url: '${url}' is not s3://bucket[/prefix]`]);
  const path = (match[2] ?? '').replace(/^\/+|\/+$/g, '');
  return { bucket: match[1] as string, prefix: path === '' ? '' : `${path}/` };
}

/**
 * The `Restore` header of HeadObject: `ongoing-request="true"` while a retrieval runs, then
 * `ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`.
 * @example parseRestoreHeader('ongoing-request="true"') // { ongoing: true }
 */
export function parseRestoreHeader(header: string | undefined): StoredObject['restore'] {
  if (!header) return undefined;
  const ongoing = /ongoing-request="(true|false)"/.exec(header)?.[1];
  if (ongoing === undefined) return undefined;
  const expiry = /expiry-date="([^"]+)"/.exec(header)?.[1];
  const expiresAt = expiry ? new Date(expiry) : undefined;
  return {
    ongoing: ongoing === 'true',
    ...(expiresAt && !Number.isNaN(expiresAt.getTime()) ? { expiresAt } : {}),
  };
}

/** The S3 client a vault config asks for. */
export function createS3Client(
  config: VaultConfig,
  env: Readonly<Record<string, string | undefined>> = {},
): S3Client {
  const onAws = config.endpoint === undefined;
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  const clientConfig: S3ClientConfig = {
    // On AWS the deployment's region (set on hosts) is where the bucket lives; else the plan's.
    region: (onAws ? env[AGENT_ENV.region] : undefined) ?? config.region,
    endpoint: config.endpoint,
    forcePathStyle: config.forcePathStyle ?? !onAws,
    followRegionRedirects: onAws,
  };
  if (config.checksums === 'when-required') {
    clientConfig.requestChecksumCalculation = 'WHEN_REQUIRED';
    clientConfig.responseChecksumValidation = 'WHEN_REQUIRED';
  }
  if (accessKeyId && secretAccessKey) {
    clientConfig.credentials = { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN };
  }
  return new S3Client(clientConfig);
}

/** A {@link Vault} over an S3 bucket and prefix. */
export class S3Vault implements Vault {
  readonly url: string;
  readonly bucket: string;
  /** Prefix of every key in the bucket: empty or ending with `/`. */
  readonly prefix: string;
  readonly client: S3Client;
  readonly #partSizeBytes: number;
  readonly #queueSize: number;
  readonly #partGrowth: PartGrowth;

  /** @throws PlanError when the URL is not `s3://bucket[/prefix]`. */
  constructor(config: VaultConfig, options: S3VaultOptions = {}) {
    const { bucket, prefix } = parseS3Url(config.url);
    this.bucket = bucket;
    this.prefix = prefix;
    this.url = `s3://${bucket}${prefix === '' ? '' : `/${prefix.slice(0, -1)}`}`;
    this.client = options.client ?? createS3Client(config, options.env);
    this.#partSizeBytes = config.partSizeMiB * MiB;
    this.#queueSize = config.queueSize;
    this.#partGrowth = options.partGrowth ?? PART_GROWTH;
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<{ sizeBytes: number }> {
    checkKey(key);
    const tags = Object.entries(options.tags ?? {});
    if (tags.length > MAX_TAGS) throw new VaultError(`${key}: ${tags.length} tags, S3 allows ${MAX_TAGS}`);
    const signal = options.signal;
    const counter = new ByteCounter();
    // Who failed first decides what the caller sees: the body's own error, the abort, or S3's.
    let failure: { origin: 'body' | 'abort' | 's3'; error: unknown } | undefined;
    const fail = (origin: 'abort' | 's3', error: unknown) => {
      failure ??= { origin, error };
      counter.destroy(error as Error);
    };
    let stopping = false;
    const feeding = pipeline(body, counter).catch((error: unknown) => {
      if (!stopping) failure ??= { origin: 'body', error };
    });
    const onAbort = () => fail('abort', signal?.reason);
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });

    const params = {
      Bucket: this.bucket,
      Key: this.#key(key),
      ...(tags.length > 0 ? { Tagging: encodeTags(tags) } : {}),
      ...(options.storageClass ? { StorageClass: options.storageClass as StorageClass } : {}),
      ...(options.contentType ? { ContentType: options.contentType } : {}),
      ...(options.lock
        ? { ObjectLockMode: options.lock.mode, ObjectLockRetainUntilDate: options.lock.retainUntil }
        : {}),
    };
    const upload = new PartWriter(
      this.#watchedClient((error) => fail('s3', error)),
      params,
      partSizeFor(this.#partSizeBytes, options.expectedBytes),
      this.#queueSize,
      this.#partGrowth,
    );
    try {
      await upload.write(counter);
      await feeding;
      return { sizeBytes: counter.bytes };
    } catch (error) {
      stopping = true;
      counter.destroy();
      await feeding;
      // The abort is cleanup: when it fails, the put's own failure is still what the caller sees first.
      let abortProblem: string | undefined;
      // Parts still uploading would outlive an abort sent now (S3 keeps a part that lands after it).
      await upload.settled();
      if (upload.uploadId) {
        try {
          await this.#abortMultipart(key, upload.uploadId);
        } catch (abortError) {
          abortProblem = `cleaning up also failed: the unfinished upload of ${this.#describe(key)} could not be aborted (${describeAwsReply(abortError) ?? describeError(abortError)}); prune or the bucket's lifecycle rule removes it`;
        }
      }
      const noted = (thrown: unknown) => (abortProblem ? withCleanupProblem(thrown, abortProblem) : thrown);
      if (failure?.origin === 'abort') throw noted(signal?.reason ?? error);
      if (failure?.origin === 'body') throw noted(failure.error);
      const cause = failure?.error ?? error;
      if (awsErrorName(cause) === 'PreconditionFailed' || awsHttpStatus(cause) === 412) {
        throw noted(
          new VaultError(
            `put ${this.#describe(key)} refused: the object already exists, and Strongbox writes every object once (If-None-Match: *), never over another`,
            { cause },
          ),
        );
      }
      throw noted(toVaultError(cause, `put ${this.#describe(key)}`));
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    checkKey(key);
    try {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.#key(key) }),
        { abortSignal: options.signal },
      );
      if (!(response.Body instanceof Readable)) {
        throw new VaultError(`get ${this.#describe(key)}: the response has no readable body`);
      }
      return response.Body;
    } catch (error) {
      if (awsErrorName(error) === 'NoSuchKey' || awsErrorName(error) === 'NotFound') {
        throw new NotFoundError(`${key} does not exist in ${this.url}`, { cause: error });
      }
      if (awsErrorName(error) === 'InvalidObjectState') {
        throw new VaultError(
          `${this.#describe(key)} is archived (Glacier/Deep Archive): request a restore and read it when it finished`,
          { cause: error },
        );
      }
      throw toVaultError(error, `get ${this.#describe(key)}`);
    }
  }

  async head(key: string): Promise<StoredObject | undefined> {
    checkKey(key);
    try {
      const response = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.#key(key) }),
      );
      const restore = parseRestoreHeader(response.Restore);
      return {
        key,
        sizeBytes: response.ContentLength ?? 0,
        lastModified: response.LastModified ?? new Date(0),
        storageClass: response.StorageClass ?? 'STANDARD',
        ...(restore ? { restore } : {}),
      };
    } catch (error) {
      // HEAD responses have no body: S3 reports a missing key as `NotFound` (a missing bucket too).
      if (awsErrorName(error) === 'NotFound' || awsErrorName(error) === 'NoSuchKey') return undefined;
      throw toVaultError(error, `head ${this.#describe(key)}`);
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    const pages = paginateListObjectsV2(
      { client: this.client },
      { Bucket: this.bucket, Prefix: `${this.prefix}${prefix}` },
    );
    try {
      for await (const page of pages) {
        for (const item of page.Contents ?? []) {
          if (item.Key === undefined || item.Key.length <= this.prefix.length) continue;
          const status = item.RestoreStatus;
          yield {
            key: item.Key.slice(this.prefix.length),
            sizeBytes: item.Size ?? 0,
            lastModified: item.LastModified ?? new Date(0),
            storageClass: item.StorageClass ?? 'STANDARD',
            ...(status
              ? {
                  restore: {
                    ongoing: status.IsRestoreInProgress ?? false,
                    ...(status.RestoreExpiryDate ? { expiresAt: status.RestoreExpiryDate } : {}),
                  },
                }
              : {}),
          };
        }
      }
    } catch (error) {
      throw toVaultError(error, `list ${this.url}/${prefix}`);
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) checkKey(key);
    for (let start = 0; start < keys.length; start += DELETE_BATCH) {
      const batch = keys.slice(start, start + DELETE_BATCH);
      let errors: { Key?: string; Code?: string; Message?: string }[];
      try {
        const response = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((key) => ({ Key: this.#key(key) })), Quiet: true },
          }),
        );
        errors = response.Errors ?? [];
      } catch (error) {
        throw toVaultError(error, `delete ${batch.length} object(s) in ${this.url}`);
      }
      const refused = errors.filter((e) => e.Code !== 'NoSuchKey');
      if (refused.length > 0) {
        const first = refused[0];
        throw new VaultError(
          `delete refused for ${refused.length} object(s) in ${this.url}, e.g. ${first?.Key}: ${first?.Code} ${first?.Message ?? ''}`.trim(),
        );
      }
    }
  }

  async objectLock(): Promise<ObjectLockState> {
    try {
      const response = await this.client.send(new GetObjectLockConfigurationCommand({ Bucket: this.bucket }));
      const config = response.ObjectLockConfiguration;
      const retention = config?.Rule?.DefaultRetention;
      const days = retention?.Days ?? (retention?.Years !== undefined ? retention.Years * 365 : undefined);
      return {
        enabled: config?.ObjectLockEnabled === 'Enabled',
        ...(retention?.Mode ? { mode: retention.Mode === 'COMPLIANCE' ? 'compliance' : 'governance' } : {}),
        ...(days !== undefined ? { days } : {}),
      };
    } catch (error) {
      // S3's answer for a bucket created without Object Lock.
      if (awsErrorName(error) === 'ObjectLockConfigurationNotFoundError') return { enabled: false };
      throw toVaultError(error, `read the Object Lock configuration of ${this.url}`);
    }
  }

  async removeAbandoned(
    prefix: string,
    olderThan: Date,
    options: { dryRun?: boolean } = {},
  ): Promise<string[]> {
    const removed: string[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.#key(prefix),
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
        for (const upload of page.Uploads ?? []) {
          if (!upload.Key || !upload.UploadId || !upload.Initiated || upload.Initiated >= olderThan) continue;
          if (!options.dryRun) {
            await this.client.send(
              new AbortMultipartUploadCommand({
                Bucket: this.bucket,
                Key: upload.Key,
                UploadId: upload.UploadId,
              }),
            );
          }
          removed.push(upload.Key.slice(this.prefix.length));
        }
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
      } while (keyMarker !== undefined);
    } catch (error) {
      throw toVaultError(error, `remove abandoned uploads below ${this.url}/${prefix}`);
    }
    return removed.sort();
  }

  /**
   * Asks S3 for a temporary readable copy of an archived (Glacier, Deep Archive) object, kept `days`
   * days. Idempotent: asking again while a retrieval runs reports `ongoing`.
   * @example await vault.requestRestore('backups/db/20241206T020000Z-3f9a1c/data.sbx', 3, 'Standard')
   */
  async requestRestore(key: string, days: number, tier: RetrievalTier): Promise<RestoreRequestStatus> {
    checkKey(key);
    if (!Number.isInteger(days) || days < 1) throw new RangeError(`restore days must be ≥ 1, got ${days}`);
    try {
      const response = await this.client.send(
        new RestoreObjectCommand({
          Bucket: this.bucket,
          Key: this.#key(key),
          RestoreRequest: { Days: days, GlacierJobParameters: { Tier: tier } },
        }),
      );
      return response.$metadata.httpStatusCode === 200 ? 'restored' : 'started';
    } catch (error) {
      const name = awsErrorName(error);
      if (name === 'RestoreAlreadyInProgress') return 'ongoing';
      if (name === 'InvalidObjectState') return 'not-archived';
      if (name === 'NoSuchKey' || name === 'NotFound')
        throw new NotFoundError(`${key} does not exist in ${this.url}`, { cause: error });
      throw toVaultError(error, `restore ${this.#describe(key)}`);
    }
  }

  #key(key: string): string {
    return `${this.prefix}${key}`;
  }

  #describe(key: string): string {
    return `s3://${this.bucket}/${this.#key(key)}`;
  }

  /** The client for PartWriter, reporting the first failed request so that reading the body stops at once. */
  #watchedClient(onError: (error: unknown) => void): S3Client {
    const client = this.client;
    // PartWriter uses only `send` and `config`. Without this it would go on reading the body until it
    // next waits for a part, and report the failure only then.
    return {
      config: client.config,
      send: (command: Parameters<S3Client['send']>[0]) =>
        client.send(command).catch((error: unknown) => {
          onError(error);
          throw error;
        }),
    } as unknown as S3Client;
  }

  async #abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.#key(key), UploadId: uploadId }),
      );
    } catch (error) {
      if (awsErrorName(error) === 'NoSuchUpload') return; // already gone
      throw toVaultError(error, `abort the multipart upload of ${this.#describe(key)} (id ${uploadId})`);
    }
  }
}

/**
 * Writes one object from a stream as one PutObject (bodies smaller than a part) or a multipart upload of
 * `queueSize` parts in flight. The parts are `queueSize + 1` buffers of the part size, allocated once
 * per put and reused: each chunk is copied once into the part being filled, and a buffer is filled again
 * only after its UploadPart answered. So a put holds (queueSize + 1) × the part size and makes no garbage
 * of part size (lib-storage's Upload concatenated every part into a new buffer, freed only at a late GC).
 * When the parts grow ({@link partSizeAt}) a buffer of the smaller size is let go as it comes back.
 * The first failed request ends {@link write}; the caller aborts the multipart upload ({@link uploadId}).
 */
class PartWriter {
  uploadId: string | undefined;
  readonly #free: Buffer[] = [];
  #allocated = 0;
  readonly #parts: CompletedPart[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  /** Parts handed to UploadPart so far; the one being filled is number `#sent + 1`. */
  #sent = 0;
  #failed: { error: unknown } | undefined;

  constructor(
    private readonly client: S3Client,
    private readonly params: Omit<PutObjectCommandInput, 'Body'> & { Bucket: string; Key: string },
    private readonly firstPartSize: number,
    private readonly queueSize: number,
    private readonly growth: PartGrowth,
  ) {}

  async write(body: AsyncIterable<Buffer>): Promise<void> {
    let part = this.#take(this.#sizeOfNext());
    let filled = 0;
    for await (const chunk of body) {
      let offset = 0;
      while (offset < chunk.length) {
        const n = Math.min(chunk.length - offset, part.length - filled);
        chunk.copy(part, filled, offset, offset + n);
        filled += n;
        offset += n;
        if (filled === part.length) {
          await this.#send(part, filled);
          part = await this.#next(this.#sizeOfNext());
          filled = 0;
        }
      }
    }
    if (this.uploadId === undefined && this.#parts.length === 0 && this.#inFlight.size === 0) {
      // Smaller than a part: one create-only PutObject.
      await this.client.send(
        new PutObjectCommand({ ...this.params, Body: part.subarray(0, filled), IfNoneMatch: '*' }),
      );
      return;
    }
    if (filled > 0) await this.#send(part, filled);
    await this.settled();
    this.#throwIfFailed();
    this.#parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.params.Bucket,
        Key: this.params.Key,
        UploadId: this.uploadId,
        MultipartUpload: { Parts: this.#parts },
        IfNoneMatch: '*',
      }),
    );
  }

  /** Resolves when no UploadPart is in flight (each one's failure is already recorded). */
  async settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.race(this.#inFlight);
  }

  /** Starts the UploadPart of `part[0, length)`; the buffer returns to the pool when S3 answered. */
  async #send(part: Buffer, length: number): Promise<void> {
    while (this.#inFlight.size >= this.queueSize) await Promise.race(this.#inFlight);
    this.#throwIfFailed();
    if (this.uploadId === undefined) {
      // As lib-storage did: with checksums on (the SDK's default), the parts carry CRC32s that the
      // upload must declare at creation and the completion must list.
      const checksums = await this.client.config.requestChecksumCalculation();
      const created = await this.client.send(
        new CreateMultipartUploadCommand({
          ...this.params,
          ...(checksums === 'WHEN_SUPPORTED' ? { ChecksumAlgorithm: 'CRC32' as const } : {}),
        }),
      );
      if (!created.UploadId)
        throw new Error(`CreateMultipartUpload of ${this.params.Key} returned no UploadId`);
      this.uploadId = created.UploadId;
    }
    const partNumber = this.#sent + 1;
    if (partNumber > MAX_PARTS) {
      throw new VaultError(
        `${this.params.Key}: more than ${MAX_PARTS} parts (from ${this.firstPartSize / MiB} MiB, growing to ${MAX_PART_BYTES / MiB} MiB): larger than S3 stores in one object`,
      );
    }
    this.#sent = partNumber;
    const sending = this.client
      .send(
        new UploadPartCommand({
          Bucket: this.params.Bucket,
          Key: this.params.Key,
          UploadId: this.uploadId,
          PartNumber: partNumber,
          Body: part.subarray(0, length),
          ContentLength: length,
        }),
      )
      .then(
        (result) => {
          if (!result.ETag)
            throw new Error(`UploadPart ${partNumber} of ${this.params.Key} returned no ETag`);
          const { ETag, ChecksumCRC32, ChecksumCRC32C, ChecksumCRC64NVME, ChecksumSHA1, ChecksumSHA256 } =
            result;
          this.#parts.push({
            PartNumber: partNumber,
            ETag,
            ...(ChecksumCRC32 ? { ChecksumCRC32 } : {}),
            ...(ChecksumCRC32C ? { ChecksumCRC32C } : {}),
            ...(ChecksumCRC64NVME ? { ChecksumCRC64NVME } : {}),
            ...(ChecksumSHA1 ? { ChecksumSHA1 } : {}),
            ...(ChecksumSHA256 ? { ChecksumSHA256 } : {}),
          });
          this.#free.push(part);
        },
        (error: unknown) => {
          this.#failed ??= { error };
        },
      )
      .finally(() => this.#inFlight.delete(sending));
    this.#inFlight.add(sending);
  }

  /** The size of the part to fill next. */
  #sizeOfNext(): number {
    return partSizeAt(this.firstPartSize, this.#sent + 1, this.growth);
  }

  /**
   * The next part buffer of `size` bytes: a free one, a new one while fewer than queueSize + 1 exist,
   * else the first freed.
   */
  async #next(size: number): Promise<Buffer> {
    while (this.#free.length === 0 && this.#allocated > this.queueSize) {
      await Promise.race(this.#inFlight);
      this.#throwIfFailed();
    }
    return this.#take(size);
  }

  #take(size: number): Buffer {
    for (let free = this.#free.pop(); free; free = this.#free.pop()) {
      if (free.length === size) return free;
      this.#allocated -= 1; // smaller than the parts have grown to: let it go
    }
    this.#allocated += 1;
    return Buffer.allocUnsafeSlow(size);
  }

  #throwIfFailed(): void {
    if (this.#failed) throw this.#failed.error;
  }
}

/** Counts the bytes passing through. */
class ByteCounter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/** `k=v&k2=v2`, each part URL-encoded, as the `x-amz-tagging` header takes it. */
export function encodeTags(tags: readonly [string, string][]): string {
  return tags.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
}

/**
 * An S3 or network error as a VaultError whose `retryable` says whether trying again may help
 * (throttling, 5xx, network); Strongbox errors pass unchanged.
 */
export function toVaultError(error: unknown, action: string): StrongboxError {
  if (error instanceof StrongboxError) return error;
  const name = awsErrorName(error);
  const status = awsHttpStatus(error);
  const hint = name === 'AccessDenied' ? ' (check the IAM policy of this host or function)' : '';
  // A network error (ECONNREFUSED, ENOTFOUND, …) is left to the cause, which core/errors describeError
  // turns into a sentence naming the endpoint.
  const network = status === undefined && typeof (error as { syscall?: unknown })?.syscall === 'string';
  const message = error instanceof Error ? error.message : String(error);
  const detail = network ? '' : `: ${name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${message}`;
  return new VaultError(`${action} failed${detail}${hint}`, {
    cause: error,
    retryable: isRetryableAwsError(error),
  });
}
