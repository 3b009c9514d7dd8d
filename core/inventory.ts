/**
 * The inventory of a job's backups, as `strongbox list` shows it (like pgBackRest's `info`): a summary
 * per job — backups by tier, the oldest and the newest, the age of the newest, stored and source bytes
 * in total, the recovery window of a point-in-time job — and each backup with its tier, age, sizes,
 * duration and status. Pure: built from a catalog (core/catalog `readCatalog`) that reads manifests
 * only, which never leave the Standard class, so listing never needs an archive retrieval.
 */
import type { AgentListBackup, AgentListJob } from './agent-output';
import { dataObjects, type JobCatalog } from './catalog';
import { sourceBytesOf } from './checks';
import type { Manifest } from './manifest';
import { checkRecoveryWindow } from './recovery-window';
import { TIERS } from './tiers';

/** What the inventory of one job needs besides its catalog. */
export interface InventoryFacts {
  /** The job's source kind (`postgres`, `files`, …). */
  kind: string;
  catalog: JobCatalog;
  now: Date;
  /** Point-in-time jobs: the names of the WAL archive's files, for the recovery window. */
  walNames?: readonly string[];
  /** Point-in-time jobs: when the newest WAL file was archived. */
  walNewestArchivedAt?: Date;
}

/**
 * Status of a backup: `complete`; `warnings` (complete, but the source warned: files changed while
 * read); `safety` (the backup `restore --replace` took of the data it replaced: never restored by
 * default); `incomplete` (data without a manifest: running, or a failed run's leftover that prune
 * removes); `invalid` (a manifest that does not parse or describes another backup: cannot be restored).
 */
export type BackupStatus = AgentListBackup['status'];

/**
 * One job's inventory: the summary and every backup, oldest first.
 * @example inventoryOf({ kind: 'postgres', catalog: await readCatalog(vault, 'app-db'), now: new Date() })
 */
export function inventoryOf(facts: InventoryFacts): { job: AgentListJob; backups: AgentListBackup[] } {
  const { catalog, now } = facts;
  const invalid = new Set(catalog.invalid.map((i) => i.backupId));
  const backups = catalog.backups.map((listing): AgentListBackup => {
    const manifest = catalog.manifests.get(listing.backupId);
    const classes = [...new Set(dataObjects(listing).map((o) => o.storageClass))];
    const status: BackupStatus = !listing.complete
      ? 'incomplete'
      : !manifest
        ? 'invalid'
        : manifest.purpose === 'safety'
          ? 'safety'
          : manifest.warnings?.length
            ? 'warnings'
            : 'complete';
    const base: AgentListBackup = {
      job: catalog.job,
      backupId: listing.backupId,
      startedAt: listing.startedAt.toISOString(),
      complete: listing.complete,
      status,
      ageSeconds: Math.max(0, (now.getTime() - listing.startedAt.getTime()) / 1000),
      storedBytes: listing.objects.reduce((sum, o) => sum + o.sizeBytes, 0),
      storageClasses: classes.length ? classes : ['STANDARD'],
    };
    if (!manifest) return base;
    return {
      ...base,
      tier: manifest.tier,
      finishedAt: manifest.finishedAt,
      durationSeconds: durationOf(manifest),
      sourceBytes: sourceBytesOf(manifest),
      ...(manifest.warnings?.length ? { warnings: [...manifest.warnings] } : {}),
    };
  });
  // Backups that restore: complete, valid, with their data still stored (lifecycle may have expired it).
  const restorable = catalog.backups.flatMap((listing) => {
    const manifest = catalog.manifests.get(listing.backupId);
    return manifest && dataObjects(listing).length > 0 ? [manifest] : [];
  });
  const regular = restorable.filter((m) => m.purpose !== 'safety');
  const tiers = Object.fromEntries(TIERS.map((tier) => [tier, 0])) as AgentListJob['tiers'];
  for (const manifest of regular) tiers[manifest.tier] += 1;
  const oldest = regular[0];
  const newest = regular.at(-1);
  const counted = backups.filter((b) => b.status !== 'incomplete' && b.status !== 'invalid');
  const job: AgentListJob = {
    job: catalog.job,
    kind: facts.kind,
    complete: regular.length,
    tiers,
    safety: restorable.length - regular.length,
    warnings: backups.filter((b) => b.status === 'warnings').length,
    incomplete: backups.filter((b) => b.status === 'incomplete').length,
    invalid: invalid.size,
    storedBytes: backups.reduce((sum, b) => sum + b.storedBytes, 0),
    sourceBytes: counted.reduce((sum, b) => sum + (b.sourceBytes ?? 0), 0),
    ...(oldest ? { oldest: pointOf(oldest) } : {}),
    ...(newest
      ? {
          newest: {
            ...pointOf(newest),
            ageSeconds: Math.max(0, (now.getTime() - Date.parse(newest.finishedAt)) / 1000),
          },
        }
      : {}),
  };
  if (facts.walNames !== undefined) {
    const { window } = checkRecoveryWindow({
      job: catalog.job,
      manifests: restorable,
      walNames: facts.walNames,
      newestArchivedAt: facts.walNewestArchivedAt,
      now,
    });
    if (window.earliest) {
      job.recoveryWindow = { earliest: window.earliest, ...(window.latest ? { latest: window.latest } : {}) };
    }
  }
  return { job, backups };
}

function pointOf(manifest: Manifest): { backupId: string; finishedAt: string } {
  return { backupId: manifest.backupId, finishedAt: manifest.finishedAt };
}

function durationOf(manifest: Manifest): number {
  return Math.max(0, (Date.parse(manifest.finishedAt) - Date.parse(manifest.startedAt)) / 1000);
}
