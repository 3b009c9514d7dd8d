/**
 * Copies of backups in further vaults (the plan's `copies`, the 3-2-1 rule): a complete backup of the
 * primary vault is transferred object by object, as stored — still compressed and encrypted — to a
 * copy, and the copy's manifest is written last, as its commit point.
 *
 * - Every object's SHA-256 and size are checked against the primary's manifest while it streams: an
 *   object that does not match fails its upload before it completes (the vault then leaves nothing), so
 *   a corrupted backup is refused, never copied.
 * - No data is decrypted. A copy with its own `key` gets its own wrapped data key: the data key is
 *   unwrapped with the primary's master key and wrapped with the copy's, both bound to the backup's
 *   encryption context; a copy without one keeps the primary's wrapped key as it is.
 * - Data objects get the tags, storage class and Object Lock retention the copy's vault and retention
 *   call for (agent/backup `objectPutOptions` over the copy's view of the plan); the manifest stays in
 *   Standard.
 * - An interrupted copy leaves data objects without a manifest: not a backup on the copy. The next copy
 *   run resumes it: each object already there is read back and kept when its size and SHA-256 match the
 *   manifest, replaced otherwise (writes are create-only on S3), and the rest is copied; `prune` on the
 *   copy removes what is left of one that is never finished, past the job's timeout.
 * - Safety backups (`purpose: safety`, taken by `restore --replace`) are not copied unless asked for by
 *   id.
 * - Point-in-time jobs: the WAL archive goes along, from the first segment of the oldest base backup the
 *   copy holds (and every timeline history file) — each file authenticated on the primary first (one
 *   that does not decrypt is refused, never copied), then its stored bytes, with the data key re-wrapped
 *   in its header for a copy with its own key. A restore `--from` the copy fetches WAL from the copy, so
 *   recovery to a point in time needs nothing of the primary vault.
 *
 * Memory: one object in flight per copy run, bounded by the copy vault's upload buffers.
 */
import { dirname } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openKeyProvider } from '#adapters/keys/index';
import { openVault } from '#adapters/vaults/index';
import { describeRetry } from '#adapters/vaults/retrying';
import { objectPutOptions } from '#agent/backup';
import { settleAll, TaskGroup } from '#agent/pipeline/flow';
import { Meter } from '#agent/pipeline/meter';
import { EndCheck } from '#agent/read-backup';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import { splitPrefix, VaultWalArchive } from '#agent/wal-archive';
import { listBackups, listManifests, listWal, readManifest, type WalFile } from '#core/catalog';
import { describeError, IntegrityError, PlanError, VaultError } from '#core/errors';
import { backupPrefix, manifestKey, OBJECT_TAGS, objectKey } from '#core/layout';
import { encryptionContext, type Manifest, type ManifestObject, serializeManifest } from '#core/manifest';
import { type CopyConfig, copyRetentionOf, copyTakesTier, findCopy, type Job, type Plan } from '#core/plan';
import type { StoredObject } from '#core/ports';
import { neededWal } from '#core/recovery-window';
import { selectRetained } from '#core/retention';
import type { Tier } from '#core/tiers';
import { decodeWalHeader, encodeWalHeader, walEncryptionContext } from '#core/wal-format';

/** Days added to a job's age limits on a copy that takes only some tiers: the longest wait for one. */
const TIER_INTERVAL_DAYS: Readonly<Record<Tier, number>> = { daily: 0, weekly: 7, monthly: 31, yearly: 366 };

/**
 * The plan as a copy sees it: the copy's vault and key in place of the primary's, each job's
 * retention with the copy's days over it, and the job's age limits widened by the interval of the
 * warmest tier the copy takes (a copy of monthly backups only is up to a month behind). Every command
 * that reads or prunes a vault works on a copy through this view, unchanged.
 */
export function copyPlanView(plan: Plan, copy: CopyConfig): Plan {
  const slack = Math.min(...(copy.tiers ?? ['daily']).map((tier) => TIER_INTERVAL_DAYS[tier])) * 86_400;
  return {
    ...plan,
    vault: copy.vault,
    key: copy.key ?? plan.key,
    copies: [],
    jobs: plan.jobs.map((job) => ({
      ...job,
      retention: copyRetentionOf(plan, job, copy),
      limits: {
        ...job.limits,
        warnAge: job.limits.warnAge + slack,
        criticalAge: job.limits.criticalAge + slack,
      },
    })),
  };
}

