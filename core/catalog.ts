/**
 * The catalog: what backups a vault holds, read through the Vault port only (so the agent and the
 * Lambdas share it). A backup is complete when its manifest exists; data objects without a manifest are
 * an incomplete backup (in progress, or failed and not yet cleaned up). Listing needs only LIST and reads
 * of manifests, which never leave the Standard storage class: choosing a backup never needs a retrieval.
 */
import { backupIdTime } from './backup-id';
import { IntegrityError, NotFoundError } from './errors';
import { jobPrefix, MANIFEST_NAME, manifestKey, parseBackupKey } from './layout';
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
  return [...byId.values()].sort((a, b) => a.backupId.localeCompare(b.backupId));
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

/** Manifests of every complete backup of a job, oldest first. */
export async function listManifests(vault: Vault, job: string): Promise<Manifest[]> {
  const complete = (await listBackups(vault, job)).filter((b) => b.complete);
  const manifests: Manifest[] = [];
  for (const backup of complete) manifests.push(await readManifest(vault, job, backup.backupId));
  return manifests;
}

/** The newest complete backup of a job, or undefined when there is none. Reads one manifest. */
export async function newestComplete(vault: Vault, job: string): Promise<Manifest | undefined> {
  const newest = (await listBackups(vault, job)).filter((b) => b.complete).at(-1);
  return newest ? readManifest(vault, job, newest.backupId) : undefined;
}

/**
 * The backup a restore asks for: by id, or the newest complete one.
 * @throws NotFoundError naming the job when there is none.
 */
export async function findBackup(vault: Vault, job: string, backupId?: string): Promise<Manifest> {
  if (backupId) return readManifest(vault, job, backupId);
  const newest = await newestComplete(vault, job);
  if (!newest) throw new NotFoundError(`job '${job}' has no complete backup in ${vault.url}`);
  return newest;
}
