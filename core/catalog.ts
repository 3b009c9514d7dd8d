/**
 * The catalog: what backups a vault holds, read through the Vault port only (so the agent and the
 * Lambdas share it). A backup is complete when its manifest exists; data objects without a manifest are
 * an incomplete backup (in progress, or failed and not yet cleaned up). Listing needs only LIST and reads
 * of manifests, which never leave the Standard storage class: choosing a backup never needs a retrieval.
 */
import { createHash } from 'node:crypto';
import { backupIdTime } from './backup-id';
import { IntegrityError, NotFoundError } from './errors';
import {
  jobPrefix,
  MANIFEST_NAME,
  manifestKey,
  objectKey,
  parseBackupKey,
  parseRunClaimKey,
  parseWalKey,
  runClaimPrefix,
  walPrefix,
} from './layout';
import { type Manifest, parseManifest } from './manifest';
import type { StoredObject, Vault } from './ports';

/** One backup as a listing shows it, before any manifest is read. */
export interface BackupListing {
  job: string;
  backupId: string;
  /** Start time carried by the backup id. */
  startedAt: Date;
  /** Whether the manifest exists. */
  complete: boolean;
  /** Every stored object of the backup, the manifest included. */
  objects: StoredObject[];
}

/**
 * Lists the backups of a job, oldest first, complete or not.
 * @example (await listBackups(vault, 'appdb')).filter((b) => b.complete)
 */
export async function listBackups(vault: Vault, job: string): Promise<BackupListing[]> {
  const byId = new Map<string, BackupListing>();
  for await (const object of vault.list(jobPrefix(job))) {
    const parsed = parseBackupKey(object.key);
    if (!parsed || parsed.job !== job) continue;
    let entry = byId.get(parsed.backupId);
    if (!entry) {
      entry = {
        job,
        backupId: parsed.backupId,
        startedAt: backupIdTime(parsed.backupId),
        complete: false,
        objects: [],
      };
      byId.set(parsed.backupId, entry);
    }
    entry.objects.push(object);
    if (parsed.name === MANIFEST_NAME) entry.complete = true;
  }
  return [...byId.values()].sort(byStart);
}

/**
 * Oldest first. Ids carry whole seconds: two backups of one job started in the same second (a job's
 * runs never overlap) are ordered by when their manifests were stored, so "latest" is the later one.
 */
function byStart(a: BackupListing, b: BackupListing): number {
  const bySecond = a.startedAt.getTime() - b.startedAt.getTime();
  if (bySecond !== 0) return bySecond;
  const stored = (l: BackupListing) =>
    l.objects.find((o) => parseBackupKey(o.key)?.name === MANIFEST_NAME)?.lastModified.getTime();
  const [storedA, storedB] = [stored(a), stored(b)];
  if (storedA !== undefined && storedB !== undefined && storedA !== storedB) return storedA - storedB;
  return a.backupId.localeCompare(b.backupId);
}

/** Reads a stream into a string (manifests are small). */
async function readText(stream: AsyncIterable<Buffer | string>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(typeof part === 'string' ? Buffer.from(part) : part);
  return Buffer.concat(parts).toString('utf8');
}

/**
 * Reads and validates one backup's manifest.
 * @throws NotFoundError when the backup has no manifest; IntegrityError when it is not a valid manifest
 *   or does not describe the backup it is stored under.
 */
export async function readManifest(vault: Vault, job: string, backupId: string): Promise<Manifest> {
  const key = manifestKey(job, backupId);
  const head = await vault.head(key);
  if (!head) throw new NotFoundError(`backup ${job}/${backupId} does not exist (no ${key})`);
  const manifest = parseManifest(await readText(await vault.get(key)), key);
  if (manifest.job !== job || manifest.backupId !== backupId) {
    throw new IntegrityError(
      `${key} describes ${manifest.job}/${manifest.backupId}, not the backup it is stored under`,
    );
  }
  return manifest;
}

/** How many manifests are read at once unless a caller says otherwise. */
export const DEFAULT_READ_CONCURRENCY = 16;

/** Options of the functions that read many manifests. */
export interface ReadOptions {
  /** Manifests read at once (default 16). */
  concurrency?: number;
}

/**
 * Manifests of every complete backup of a job, oldest first, read `concurrency` at a time.
 * @throws IntegrityError for the first manifest that is not valid.
 */
export async function listManifests(
  vault: Vault,
  job: string,
  options: ReadOptions = {},
): Promise<Manifest[]> {
  const complete = (await listBackups(vault, job)).filter((b) => b.complete);
  return mapConcurrent(complete, options.concurrency ?? DEFAULT_READ_CONCURRENCY, (backup) =>
    readManifest(vault, job, backup.backupId),
  );
}