/**
 * A runtime over one of the plan's copies: its vault (retrying, like the primary's) and its key
 * provider (the primary's when the copy names no key), with the plan as the copy sees it
 * ({@link copyPlanView}). The primary's runtime is left as it is.
 * @throws PlanError when the plan has no such copy.
 * @example const offsite = await openCopyRuntime(runtime, 'offsite'); await listCommand(offsite, {})
 */
export async function openCopyRuntime(runtime: Runtime, name: string): Promise<Runtime> {
  const copy = findCopy(runtime.plan, name);
  return {
    ...runtime,
    plan: copyPlanView(runtime.plan, copy),
    vault: await openVault(copy.vault, {
      env: runtime.env,
      retry: { signal: runtime.signal, onRetry: (event) => runtime.log(describeRetry(event)) },
    }),
    keys: copy.key ? await openKeyProvider(copy.key, { baseDir: dirname(runtime.planPath) }) : runtime.keys,
    copy: copy.name,
  };
}

/**
 * The runtime a command reads from: the primary's, or with `--from <copy>` that copy's.
 * @throws PlanError when the plan has no such copy.
 */
export function runtimeFrom(runtime: Runtime, from: string | undefined): Promise<Runtime> {
  return from === undefined ? Promise.resolve(runtime) : openCopyRuntime(runtime, from);
}

/** What happened to one backup in one copy run. */
export interface CopiedBackup {
  copy: string;
  job: string;
  backupId: string;
  tier: Tier;
  /** `copied` now, or already `present` (complete) on the copy. */
  action: 'copied' | 'present';
  storedBytes: number;
  objects: number;
  durationSeconds: number;
}

/** One backup that could not be copied, and why. */
export interface CopyFailure {
  copy: string;
  job: string;
  backupId: string;
  error: unknown;
}

/** What a copy run of one job to one copy did. */
export interface CopyJobResult {
  copy: string;
  job: string;
  backups: CopiedBackup[];
  /** Backups of the primary left out, with the reason (tier filter, safety backup, past retention). */
  skipped: { backupId: string; reason: string }[];
  failures: CopyFailure[];
  /** Point-in-time jobs: what happened to the WAL archive ({@link copyWal}). */
  wal?: CopiedWal;
}

/** What a copy run did with a point-in-time job's WAL archive. */
export interface CopiedWal {
  /** Files copied now. */
  copied: number;
  /** Files the copy needs that it already held. */
  present: number;
  /** Stored bytes of the files copied now. */
  storedBytes: number;
  /** Files that could not be copied, and why; the others still were. */
  failures: { name: string; error: unknown }[];
}

/** Options of {@link copyJob}. */
export interface CopyJobOptions {
  /**
   * Copy this backup only: also a safety backup, also one of a tier the copy does not take or past the
   * copy's retention (asked for by id, it is copied).
   */
  backupId?: string;
}

/**
 * The backups of a job a copy should hold now: complete backups of the primary that are not safety
 * backups, of a tier the copy takes, and that the copy's retention still keeps (the newest always).
 * The others come back in `skipped` with their reason.
 */
export function backupsForCopy(
  manifests: readonly Manifest[],
  copy: CopyConfig,
  plan: Plan,
  job: Job,
  now: Date,
): { wanted: Manifest[]; skipped: { backupId: string; reason: string }[] } {
  const skipped: { backupId: string; reason: string }[] = [];
  const candidates = manifests.flatMap((manifest) => {
    if (manifest.purpose === 'safety') {
      skipped.push({ backupId: manifest.backupId, reason: 'safety backup (copy it by --backup-id)' });
      return [];
    }
    if (!copyTakesTier(copy, manifest.tier)) {
      skipped.push({
        backupId: manifest.backupId,
        reason: `${manifest.tier}: the copy takes ${copy.tiers?.join(', ')}`,
      });
      return [];
    }
    return [
      { backupId: manifest.backupId, tier: manifest.tier, startedAt: new Date(manifest.startedAt), manifest },
    ];
  });
  const wanted: Manifest[] = [];
  for (const decision of selectRetained(candidates, copyRetentionOf(plan, job, copy), now)) {
    if (decision.keep) wanted.push(decision.backup.manifest);
    else
      skipped.push({
        backupId: decision.backup.backupId,
        reason: `past the copy's retention (${decision.reason})`,
      });
  }
  wanted.sort((a, b) => a.backupId.localeCompare(b.backupId));
  skipped.sort((a, b) => a.backupId.localeCompare(b.backupId));
  return { wanted, skipped };
}

