/**
 * Retention: which backups a policy keeps, and the S3 lifecycle that enforces the same policy in the
 * cloud. Both are pure and read the same `Retention` (days per GFS tier), so `strongbox prune` on a
 * file vault and the lifecycle rules of an S3 vault agree.
 */
import type { Retention } from './plan';
import { STORAGE_CLASSES, type StorageClass } from './storage-classes';
import type { Tier } from './tiers';
import { TIERS } from './tiers';

const DAY_MS = 86_400_000;

/** What retention needs to know of a backup. */
export interface RetainedCandidate {
  backupId: string;
  tier: Tier;
  startedAt: Date;
}

/** The decision for one backup, with the reason in words. */
export interface RetentionDecision<T extends RetainedCandidate = RetainedCandidate> {
  backup: T;
  keep: boolean;
  reason: string;
}

/**
 * Decides which backups of one job to keep: a backup of tier T is kept while it is younger than the
 * retention of T (whole days since it started, as S3 lifecycle counts). The newest backup is always kept,
 * so pruning can never leave a job with nothing to restore.
 * @example selectRetained(backups, { daily: 7, weekly: 35, monthly: 365, yearly: 2555, pointInTime: 7 }, new Date())
 */
export function selectRetained<T extends RetainedCandidate>(
  backups: readonly T[],
  retention: Retention,
  now: Date,
): RetentionDecision<T>[] {
  const newest = backups.reduce<T | undefined>(
    (best, b) => (best === undefined || b.startedAt > best.startedAt ? b : best),
    undefined,
  );
  return [...backups]
    .sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime())
    .map((backup) => {
      const ageDays = Math.floor((now.getTime() - backup.startedAt.getTime()) / DAY_MS);
      const limit = retention[backup.tier];
      if (ageDays < limit)
        return { backup, keep: true, reason: `${backup.tier}, ${ageDays}d old, kept ${limit}d` };
      if (backup === newest) return { backup, keep: true, reason: `newest backup (${backup.tier} expired)` };
      return { backup, keep: false, reason: `${backup.tier}, ${ageDays}d old, past ${limit}d` };
    });
}

/**
 * S3 storage classes a tier can move through, coldest last: when lifecycle moves an object there (days
 * after upload), and the minimum storage charge of the class (core/storage-classes).
 */
export const STORAGE_LADDER = [
  { storageClass: 'STANDARD_IA', afterDays: 30, minimumDays: STORAGE_CLASSES.STANDARD_IA.minimumDays },
  { storageClass: 'GLACIER', afterDays: 90, minimumDays: STORAGE_CLASSES.GLACIER.minimumDays },
  { storageClass: 'DEEP_ARCHIVE', afterDays: 180, minimumDays: STORAGE_CLASSES.DEEP_ARCHIVE.minimumDays },
] as const satisfies readonly { storageClass: StorageClass; afterDays: number; minimumDays: number }[];

export type ArchiveStorageClass = (typeof STORAGE_LADDER)[number]['storageClass'];

/** The lifecycle of the data objects of one tier. */
export interface TierLifecycle {
  tier: Tier;
  expirationDays: number;
  transitions: { storageClass: ArchiveStorageClass; afterDays: number }[];
}

/**
 * The lifecycle for each tier: expire after the tier's retention and move down the storage ladder
 * (Standard-IA after 30 days, Glacier Flexible Retrieval after 90, Deep Archive after 180) only where the
 * object then stays in that class at least its minimum storage duration before it moves on or expires.
 * A class whose minimum charge would outlive the backup is never used.
 * @example tierLifecycles({ daily: 7, weekly: 35, monthly: 365, yearly: 2555, pointInTime: 7 })[2]
 *   // { tier: 'monthly', expirationDays: 365, transitions: [IA@30, GLACIER@90, DEEP_ARCHIVE@180] }
 */
export function tierLifecycles(retention: Retention): TierLifecycle[] {
  return TIERS.map((tier) => {
    const expirationDays = retention[tier];
    const transitions: TierLifecycle['transitions'] = [];
    STORAGE_LADDER.forEach((step, i) => {
      const leaves = STORAGE_LADDER[i + 1]?.afterDays;
      // Time in this class: until the next class is entered (if that one is used) or until expiry.
      const nextUsed =
        leaves !== undefined && expirationDays - leaves >= (STORAGE_LADDER[i + 1]?.minimumDays ?? 0);
      const stays = (nextUsed ? (leaves as number) : expirationDays) - step.afterDays;
      if (stays >= step.minimumDays)
        transitions.push({ storageClass: step.storageClass, afterDays: step.afterDays });
    });
    return { tier, expirationDays, transitions };
  });
}

/** Days until a tier's objects may be deleted: the retain-until date Object Lock should give them. */
export function retainUntil(startedAt: Date, tier: Tier, retention: Retention): Date {
  return new Date(startedAt.getTime() + retention[tier] * DAY_MS);
}
