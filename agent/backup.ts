/**
 * Taking one backup: source → meter → compress → encrypt → meter → vault, then the manifest, last.
 *
 * Write ordering (docs/format.md): the data object is stored first; the manifest — the commit point — is
 * written only after every stage has finished cleanly, the source's tools exited 0, and the vault reports
 * exactly the bytes that were sent. Any failure aborts every stage, removes the data object if it was
 * stored, and leaves no manifest, so a failed backup never looks complete.
 *
 * Memory: bounded by the stages (encrypt ~2 chunks, the S3 upload queueSize × partSize), never by the
 * size of the data; nothing is written to a temp file.
 */
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compressionLevel, compressor } from '#agent/pipeline/compress';
import { createEncryptStream } from '#agent/pipeline/encrypt';
import { settleAll } from '#agent/pipeline/flow';
import { Meter } from '#agent/pipeline/meter';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import { VERSION } from '#agent/version';
import { newBackupId } from '#core/backup-id';
import { listBackups, previousComplete } from '#core/catalog';
import { VaultError } from '#core/errors';
import { manifestKey, OBJECT_TAGS, objectKey } from '#core/layout';
import { encryptionContext, type Manifest, serializeManifest } from '#core/manifest';
import { type Job, retentionOf } from '#core/plan';
import type { PutOptions } from '#core/ports';
import { retainUntil } from '#core/retention';
import { DEFAULT_CHUNK_LOG2, STREAM_SCHEME } from '#core/stream-format';
import { type Tier, tierOf } from '#core/tiers';

/** The name of a backup's single data object, by compression. */
export function dataObjectName(algorithm: Job['compression']['algorithm']): string {
  return algorithm === 'none' ? 'data.sbx' : `data.${algorithm === 'zstd' ? 'zst' : 'gz'}.sbx`;
}

export interface BackupOptions {
  /** Backup id chosen by the caller (run-backup decides it from the schedule); a fresh one otherwise. */
  backupId?: string;
  /** GFS tier chosen by the caller; otherwise from the previous complete backup. */
  tier?: Tier;
  /** Stops the backup; nothing is left that looks complete. @default the runtime's signal */
  signal?: AbortSignal;
}

/** What a finished backup reports (the `--json` output of `strongbox backup`). */
export interface BackupResult {
  job: string;
  backupId: string;
  tier: Tier;
  kind: Job['source']['kind'];
  sourceBytes: number;
  storedBytes: number;
  durationSeconds: number;
  manifestKey: string;
}

/**
 * Backs up one job and writes its manifest.
 * @example const result = await runBackup(runtime, findJob(runtime.plan, 'appdb'))
 */
export async function runBackup(
  runtime: Runtime,
  job: Job,
  options: BackupOptions = {},
): Promise<BackupResult> {
  const { vault, keys, clock } = runtime;
  const started = clock.now();
  const backupId = options.backupId ?? newBackupId(started, randomBytes(3).toString('hex'));
  const tier = options.tier ?? (await tierFromCatalog(runtime, job, started));
  const context = encryptionContext(job.name, backupId);
  const dataKey = await keys.generateDataKey(context);
  const name = dataObjectName(job.compression.algorithm);
  const key = objectKey(job.name, backupId, name);
  const putOptions = objectPutOptions(runtime, job, tier, started);
  runtime.log(`backup ${job.name} ${backupId} (${tier}) → ${vault.url}`);

  const controller = new AbortController();
  const outer = options.signal ?? runtime.signal;
  const onAbort = () => controller.abort(outer.reason);
  if (outer.aborted) onAbort();
  outer.addEventListener('abort', onAbort, { once: true });
  let stored = false;
  try {
    const driver = sourceDriver(job.source);
    const source = await driver.backup(job.source, { env: runtime.env, signal: controller.signal });
    const sourceMeter = new Meter();
    const storedMeter = new Meter();
    const compress = compressor(job.compression.algorithm, job.compression.level, controller.signal);
    const body = new PassThrough();
    const [, upload, sourceResult] = await settleAll(
      [
        pipeline(
          source.stream,
          sourceMeter,
          compress.stream,
          createEncryptStream(dataKey.plaintext),
          storedMeter,
          body,
          {
            signal: controller.signal,
          },
        ),
        vault.put(key, body, { ...putOptions, signal: controller.signal }).then((r) => {
          stored = true;
          return r;
        }),
        source.done,
        compress.done,
      ] as const,
      controller,
    );
    if (upload.sizeBytes !== storedMeter.bytes) {
      throw new VaultError(
        `${key}: the vault stored ${upload.sizeBytes} bytes but ${storedMeter.bytes} were sent`,
      );
    }
    const finished = clock.now();
    const manifest: Manifest = {
      format: 'strongbox.manifest',
      version: 1,
      job: job.name,
      backupId,
      host: runtime.host,
      kind: job.source.kind,
      tier,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      compression: {
        algorithm: job.compression.algorithm,
        level: compressionLevel(job.compression.algorithm, job.compression.level),
      },
      encryption: {
        scheme: STREAM_SCHEME,
        chunkBytes: 2 ** DEFAULT_CHUNK_LOG2,
        key: dataKey.key,
        wrappedKey: dataKey.wrapped,
        context,
      },
      objects: [
        {
          name,
          storedBytes: storedMeter.bytes,
          sha256: storedMeter.sha256(),
          sourceBytes: sourceMeter.bytes,
          storageClass: putOptions.storageClass,
        },
      ],
      tools: { strongbox: VERSION, ...sourceResult.tools },
      source: sourceResult.details,
    };
    const { tags: _dataTags, ...manifestOptions } = putOptions;
    await vault.put(manifestKey(job.name, backupId), Readable.from([serializeManifest(manifest)]), {
      ...manifestOptions,
      storageClass: 'STANDARD',
      tags: { [OBJECT_TAGS.job]: job.name },
      contentType: 'application/json',
    });
    const durationSeconds = (clock.now().getTime() - started.getTime()) / 1000;
    return {
      job: job.name,
      backupId,
      tier,
      kind: job.source.kind,
      sourceBytes: sourceMeter.bytes,
      storedBytes: storedMeter.bytes,
      durationSeconds,
      manifestKey: manifestKey(job.name, backupId),
    };
  } catch (error) {
    if (stored) {
      // The data object is useless without its manifest; remove it (Object Lock may refuse: then it
      // stays as an incomplete backup that `prune` reports).
      await vault.delete([key]).catch(() => {});
    }
    throw error;
  } finally {
    dataKey.plaintext.fill(0);
    outer.removeEventListener('abort', onAbort);
  }
}

/** Tags, storage class and Object Lock retention of a backup's data object. */
function objectPutOptions(
  runtime: Runtime,
  job: Job,
  tier: Tier,
  started: Date,
): PutOptions & { storageClass: string } {
  const lock = runtime.plan.vault.objectLock;
  return {
    tags: { [OBJECT_TAGS.tier]: tier, [OBJECT_TAGS.job]: job.name },
    storageClass: runtime.plan.vault.storageClass,
    ...(lock
      ? {
          lock: {
            mode: lock.mode === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE',
            retainUntil: retainUntil(started, tier, retentionOf(runtime.plan, job)),
          },
        }
      : {}),
  };
}

/** The tier of a backup starting now, from the newest complete backup before it (a listing, no reads). */
async function tierFromCatalog(runtime: Runtime, job: Job, started: Date): Promise<Tier> {
  const previous = previousComplete(await listBackups(runtime.vault, job.name), started);
  return tierOf(started, previous?.startedAt, runtime.plan.timezone);
}