/**
 * Copies the backups of one job that a copy should hold and does not (see {@link backupsForCopy}),
 * oldest first. One backup failing does not stop the others: each failure is in `failures`.
 * @param target the copy's runtime ({@link openCopyRuntime})
 */
export async function copyJob(
  primary: Runtime,
  target: Runtime,
  copy: CopyConfig,
  job: Job,
  options: CopyJobOptions = {},
): Promise<CopyJobResult> {
  const result: CopyJobResult = { copy: copy.name, job: job.name, backups: [], skipped: [], failures: [] };
  const onCopy = new Set(
    (await listBackups(target.vault, job.name)).filter((b) => b.complete).map((b) => b.backupId),
  );
  let wanted: Manifest[];
  if (options.backupId) {
    wanted = [await readManifest(primary.vault, job.name, options.backupId)];
  } else {
    const complete = (await listBackups(primary.vault, job.name)).filter((b) => b.complete);
    const manifests: Manifest[] = [];
    for (const backup of complete)
      manifests.push(await readManifest(primary.vault, job.name, backup.backupId));
    ({ wanted, skipped: result.skipped } = backupsForCopy(
      manifests,
      copy,
      primary.plan,
      job,
      primary.clock.now(),
    ));
  }
  const targetJob = target.plan.jobs.find((j) => j.name === job.name) ?? job;
  for (const manifest of wanted) {
    primary.signal.throwIfAborted();
    const base = { copy: copy.name, job: job.name, backupId: manifest.backupId, tier: manifest.tier };
    const storedBytes = manifest.objects.reduce((sum, o) => sum + o.storedBytes, 0);
    if (onCopy.has(manifest.backupId)) {
      result.backups.push({
        ...base,
        action: 'present',
        storedBytes,
        objects: manifest.objects.length,
        durationSeconds: 0,
      });
      continue;
    }
    const started = performance.now();
    try {
      primary.log(
        `copy ${job.name} ${manifest.backupId} (${manifest.tier}) → ${copy.name} ${target.vault.url}`,
      );
      await copyBackup(primary, target, targetJob, manifest, { rewrap: copy.key !== undefined });
      result.backups.push({
        ...base,
        action: 'copied',
        storedBytes,
        objects: manifest.objects.length,
        durationSeconds: (performance.now() - started) / 1000,
      });
    } catch (error) {
      if (primary.signal.aborted) throw error;
      primary.log(`copy ${job.name} ${manifest.backupId} → ${copy.name} failed: ${describeError(error)}`);
      result.failures.push({ ...base, error });
    }
  }
  if (sourceDriver(job.source).spec.capabilities.pointInTime)
    result.wal = await copyWal(primary, target, copy, job);
  return result;
}

/**
 * Copies the WAL files the copy's base backups can replay (core/recovery-window `neededWal`) and it
 * does not hold yet, oldest first; nothing when it holds no base backup of the job. One file failing
 * does not stop the others: each failure is in `failures` (verify on the copy then names the gap).
 */
