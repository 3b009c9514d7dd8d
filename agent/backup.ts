/**
 * Taking one backup: for each data object the source produces, source → meter → compress → encrypt →
 * meter → vault; then the manifest, last. An object the source's server already compressed as the job
 * asks (`SourceObject.compressed`) skips the compress stage.
 *
 * Write ordering (docs/format.md): data objects are stored first; the manifest — the commit point — is
 * written only after every object's stages finished cleanly, the source's tools exited 0, and the vault
 * reported exactly the bytes that were sent for every object. Any failure aborts every stage, removes
 * each data object that was stored, and leaves no manifest, so a failed backup never looks complete.
 *
 * Memory: bounded by the stages of the objects being stored at once (encrypt ~2 chunks, the S3 upload
 * (queueSize + 1) × its part size each, the part size chosen from the object's previous stored size), never by the size of the data; nothing is written to a temp file.
 */
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describeAwsReply } from '#adapters/aws/errors';
import { withHooks } from '#agent/hooks';
import { compressionLevel, compressor } from '#agent/pipeline/compress';
import { createEncryptStream } from '#agent/pipeline/encrypt';
import { TaskGroup } from '#agent/pipeline/flow';
import { Meter } from '#agent/pipeline/meter';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import { VERSION } from '#agent/version';
import type { Finding } from '#core/agent-output';
import { newBackupId } from '#core/backup-id';
import { type BackupListing, listBackups, previousComplete } from '#core/catalog';
import { describeError, PlanError, SourceError, VaultError, withCleanupProblem } from '#core/errors';
import {
  backupPrefix,
  jobPrefix,
  MANIFEST_NAME,
  manifestKey,
  OBJECT_NAME,
  OBJECT_TAGS,
  objectKey,
} from '#core/layout';
import {
  encryptionContext,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  type Manifest,
  type ManifestObject,
  serializeManifest,
  storedObjectName,
} from '#core/manifest';
import { type Job, retentionOf } from '#core/plan';
import type { PutOptions, SourceObject } from '#core/ports';
import { retainUntil } from '#core/retention';
import { DEFAULT_CHUNK_LOG2, STREAM_SCHEME } from '#core/stream-format';
import { type Tier, tierOf } from '#core/tiers';

export interface BackupOptions {
  /** Backup id chosen by the caller (run-backup decides it from the schedule); a fresh one otherwise. */
  backupId?: string;
  /** GFS tier chosen by the caller; otherwise from the previous complete backup. */
  tier?: Tier;
  /** Stops the backup; nothing is left that looks complete. @default the runtime's signal */
  signal?: AbortSignal;
  /**
   * Recorded in the manifest: `safety` for the backup `restore --replace` and `--into-live` take first
   * (never what "latest" picks).
   */
  purpose?: 'safety';
  /**
   * Only these tables, exact `schema.table` names (sources with the `liveTables` capability): the safety
   * backup of `restore --into-live`.
   */
  tables?: readonly string[];
}

/** What a finished backup reports (the `--json` output of `strongbox backup`). */
export interface BackupResult {
  job: string;
  backupId: string;
  tier: Tier;
  kind: Job['source']['kind'];
  sourceBytes: number;
  storedBytes: number;
  /** Data objects stored (most sources store one). */
  objects: number;
  durationSeconds: number;
  manifestKey: string;
  /** What the source warned about, as the manifest records it (absent when nothing). */
  warnings?: string[];
  /** What the checks of the committed backup found (its size against the job's recent median). */
  findings?: Finding[];
}

/**
 * Backs up one job and writes its manifest, between the job's `before` and `after` hooks (agent/hooks).
 * @example const result = await runBackup(runtime, findJob(runtime.plan, 'appdb'))
 */
export function runBackup(runtime: Runtime, job: Job, options: BackupOptions = {}): Promise<BackupResult> {
  return withHooks(runtime, job, options.signal ?? runtime.signal, () => backupOnce(runtime, job, options));
}

