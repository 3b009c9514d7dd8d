/**
 * Where things live in a vault. Keys are relative to the vault's root (a `file://` directory or an
 * `s3://bucket/prefix`); this module is the only place that spells them.
 *
 * ```
 * backups/<job>/<backupId>/<object>        data objects, written first
 * backups/<job>/<backupId>/manifest.json   written last: the commit point
 * wal/<job>/<timeline>/<segment>           PostgreSQL WAL (physical jobs)
 * ```
 */
import { isBackupId } from './backup-id';

export const MANIFEST_NAME = 'manifest.json';

/** Prefix holding every backup of a job, with a trailing slash. */
export function jobPrefix(job: string): string {
  return `backups/${job}/`;
}

/** Prefix of one backup, with a trailing slash. */
export function backupPrefix(job: string, backupId: string): string {
  return `${jobPrefix(job)}${backupId}/`;
}

/** Key of one object of a backup. */
export function objectKey(job: string, backupId: string, name: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name === MANIFEST_NAME)
    throw new RangeError(`bad object name '${name}'`);
  return `${backupPrefix(job, backupId)}${name}`;
}

/** Key of a backup's manifest. */
export function manifestKey(job: string, backupId: string): string {
  return `${backupPrefix(job, backupId)}${MANIFEST_NAME}`;
}

/** Key of a WAL segment or history file. */
export function walKey(job: string, timeline: string, segment: string): string {
  return `wal/${job}/${timeline}/${segment}`;
}

/** What a key below `backups/` names, or undefined for keys that are not part of a backup. */
export function parseBackupKey(key: string): { job: string; backupId: string; name: string } | undefined {
  const parts = key.split('/');
  if (parts.length !== 4 || parts[0] !== 'backups') return undefined;
  const [, job, backupId, name] = parts as [string, string, string, string];
  if (!isBackupId(backupId) || name === '') return undefined;
  return { job, backupId, name };
}

/**
 * Tags on data objects. Lifecycle rules filter on the tier tag; manifests carry no tier tag and stay in
 * the Standard storage class for ever, so listing and choosing a backup never needs an archive retrieval.
 */
export const OBJECT_TAGS = { tier: 'strongbox:tier', job: 'strongbox:job' } as const;