export async function copyWal(
  primary: Runtime,
  target: Runtime,
  copy: CopyConfig,
  job: Job,
): Promise<CopiedWal> {
  const result: CopiedWal = { copied: 0, present: 0, storedBytes: 0, failures: [] };
  const onPrimary = await listWal(primary.vault, job.name);
  const onCopy = new Set((await listWal(target.vault, job.name)).map((f) => f.name));
  const needed = new Set(
    neededWal(
      await listManifests(target.vault, job.name),
      onPrimary.map((f) => f.name),
    ),
  );
  const archive = new VaultWalArchive(primary.vault, primary.keys, job.name, {
    compression: job.compression.algorithm,
  });
  const files = onPrimary.filter((f) => needed.has(f.name)).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const file of files) {
    primary.signal.throwIfAborted();
    if (onCopy.has(file.name)) {
      result.present += 1;
      continue;
    }
    try {
      await copyWalFile(primary, target, archive, job.name, file, { rewrap: copy.key !== undefined });
      result.copied += 1;
      result.storedBytes += file.object.sizeBytes;
    } catch (error) {
      if (primary.signal.aborted) throw error;
      primary.log(`copy ${job.name} WAL ${file.name} → ${copy.name} failed: ${describeError(error)}`);
      result.failures.push({ name: file.name, error });
    }
  }
  if (result.copied > 0)
    primary.log(`copy ${job.name}: ${result.copied} WAL files → ${copy.name} ${target.vault.url}`);
  return result;
}

/**
 * Copies one archived WAL file: authenticated on the primary first (read, decrypted and decompressed to
 * nowhere), then its stored bytes, the header's data key re-wrapped for the copy's own key when it has
 * one (bound to the same context, so the body is untouched). The put is create-only; a size that
 * differs from what was sent removes it again.
 * @throws IntegrityError when the file does not authenticate; KeyError, VaultError.
 */
async function copyWalFile(
  primary: Runtime,
  target: Runtime,
  archive: VaultWalArchive,
  job: string,
  file: WalFile,
  options: { rewrap: boolean },
): Promise<void> {
  const controller = new AbortController();
  const signal = AbortSignal.any([primary.signal, controller.signal]);
  const nowhere = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  await pipeline(await archive.fetch(file.name, { signal }), nowhere, { signal });
  const what = `WAL file ${file.name} (${file.object.key})`;
  const { prefix, rest } = await splitPrefix(await primary.vault.get(file.object.key, { signal }), what);
  let header = prefix;
  if (options.rewrap) {
    const decoded = decodeWalHeader(prefix, job, file.name, what);
    const context = walEncryptionContext(job, file.name, decoded.compression);
    const plaintext = await primary.keys.decryptDataKey(decoded.wrappedKey, decoded.key, context);
    try {
      const wrapped = await target.keys.wrapDataKey(plaintext, context);
      header = encodeWalHeader({ ...decoded, key: wrapped.key, wrappedKey: wrapped.wrapped });
    } finally {
      plaintext.fill(0);
    }
  }
  const meter = new Meter({ hash: false });
  const body = new PassThrough();
  body.write(header);
  const [, put] = await settleAll(
    [
      pipeline(rest, meter, body, { signal }),
      target.vault.put(file.object.key, body, { signal, contentType: 'application/octet-stream' }),
    ],
    controller,
  );
  if (put.sizeBytes !== header.length + meter.bytes) {
    await target.vault.delete([file.object.key]).catch(() => {});
    throw new VaultError(
      `${file.object.key}: ${target.vault.url} stored ${put.sizeBytes} bytes but ${header.length + meter.bytes} were sent`,
    );
  }
}

/**
 * Copies one complete backup from the primary to a copy: every data object streamed as stored and
 * checked against the manifest (SHA-256 and size) before its upload may complete, then the manifest
 * with the copy's key reference and storage classes, last. On any failure what this run stored is
 * removed again, manifest first, and the error rethrown: the backup never looks complete on the copy.
 * @throws IntegrityError for an object on the primary that does not match its manifest; KeyError when
 *   a data key cannot be unwrapped or wrapped; VaultError when a vault fails.
 */