/** One backup of a job, without its hooks. */
async function backupOnce(runtime: Runtime, job: Job, options: BackupOptions): Promise<BackupResult> {
  const { vault, keys, clock } = runtime;
  const started = clock.now();
  const backupId = options.backupId ?? newBackupId(started, randomBytes(3).toString('hex'));
  if (options.backupId !== undefined) await refuseExisting(runtime, job, backupId);
  await removeAbandoned(runtime, job, started);
  const previous = previousComplete(await listBackups(vault, job.name), started);
  const tier = options.tier ?? tierOf(started, previous?.startedAt, runtime.plan.timezone);
  const expectedBytes = expectedSizes(previous);
  const context = encryptionContext(job.name, backupId);
  const dataKey = await keys.generateDataKey(context);
  const putOptions = objectPutOptions(runtime, job, tier, started);
  runtime.log(`backup ${job.name} ${backupId} (${tier}) → ${vault.url}`);

  const controller = new AbortController();
  const outer = options.signal ?? runtime.signal;
  const onAbort = () => controller.abort(outer.reason);
  if (outer.aborted) onAbort();
  outer.addEventListener('abort', onAbort, { once: true });
  /**
   * Keys of every data object put, stored or not: removed again unless the manifest's put succeeded (a
   * put that failed may still have stored its object — its answer may be what was lost — and deleting a
   * key that does not exist is not an error).
   */
  const written: string[] = [];
  let manifestPut = false;
  const sourceMeters: Meter[] = [];
  const stopProgress = runtime.progress?.track(`backup ${job.name}`, () =>
    sourceMeters.reduce((sum, meter) => sum + meter.bytes, 0),
  );
  try {
    const driver = sourceDriver(job.source);
    const source = await driver.backup(
      job.source,
      { env: runtime.env, signal: controller.signal, secrets: runtime.secrets, log: runtime.log },
      { ...(options.tables ? { tables: options.tables } : {}), compression: job.compression },
    );
    const tasks = new TaskGroup(controller);
    const objects: ManifestObject[] = [];
    const storeOne = async (object: SourceObject, index: number) => {
      const name = storedObjectName(object.name, job.compression.algorithm);
      const key = objectKey(job.name, backupId, name);
      written.push(key);
      const sourceMeter = new Meter({ hash: false });
      sourceMeters.push(sourceMeter);
      const storedMeter = new Meter();
      const level = compressionLevel(job.compression.algorithm, job.compression.level);
      const already = object.compressed;
      // Compressed by the source's server: stored as it comes, but only if exactly as the manifest says.
      if (already && (already.algorithm !== job.compression.algorithm || already.level !== level)) {
        throw new SourceError(
          `the ${job.source.kind} source sent ${object.name} compressed with ${already.algorithm} level ${already.level}, not the job's ${job.compression.algorithm} level ${level}`,
        );
      }
      const compress = already
        ? compressor('none', undefined, controller.signal)
        : compressor(job.compression.algorithm, job.compression.level, controller.signal);
      const body = new PassThrough();
      // Each part joins the backup's one task group, so the first failure anywhere is the one reported.
      const [, , { sizeBytes }] = await Promise.all([
        tasks.add(
          pipeline(
            object.stream,
            sourceMeter,
            compress.stream,
            createEncryptStream(dataKey.plaintext),
            storedMeter,
            body,
            {
              signal: controller.signal,
            },
          ),
        ),
        tasks.add(compress.done),
        tasks.add(
          vault.put(key, body, {
            ...putOptions,
            expectedBytes: expectedBytes(name),
            signal: controller.signal,
          }),
        ),
      ]);
      if (sizeBytes !== storedMeter.bytes) {
        throw new VaultError(
          `${key}: the vault stored ${sizeBytes} bytes but ${storedMeter.bytes} were sent`,
        );
      }
      objects[index] = {
        name,
        storedBytes: storedMeter.bytes,
        sha256: storedMeter.sha256(),
        sourceBytes: already ? already.sourceBytes() : sourceMeter.bytes,
        storageClass: putOptions.storageClass,
      };
    };
    tasks.add(
      (async () => {
        const names = new Set<string>();
        let index = 0;
        for await (const object of source.objects) {
          controller.signal.throwIfAborted();
          if (!OBJECT_NAME.test(object.name) || names.has(object.name)) {
            throw new SourceError(
              `the ${job.source.kind} source produced a bad or repeated object name '${object.name}'`,
            );
          }
          names.add(object.name);
          tasks.add(storeOne(object, index++));
        }
        if (index === 0) throw new SourceError(`the ${job.source.kind} source produced no data`);
      })(),
    );
    const sourceResult = tasks.add(source.done);
    await tasks.wait();
    const { details, tools, warnings } = await sourceResult;

    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      job: job.name,
      backupId,
      host: runtime.host,
      kind: job.source.kind,
      tier,
      ...(options.purpose ? { purpose: options.purpose } : {}),
      startedAt: started.toISOString(),
      finishedAt: clock.now().toISOString(),
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
      objects,
      tools: { strongbox: VERSION, ...tools },
      source: details,
      ...(warnings?.length ? { warnings } : {}),
    };
    const { tags: _dataTags, ...manifestOptions } = putOptions;
    manifestPut = true;
    await vault.put(manifestKey(job.name, backupId), Readable.from([serializeManifest(manifest)]), {
      ...manifestOptions,
      storageClass: 'STANDARD',
      tags: { [OBJECT_TAGS.job]: job.name },
      contentType: 'application/json',
    });
    return {
      job: job.name,
      backupId,
      tier,
      kind: job.source.kind,
      sourceBytes: objects.reduce((sum, o) => sum + o.sourceBytes, 0),
      storedBytes: objects.reduce((sum, o) => sum + o.storedBytes, 0),
      objects: objects.length,
      durationSeconds: (clock.now().getTime() - started.getTime()) / 1000,
      manifestKey: manifestKey(job.name, backupId),
      ...(warnings?.length ? { warnings } : {}),
    };
  } catch (error) {
    // Data objects are useless without their manifest: remove them. The manifest — should its failed put
    // have stored it after all — goes first, so the backup never looks complete without its data; if it
    // cannot go, its data stays with it. Object Lock may refuse: what is left is then an incomplete
    // backup that `verify` reports and `prune` removes once it may.
    // Refused or unreachable: the original error is what the caller must see, the cleanup's failure a
    // sentence after it (never the server's raw reply).
    try {
      if (manifestPut) await vault.delete([manifestKey(job.name, backupId)]);
      if (written.length > 0) await vault.delete(written);
    } catch (cleanupError) {
      const reason = describeAwsReply(cleanupError) ?? describeError(cleanupError);
      throw withCleanupProblem(
        error,
        `cleaning up also failed: the data of backup ${backupId} could not be removed from ${vault.url} (${reason}); it stays as an incomplete backup, which verify reports and the next backup or prune removes`,
      );
    }
    throw error;
  } finally {
    stopProgress?.();
    dataKey.plaintext.fill(0);
    outer.removeEventListener('abort', onAbort);
  }
}