/**
 * Whether a backup may be what "latest" or "at a time" picks: every backup but a safety backup
 * (`purpose: 'safety'`, taken by `restore --replace` of the data it was about to replace — restoring it
 * would restore the live data, so a retry after a failed replace would "succeed" and change nothing).
 * By id, a safety backup is restorable like any other. The one owner of this rule: the agent and the
 * restore Lambda both ask it.
 * @example manifests.filter(pickableAsLatest).at(-1)
 */
export function pickableAsLatest(manifest: Pick<Manifest, 'purpose'>): boolean {
  return manifest.purpose !== 'safety';
}

/**
 * The newest complete backup of a job that `pickableAsLatest` allows (not a safety backup), or
 * undefined when there is none. Reads manifests newest first until one qualifies.
 */
export async function newestComplete(vault: Vault, job: string): Promise<Manifest | undefined> {
  const complete = (await listBackups(vault, job)).filter((b) => b.complete);
  for (const backup of complete.reverse()) {
    const manifest = await readManifest(vault, job, backup.backupId);
    if (pickableAsLatest(manifest)) return manifest;
  }
  return undefined;
}

/**
 * The backup a restore asks for: by id (a safety backup too), or the newest complete one that is not a
 * safety backup.
 * @throws NotFoundError naming the job when there is none.
 */
export async function findBackup(vault: Vault, job: string, backupId?: string): Promise<Manifest> {
  if (backupId) return readManifest(vault, job, backupId);
  const newest = await newestComplete(vault, job);
  if (!newest) throw new NotFoundError(`job '${job}' has no complete backup in ${vault.url}`);
  return newest;
}

/** Everything a vault says about one job's backups, from one listing and one read per manifest. */
export interface JobCatalog {
  job: string;
  /** Every backup, complete or not, oldest first. */
  backups: BackupListing[];
  /** The manifest of each complete backup that is valid, by backup id. */
  manifests: Map<string, Manifest>;
  /** Complete backups whose manifest is not a valid manifest of that backup, with the reason. */
  invalid: { backupId: string; error: IntegrityError }[];
}

/**
 * Lists a job's backups and reads every manifest, `concurrency` at a time. Unlike `listManifests`, an
 * invalid manifest does not stop the reading: it is reported in `invalid`, so verification can name it
 * and go on. Only manifests are read (never data objects), so no archive retrieval is ever needed.
 * @example const catalog = await readCatalog(vault, 'appdb'); catalog.manifests.size
 * @throws VaultError (or what the vault throws) when listing or reading fails.
 */
export async function readCatalog(vault: Vault, job: string, options: ReadOptions = {}): Promise<JobCatalog> {
  const backups = await listBackups(vault, job);
  const manifests = new Map<string, Manifest>();
  const invalid: JobCatalog['invalid'] = [];
  const complete = backups.filter((b) => b.complete);
  await mapConcurrent(complete, options.concurrency ?? DEFAULT_READ_CONCURRENCY, async (backup) => {
    const key = manifestKey(job, backup.backupId);
    let stream: AsyncIterable<Buffer | string>;
    try {
      stream = await vault.get(key);
    } catch (error) {
      if (error instanceof NotFoundError) return; // deleted since the listing: no longer a backup
      throw error;
    }
    try {
      const manifest = parseManifest(await readText(stream), key);
      if (manifest.job !== job || manifest.backupId !== backup.backupId) {
        throw new IntegrityError(
          `${key} describes ${manifest.job}/${manifest.backupId}, not the backup it is stored under`,
        );
      }
      manifests.set(backup.backupId, manifest);
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error;
      invalid.push({ backupId: backup.backupId, error });
    }
  });
  invalid.sort((a, b) => a.backupId.localeCompare(b.backupId));
  return { job, backups, manifests, invalid };
}

/** Manifests of a catalog's complete, valid backups, oldest first. */
export function completeManifests(catalog: JobCatalog): Manifest[] {
  return catalog.backups.flatMap((b) => catalog.manifests.get(b.backupId) ?? []);
}

/** Data objects of a listed backup: every stored object except the manifest. */
export function dataObjects(listing: BackupListing): StoredObject[] {
  return listing.objects.filter((o) => !o.key.endsWith(`/${MANIFEST_NAME}`));
}

/**
 * The newest complete backup that started before `before` (by the time in its id), from a listing
 * alone: what the GFS tier of a new backup depends on (core/tiers `tierOf`).
 * @example tierOf(at, previousComplete(await listBackups(vault, job), at)?.startedAt, plan.timezone)
 */