export async function copyBackup(
  primary: Runtime,
  target: Runtime,
  job: Job,
  manifest: Manifest,
  options: { rewrap: boolean },
): Promise<void> {
  const context = encryptionContext(manifest.job, manifest.backupId);
  let encryption = manifest.encryption;
  if (options.rewrap) {
    const plaintext = await primary.keys.decryptDataKey(encryption.wrappedKey, encryption.key, context);
    try {
      const wrapped = await target.keys.wrapDataKey(plaintext, context);
      encryption = { ...encryption, key: wrapped.key, wrappedKey: wrapped.wrapped };
    } finally {
      plaintext.fill(0);
    }
  }
  const putOptions = objectPutOptions(target, job, manifest.tier, new Date(manifest.startedAt));
  const controller = new AbortController();
  const onAbort = () => controller.abort(primary.signal.reason);
  if (primary.signal.aborted) onAbort();
  primary.signal.addEventListener('abort', onAbort, { once: true });
  const written: string[] = [];
  let manifestPut = false;
  try {
    // What an interrupted run left of this backup on the copy (data objects, no manifest).
    const left = new Map<string, StoredObject>();
    for await (const stored of target.vault.list(backupPrefix(manifest.job, manifest.backupId))) {
      left.set(stored.key, stored);
    }
    for (const object of manifest.objects) {
      const key = objectKey(manifest.job, manifest.backupId, object.name);
      const earlier = left.get(key);
      if (earlier) {
        if (await storedAsInManifest(target, key, object, controller.signal)) {
          primary.log(`${key}: already on ${target.vault.url} from an interrupted copy, and intact`);
          continue;
        }
        // Not the object the manifest names (cut short, altered): writes are create-only, so it goes first.
        await target.vault.delete([key]);
      }
      const tasks = new TaskGroup(controller);
      const input = await primary.vault.get(key, { signal: controller.signal });
      const meter = new Meter();
      const check = new EndCheck(() =>
        meter.bytes === object.storedBytes && meter.sha256() === object.sha256
          ? undefined
          : new IntegrityError(
              `${key} on ${primary.vault.url} does not match its manifest (${meter.bytes} bytes, sha256 ${meter.sha256().slice(0, 12)}…; manifest ${object.storedBytes} bytes, ${object.sha256.slice(0, 12)}…): not copied`,
            ),
      );
      const body = new PassThrough();
      written.push(key);
      const stopProgress = primary.progress?.track(`copy ${key}`, () => meter.bytes, object.storedBytes);
      const [, put] = await Promise.all([
        tasks.add(pipeline(input, meter, check, body, { signal: controller.signal })),
        tasks.add(target.vault.put(key, body, { ...putOptions, signal: controller.signal })),
      ]).finally(() => stopProgress?.());
      await tasks.wait();
      if (put.sizeBytes !== object.storedBytes) {
        throw new VaultError(
          `${key}: ${target.vault.url} stored ${put.sizeBytes} bytes but ${object.storedBytes} were sent`,
        );
      }
    }
    const copied: Manifest = {
      ...manifest,
      encryption,
      objects: manifest.objects.map((o) => ({ ...o, storageClass: putOptions.storageClass })),
    };
    const { tags: _dataTags, ...manifestOptions } = putOptions;
    manifestPut = true;
    await target.vault.put(
      manifestKey(manifest.job, manifest.backupId),
      Readable.from([serializeManifest(copied)]),
      {
        ...manifestOptions,
        storageClass: 'STANDARD',
        tags: { [OBJECT_TAGS.job]: manifest.job },
        contentType: 'application/json',
        signal: controller.signal,
      },
    );
  } catch (error) {
    try {
      if (manifestPut) await target.vault.delete([manifestKey(manifest.job, manifest.backupId)]);
      if (written.length > 0) await target.vault.delete(written);
    } catch {
      // Refused or unreachable: what is left has no manifest (or keeps its data); the error is the cause.
    }
    throw error;
  } finally {
    primary.signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Whether an object already on a copy holds exactly the bytes the manifest records (size and SHA-256),
 * read back whole: an interrupted copy's object is kept only when it is intact.
 */
async function storedAsInManifest(
  target: Runtime,
  key: string,
  object: ManifestObject,
  signal: AbortSignal,
): Promise<boolean> {
  const meter = new Meter();
  const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  await pipeline(await target.vault.get(key, { signal }), meter, sink, { signal });
  return meter.bytes === object.storedBytes && meter.sha256() === object.sha256;
}

/** The copies a command acts on: the one named, or every copy of the plan. */
export function selectCopies(plan: Plan, name?: string): CopyConfig[] {
  if (name !== undefined) return [findCopy(plan, name)];
  if (plan.copies.length === 0) {
    throw new PlanError(['copies: the plan names no copy to copy to (add copies: to the plan)']);
  }
  return [...plan.copies];
}