/**
 * Removes what interrupted backups of the job left in the vault (partial files, incomplete multipart
 * uploads) that began longer ago than the job's timeout, so none can belong to a backup still running.
 * Best effort: a vault that refuses is logged, and the backup goes on (`prune` tries again).
 */
async function removeAbandoned(runtime: Runtime, job: Job, started: Date): Promise<void> {
  const olderThan = new Date(started.getTime() - job.timeout * 1000);
  try {
    const removed = (await runtime.vault.removeAbandoned?.(jobPrefix(job.name), olderThan)) ?? [];
    if (removed.length > 0) {
      runtime.log(
        `removed ${removed.length} unfinished write(s) of interrupted backups: ${removed.join(', ')}`,
      );
    }
  } catch (error) {
    runtime.log(`unfinished writes of interrupted backups could not be removed: ${describeError(error)}`);
  }
}

/**
 * Refuses a chosen backup id the vault already holds anything under (a complete backup or the objects
 * of an incomplete one): a backup is never overwritten or mixed with another's objects.
 * @throws PlanError naming the id and the job.
 */
async function refuseExisting(runtime: Runtime, job: Job, backupId: string): Promise<void> {
  for await (const object of runtime.vault.list(backupPrefix(job.name, backupId))) {
    throw new PlanError([
      `--backup-id: backup ${backupId} of job ${job.name} already exists (${object.key}); backups are never overwritten, choose another id`,
    ]);
  }
}

/** Tags, storage class and Object Lock retention of a backup's data objects (also on a copy: agent/copy). */
export function objectPutOptions(
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

/**
 * How large each stored object will be, from the previous complete backup's listing (no reads): the
 * object of the same name, else its largest data object; undefined for a job's first backup. The S3
 * vault sizes its parts from it (adapters/vaults/s3 `partSizeFor`).
 */
function expectedSizes(previous: BackupListing | undefined): (name: string) => number | undefined {
  const sizes = new Map<string, number>();
  for (const object of previous?.objects ?? []) {
    const name = object.key.slice(object.key.lastIndexOf('/') + 1);
    if (name !== MANIFEST_NAME) sizes.set(name, object.sizeBytes);
  }
  const largest = sizes.size > 0 ? Math.max(...sizes.values()) : undefined;
  return (name) => sizes.get(name) ?? largest;
}
