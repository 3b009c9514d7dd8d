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

/**
 * Names of objects inside a backup: letters, digits, dots, dashes and underscores, starting with a letter
 * or digit (so never `.` or `..`, which a file vault would resolve to a directory).
 */
export const OBJECT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Where `strongbox doctor` writes its vault probe (create-only, a fresh name each run). Host policies of
 * an AWS deployment allow writing and reading below it, nothing else.
 */
export const DOCTOR_PROBE_PREFIX = 'doctor/';

/** The key of one doctor probe: the host's name and a random nonce, below {@link DOCTOR_PROBE_PREFIX}. */
export function doctorProbeKey(host: string, nonce: string): string {
  return `${DOCTOR_PROBE_PREFIX}${host}-${nonce}.probe`;
}

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
  if (!OBJECT_NAME.test(name) || name === MANIFEST_NAME) throw new RangeError(`bad object name '${name}'`);
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
  if (job === '' || !isBackupId(backupId) || name === '') return undefined;
  return { job, backupId, name };
}

/**
 * Tags on data objects. Lifecycle rules filter on the tier tag; manifests carry no tier tag and stay in
 * the Standard storage class for ever, so listing and choosing a backup never needs an archive retrieval.
 */
export const OBJECT_TAGS = { tier: 'strongbox:tier', job: 'strongbox:job' } as const;

/** Prefix of a job's WAL archive, with a trailing slash. */
export function walPrefix(job: string): string {
  return `wal/${job}/`;
}

/** What a key below `wal/` names, or undefined for other keys. */
export function parseWalKey(key: string): { job: string; timeline: string; segment: string } | undefined {
  const parts = key.split('/');
  if (parts.length !== 4 || parts[0] !== 'wal') return undefined;
  const [, job, timeline, segment] = parts as [string, string, string, string];
  if (job === '' || timeline === '' || segment === '') return undefined;
  return { job, timeline, segment };
}

/**
 * Prefix of the claims of a job's scheduled backup runs, with a trailing slash. A claim is written with a
 * conditional put (create only) before a backup is commanded, so a retried schedule never starts a second
 * backup for the same scheduled time. Claims are small JSON documents in the Standard class.
 */
export function runClaimPrefix(job: string): string {
  return `runs/${job}/`;
}

/** Key of the claim of one scheduled backup run: `runs/<job>/<backupId>.json`. */
export function runClaimKey(job: string, backupId: string): string {
  if (!isBackupId(backupId)) throw new RangeError(`'${backupId}' is not a backup id`);
  return `${runClaimPrefix(job)}${backupId}.json`;
}

/** The backup id a run claim key names, or undefined for other keys. */
export function parseRunClaimKey(key: string): { job: string; backupId: string } | undefined {
  const match = /^runs\/([^/]+)\/([^/]+)\.json$/.exec(key);
  if (!match || !isBackupId(match[2] as string)) return undefined;
  return { job: match[1] as string, backupId: match[2] as string };
}

/**
 * Key of the claim of one scheduled restore drill: `drills/<job>/<drillId>.json`, where the drill id has
 * the form of a backup id made from the scheduled time.
 */
export function drillClaimKey(job: string, drillId: string): string {
  if (!isBackupId(drillId)) throw new RangeError(`'${drillId}' is not a drill id`);
  return `drills/${job}/${drillId}.json`;
}

/**
 * Prefix of the pending restore requests of one backup, with a trailing slash. A restore that must first
 * retrieve archived objects (Glacier, Deep Archive) is kept here until every object is readable.
 */
export function restoreRequestPrefix(job: string, backupId: string): string {
  return `restores/${job}/${backupId}/`;
}

/** Key of one pending restore request: `restores/<job>/<backupId>/<requestId>.json`. */
export function restoreRequestKey(job: string, backupId: string, requestId: string): string {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(requestId)) throw new RangeError(`bad restore request id '${requestId}'`);
  return `${restoreRequestPrefix(job, backupId)}${requestId}.json`;
}

/**
 * Key of the marker that a pending restore request was continued (its command sent), written with a
 * conditional put so that two "retrieval done" events never command the restore twice.
 */
export function restoreStartedKey(job: string, backupId: string, requestId: string): string {
  return `${restoreRequestKey(job, backupId, requestId).slice(0, -'.json'.length)}.started`;
}