export function previousComplete(backups: readonly BackupListing[], before: Date): BackupListing | undefined {
  let found: BackupListing | undefined;
  for (const backup of backups) {
    if (backup.complete && backup.startedAt < before && (!found || backup.startedAt > found.startedAt)) {
      found = backup;
    }
  }
  return found;
}

/** How a restore names the backup it wants. */
export type BackupSelector = { backupId: string } | { latest: true } | { at: Date };

/**
 * Picks the complete backup a selector names from a listing: by id, the newest, or the newest that
 * started at or before a point in time (a logical backup holds the data as of its start).
 * @example selectBackup(await listBackups(vault, 'appdb'), { at: new Date('2024-12-06T12:00:00Z') })
 * @throws NotFoundError saying what exists instead.
 */
export function selectBackup(backups: readonly BackupListing[], selector: BackupSelector): BackupListing {
  const complete = backups.filter((b) => b.complete);
  const job = backups[0]?.job ?? '?';
  const newest = complete.at(-1);
  const around = newest
    ? `newest is ${newest.backupId}, oldest ${complete[0]?.backupId}`
    : 'the job has no complete backup';
  if ('backupId' in selector) {
    const found = complete.find((b) => b.backupId === selector.backupId);
    if (!found) {
      const incomplete = backups.some((b) => b.backupId === selector.backupId);
      throw new NotFoundError(
        incomplete
          ? `backup ${job}/${selector.backupId} is incomplete (no manifest): it cannot be restored`
          : `backup ${selector.backupId} does not exist (${around})`,
      );
    }
    return found;
  }
  if ('latest' in selector) {
    if (!newest) throw new NotFoundError(`no complete backup to restore (${around})`);
    return newest;
  }
  const at = selector.at;
  const found = complete.filter((b) => b.startedAt <= at).at(-1);
  if (!found)
    throw new NotFoundError(`no complete backup started at or before ${at.toISOString()} (${around})`);
  return found;
}

/** One scheduled run's claim (core/layout `runClaimKey`). */
export interface RunClaim {
  backupId: string;
  claimedAt: Date;
}

/** The claims of a job's scheduled backup runs, oldest first. */
export async function listRunClaims(vault: Vault, job: string): Promise<RunClaim[]> {
  const claims: RunClaim[] = [];
  for await (const object of vault.list(runClaimPrefix(job))) {
    const parsed = parseRunClaimKey(object.key);
    if (parsed && parsed.job === job)
      claims.push({ backupId: parsed.backupId, claimedAt: object.lastModified });
  }
  return claims.sort((a, b) => a.backupId.localeCompare(b.backupId));
}

/** One file of a job's WAL archive. */
export interface WalFile {
  /** The timeline directory it is stored under. */
  timeline: string;
  /** File name: a segment (`000000010000000000000003`), a history or a backup label file. */
  name: string;
  object: StoredObject;
}

/** The files of a job's WAL archive (`wal/<job>/<timeline>/…`), in key order. Empty for logical jobs. */
export async function listWal(vault: Vault, job: string): Promise<WalFile[]> {
  const files: WalFile[] = [];
  for await (const object of vault.list(walPrefix(job))) {
    const parsed = parseWalKey(object.key);
    if (parsed && parsed.job === job) files.push({ timeline: parsed.timeline, name: parsed.segment, object });
  }
  return files;
}

/**
 * Reads every data object of a backup as stored and hashes it: SHA-256 of the stored bytes, by object
 * name, which core/checks `checkChecksums` compares with the manifest. Needs no key (the hash is of the
 * ciphertext) but reads all the data: objects in an archive class must be retrieved first.
 * @example checkChecksums(manifest, await hashStoredObjects(vault, manifest))
 */
export async function hashStoredObjects(
  vault: Vault,
  manifest: Manifest,
  options: { signal?: AbortSignal } = {},
): Promise<Map<string, { sha256: string; bytes: number } | undefined>> {
  const hashes = new Map<string, { sha256: string; bytes: number } | undefined>();
  for (const object of manifest.objects) {
    let stream: AsyncIterable<Buffer | string>;
    try {
      stream = await vault.get(objectKey(manifest.job, manifest.backupId, object.name), options);
    } catch (error) {
      if (error instanceof NotFoundError) {
        hashes.set(object.name, undefined);
        continue;
      }
      throw error;
    }
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const part of stream) {
      const buffer = typeof part === 'string' ? Buffer.from(part) : part;
      hash.update(buffer);
      bytes += buffer.length;
    }
    hashes.set(object.name, { sha256: hash.digest('hex'), bytes });
  }
  return hashes;
}

/**
 * Runs `fn` over `items` with at most `limit` calls in flight, results in input order. The first
 * failure stops new calls; the calls in flight are awaited and the first error is thrown (none is
 * swallowed).
 */
async function mapConcurrent<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.error;
  return results;
}
