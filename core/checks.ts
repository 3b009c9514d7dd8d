/**
 * Verification checks, shared by `strongbox verify` and the verify Lambda. Each takes facts and returns
 * findings; none does I/O.
 */
import type { Finding, Severity } from './agent-output';
import { formatBytes } from './bytes';
import { completeManifests, dataObjects, type JobCatalog, type RunClaim } from './catalog';
import { formatDuration } from './duration';
import { objectKey } from './layout';
import type { Manifest } from './manifest';
import type { Job, Retention } from './plan';
import type { StoredObject } from './ports';
import { checkRecoveryWindow, type RecoveryWindow } from './recovery-window';
import { tierLifecycles } from './retention';
import { capabilitiesOf } from './sources/index';
import { coldnessOf, LIFECYCLE_MIN_OBJECT_BYTES } from './storage-classes';
import { type LocalDate, localDate, type Tier } from './tiers';

/** One thing verification found, and its severity: the agent's `--json` contract (core/agent-output). */
export type { Finding, Severity } from './agent-output';

/** Ordering of severities, worst first. */
export const SEVERITY_ORDER: readonly Severity[] = ['critical', 'warning', 'info'];

/** Warnings of a backup named in a finding; the rest are counted. */
const WARNINGS_NAMED = 5;

/**
 * What the newest complete backup recorded as not stored exactly as asked (manifest `warnings`: files
 * that changed, shrank or vanished while read, unreadable files the plan lets pass). Info, not a
 * warning: the backup is complete and restores; its own run already exited 1 for them. Live trees (logs)
 * warn on every run, and verify must not page for that every day.
 * @example checkBackupWarnings(job, newest) // [{ severity: 'info', check: 'backup-warnings', … }]
 */
export function checkBackupWarnings(
  job: Job,
  newest: Pick<Manifest, 'backupId' | 'warnings'> | undefined,
): Finding[] {
  const warnings = newest?.warnings ?? [];
  if (!newest || warnings.length === 0) return [];
  const more = warnings.length - WARNINGS_NAMED;
  return [
    {
      severity: 'info',
      job: job.name,
      check: 'backup-warnings',
      backupId: newest.backupId,
      message: `backup ${newest.backupId} stored ${warnings.length} entr${warnings.length === 1 ? 'y' : 'ies'} not exactly as asked: ${warnings.slice(0, WARNINGS_NAMED).join('; ')}${more > 0 ? ` and ${more} more` : ''}`,
    },
  ];
}

/**
 * Age of the newest complete backup against the job's limits.
 * @example checkAge(job, newestManifest, new Date()) // [] when fresh
 */
export function checkAge(
  job: Job,
  newest: Pick<Manifest, 'backupId' | 'finishedAt'> | undefined,
  now: Date,
): Finding[] {
  if (!newest) {
    return [
      { severity: 'critical', job: job.name, check: 'no-backup', message: 'no complete backup exists' },
    ];
  }
  const ageSeconds = (now.getTime() - Date.parse(newest.finishedAt)) / 1000;
  const { warnAge, criticalAge } = job.limits;
  const base = { job: job.name, check: 'backup-age', backupId: newest.backupId };
  if (ageSeconds >= criticalAge) {
    return [
      {
        ...base,
        severity: 'critical',
        message: `newest backup is ${formatDuration(ageSeconds)} old (critical at ${formatDuration(criticalAge)})`,
      },
    ];
  }
  if (ageSeconds >= warnAge) {
    return [
      {
        ...base,
        severity: 'warning',
        message: `newest backup is ${formatDuration(ageSeconds)} old (warning at ${formatDuration(warnAge)})`,
      },
    ];
  }
  return [];
}

/**
 * Every object the manifest lists must be stored with the recorded size. `stored` maps keys to what
 * the vault reports; `keyOf` gives an object's key.
 */
export function checkObjects(
  manifest: Manifest,
  stored: ReadonlyMap<string, StoredObject>,
  keyOf: (name: string) => string,
): Finding[] {
  const findings: Finding[] = [];
  for (const object of manifest.objects) {
    const key = keyOf(object.name);
    const found = stored.get(key);
    const base = { job: manifest.job, backupId: manifest.backupId };
    if (!found) {
      findings.push({ ...base, severity: 'critical', check: 'object-missing', message: `${key} is missing` });
    } else if (found.sizeBytes !== object.storedBytes) {
      findings.push({
        ...base,
        severity: 'critical',
        check: 'object-size',
        message: `${key} holds ${found.sizeBytes} bytes, manifest says ${object.storedBytes}`,
      });
    }
  }
  return findings;
}

/** How many times the recent median a backup may grow to before it is a warning (`limits.growthRatio`). */
export const DEFAULT_GROWTH_RATIO = 4;

/**
 * Size of the newest backup — its source bytes, before compression and encryption — against the job's
 * floor (`limits.minBytes`, critical) and the median of the backups before it in `recent` (at least
 * two): under `limits.shrinkRatio` of it is a warning (the classic dump of an empty database, a path
 * that was not mounted), and so is over `limits.growthRatio` times it (a table filling with junk, a
 * path now taking in a whole disk).
 * @example checkSize(job, newest, manifests.slice(-plan.verify.recentCount))
 */
export function checkSize(job: Job, newest: Manifest | undefined, recent: readonly Manifest[]): Finding[] {
  if (!newest) return [];
  const bytes = sourceBytesOf(newest);
  const base = { job: job.name, check: 'backup-size', backupId: newest.backupId };
  const what = `newest backup has ${formatBytes(bytes)} of source data`;
  if (bytes < job.limits.minBytes) {
    return [
      {
        ...base,
        severity: 'critical',
        message: `${what}, below the floor of ${formatBytes(job.limits.minBytes)} (limits.minBytes; source bytes, before compression)`,
      },
    ];
  }
  const sizes = recent.filter((m) => m.backupId !== newest.backupId).map(sourceBytesOf);
  if (sizes.length < 2) return [];
  const median = medianOf(sizes);
  const against = `the median ${formatBytes(median)} of the ${sizes.length} backups before it (source bytes, before compression)`;
  if (bytes < median * job.limits.shrinkRatio) {
    return [
      {
        ...base,
        severity: 'warning',
        message: `${what}, under ${Math.round(job.limits.shrinkRatio * 100)}% of ${against}: was the source empty or cut short?`,
      },
    ];
  }
  const growth = job.limits.growthRatio ?? DEFAULT_GROWTH_RATIO;
  if (median > 0 && bytes > median * growth) {
    return [
      {
        ...base,
        severity: 'warning',
        message: `${what}, ${(bytes / median).toFixed(1)}× ${against}, more than the ${growth}× limits.growthRatio allows`,
      },
    ];
  }
  return [];
}

/** Bytes the source produced for a backup (before compression). */
export function sourceBytesOf(manifest: Manifest): number {
  return manifest.objects.reduce((sum, o) => sum + o.sourceBytes, 0);
}

/** Median of a non-empty list. */
export function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Exit status monitoring systems read: 0 nothing worse than info, 1 a warning, 2 anything critical. */
export function exitCodeOf(findings: readonly Finding[]): 0 | 1 | 2 {
  if (findings.some((f) => f.severity === 'critical')) return 2;
  if (findings.some((f) => f.severity === 'warning')) return 1;
  return 0;
}

const DAY_MS = 86_400_000;
const TIER_RANK: Readonly<Record<Tier, number>> = { daily: 0, weekly: 1, monthly: 2, yearly: 3 };

/** What the tier checks need of a backup. */
export interface TieredBackup {
  backupId: string;
  tier: Tier;
  startedAt: Date;
}

/**
 * Backups per GFS tier against retention: every ISO week (month, year) that lies wholly inside the
 * weekly (monthly, yearly) retention window and after the job's first backup must still hold a backup of
 * that tier or a higher one, because the first backup of each period gets that tier and is kept for the
 * tier's retention. Pass only backups whose data is still stored. Tiers shorter than the job's usual
 * interval between backups are not expected (a monthly job has no weekly backups).
 * @example checkTierCoverage(job, retentionOf(plan, job), present, plan.timezone, new Date())
 */
export function checkTierCoverage(
  job: Job,
  retention: Retention,
  backups: readonly TieredBackup[],
  timeZone: string,
  now: Date,
): Finding[] {
  const sorted = [...backups].sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime());
  const first = sorted[0];
  if (!first) return [];
  const gaps = sorted
    .slice(1)
    .map((b, i) => b.startedAt.getTime() - (sorted[i] as TieredBackup).startedAt.getTime());
  const usualGapDays = gaps.length > 0 ? medianOf(gaps) / DAY_MS : Number.POSITIVE_INFINITY;
  const findings: Finding[] = [];
  for (const { tier, periodDays, stepDays, label } of COVERED_TIERS) {
    if (usualGapDays > periodDays) continue;
    const windowStart = new Date(
      Math.max(now.getTime() - retention[tier] * DAY_MS, first.startedAt.getTime()),
    );
    const periodOf = (instant: Date) => periodKey(tier, localDate(instant, timeZone));
    const partial = periodOf(windowStart);
    const current = periodOf(now);
    const expected: string[] = [];
    for (let t = windowStart.getTime(); t <= now.getTime(); t += stepDays * DAY_MS) {
      const key = periodOf(new Date(t));
      if (key !== partial && key !== current && !expected.includes(key)) expected.push(key);
    }
    const covered = new Set(
      sorted
        .filter((b) => TIER_RANK[b.tier] >= TIER_RANK[tier] && b.startedAt >= windowStart)
        .map((b) => periodOf(b.startedAt)),
    );
    const missing = expected.filter((key) => !covered.has(key));
    if (missing.length > 0) {
      const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? ', …' : '');
      findings.push({
        severity: 'warning',
        job: job.name,
        check: 'tier-coverage',
        message: `${missing.length} of ${expected.length} ${label} kept by the ${tier} retention of ${retention[tier]}d have no ${tier} (or higher) backup: ${shown}`,
      });
    }
  }
  return findings;
}

const COVERED_TIERS = [
  { tier: 'weekly', periodDays: 7, stepDays: 1, label: 'ISO weeks' },
  { tier: 'monthly', periodDays: 31, stepDays: 7, label: 'months' },
  { tier: 'yearly', periodDays: 366, stepDays: 28, label: 'years' },
] as const;

function periodKey(tier: 'weekly' | 'monthly' | 'yearly', date: LocalDate): string {
  if (tier === 'weekly') return `${date.isoYear}-W${String(date.isoWeek).padStart(2, '0')}`;
  if (tier === 'monthly') return `${date.year}-${String(date.month).padStart(2, '0')}`;
  return String(date.year);
}

/** Whole days since an instant, as S3 lifecycle counts them. */
export function ageDays(since: Date, now: Date): number {
  return Math.floor((now.getTime() - since.getTime()) / DAY_MS);
}

/**
 * Backups whose data outlived their tier's retention by more than `graceDays`: S3 lifecycle (or
 * `strongbox prune` on a file vault) should have removed them. `newestId` is exempt (prune keeps it).
 */
export function checkRetentionOverdue(
  job: Job,
  retention: Retention,
  backups: readonly (TieredBackup & { dataCreatedAt: Date })[],
  now: Date,
  options: { graceDays?: number; newestId?: string } = {},
): Finding[] {
  const grace = options.graceDays ?? 2;
  const overdue = backups.filter(
    (b) => b.backupId !== options.newestId && ageDays(b.dataCreatedAt, now) >= retention[b.tier] + grace,
  );
  const oldest = overdue[0];
  if (!oldest) return [];
  return [
    {
      severity: 'warning',
      job: job.name,
      check: 'retention-overdue',
      backupId: oldest.backupId,
      message: `${overdue.length} backup${overdue.length > 1 ? 's' : ''} outlived retention (oldest: ${oldest.backupId}, ${oldest.tier}, ${ageDays(oldest.dataCreatedAt, now)}d old, kept ${retention[oldest.tier]}d): check the bucket's lifecycle rules or run strongbox prune`,
    },
  ];
}

/**
 * The storage class of each object of a retained backup against its tier's lifecycle (core/retention
 * `tierLifecycles`) at the object's age. An object colder than the lifecycle allows (archived early, or
 * in a class its tier never uses) is a warning: restoring it needs a retrieval nobody planned for. One
 * that has not moved `graceDays` after its transition is noted (objects under 128 KiB never move).
 * Only meaningful for S3 vaults whose lifecycle rules came from the same retention.
 */
export function checkStorageClasses(
  manifest: Manifest,
  stored: ReadonlyMap<string, StoredObject>,
  keyOf: (name: string) => string,
  retention: Retention,
  now: Date,
  options: { graceDays?: number } = {},
): Finding[] {
  const grace = options.graceDays ?? 2;
  const lifecycle = tierLifecycles(retention).find((l) => l.tier === manifest.tier);
  const findings: Finding[] = [];
  for (const object of manifest.objects) {
    const key = keyOf(object.name);
    const found = stored.get(key);
    if (!found) continue;
    const uploaded = object.storageClass ?? 'STANDARD';
    const classAt = (days: number) => {
      const step = lifecycle?.transitions.filter((t) => t.afterDays <= days).at(-1);
      if (!step) return uploaded;
      return uploaded === 'INTELLIGENT_TIERING' && step.storageClass === 'STANDARD_IA'
        ? uploaded
        : step.storageClass;
    };
    const age = ageDays(found.lastModified, now);
    const expectedNow = classAt(age);
    const expectedBefore = classAt(Math.max(0, age - grace));
    const rank = coldnessOf(found.storageClass);
    const base = { job: manifest.job, backupId: manifest.backupId, check: 'storage-class' };
    if (rank > coldnessOf(expectedNow)) {
      findings.push({
        ...base,
        severity: 'warning',
        message: `${key} is in ${found.storageClass} at ${age}d old; the ${manifest.tier} lifecycle has it in ${expectedNow} (a restore now needs a retrieval)`,
      });
    } else if (rank < coldnessOf(expectedBefore) && found.sizeBytes >= LIFECYCLE_MIN_OBJECT_BYTES) {
      findings.push({
        ...base,
        severity: 'info',
        message: `${key} is still in ${found.storageClass} at ${age}d old; the ${manifest.tier} lifecycle moves it to ${expectedBefore}`,
      });
    }
  }
  return findings;
}

/**
 * Every object of a backup hashed as stored (core/catalog `hashStoredObjects`) against the SHA-256 and
 * size the manifest recorded. A missing hash means the object is missing.
 */
export function checkChecksums(
  manifest: Manifest,
  hashes: ReadonlyMap<string, { sha256: string; bytes: number } | undefined>,
  keyOf: (name: string) => string,
): Finding[] {
  const findings: Finding[] = [];
  for (const object of manifest.objects) {
    if (!hashes.has(object.name)) continue;
    const hash = hashes.get(object.name);
    const key = keyOf(object.name);
    const base = { job: manifest.job, backupId: manifest.backupId, severity: 'critical' as const };
    if (!hash) {
      findings.push({ ...base, check: 'object-missing', message: `${key} is missing` });
    } else if (hash.sha256 !== object.sha256 || hash.bytes !== object.storedBytes) {
      findings.push({
        ...base,
        check: 'object-checksum',
        message: `${key} does not match its manifest: SHA-256 ${hash.sha256.slice(0, 16)}… (${hash.bytes} bytes), recorded ${object.sha256.slice(0, 16)}… (${object.storedBytes} bytes)`,
      });
    }
  }
  return findings;
}

/** WAL segment size the continuity check assumes unless told (PostgreSQL's default, 16 MiB). */
export const DEFAULT_WAL_SEGMENT_BYTES = 16 * 1024 * 1024;

const WAL_SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.[a-z0-9]+)?$/i;

/**
 * WAL continuity of a point-in-time job, from the names of the files under `wal/<job>/<timeline>/`:
 * on each timeline, every segment between the first and the last archived one must be there — a gap
 * makes every recovery target after it unreachable. History, backup-label and partial files are ignored;
 * a compression suffix on segment names (`.zst`) is allowed.
 * @example checkWalContinuity(job, ['000000010000000000000001', '000000010000000000000003'])
 *   // one critical finding: 000000010000000000000002 missing
 */
export function checkWalContinuity(
  job: Job,
  names: readonly string[],
  options: { segmentBytes?: number } = {},
): Finding[] {
  const segmentsPerLog = 0x1_0000_0000 / (options.segmentBytes ?? DEFAULT_WAL_SEGMENT_BYTES);
  const byTimeline = new Map<number, Set<number>>();
  const findings: Finding[] = [];
  for (const name of names) {
    const match = WAL_SEGMENT.exec(name);
    if (!match || match[4] === '.partial' || match[4] === '.backup') continue;
    const timeline = Number.parseInt(match[1] as string, 16);
    const log = Number.parseInt(match[2] as string, 16);
    const segment = Number.parseInt(match[3] as string, 16);
    if (segment >= segmentsPerLog) {
      findings.push({
        severity: 'warning',
        job: job.name,
        check: 'wal-name',
        message: `WAL file ${name} does not fit a segment size of ${(options.segmentBytes ?? DEFAULT_WAL_SEGMENT_BYTES) / 1024 / 1024} MiB`,
      });
      continue;
    }
    const set = byTimeline.get(timeline) ?? new Set<number>();
    byTimeline.set(timeline, set);
    set.add(log * segmentsPerLog + segment);
  }
  const nameOf = (timeline: number, n: number) =>
    [timeline, Math.floor(n / segmentsPerLog), n % segmentsPerLog]
      .map((v) => v.toString(16).toUpperCase().padStart(8, '0'))
      .join('');
  for (const [timeline, set] of [...byTimeline].sort((a, b) => a[0] - b[0])) {
    const numbers = [...set].sort((a, b) => a - b);
    const holes: string[] = [];
    let missingCount = 0;
    for (let i = 1; i < numbers.length; i++) {
      const before = numbers[i - 1] as number;
      const after = numbers[i] as number;
      if (after - before > 1) {
        missingCount += after - before - 1;
        holes.push(
          after - before === 2
            ? nameOf(timeline, before + 1)
            : `${nameOf(timeline, before + 1)} … ${nameOf(timeline, after - 1)}`,
        );
      }
    }
    if (holes.length > 0) {
      findings.push({
        severity: 'critical',
        job: job.name,
        check: 'wal-gap',
        message: `WAL gap on timeline ${timeline}: ${missingCount} segment${missingCount > 1 ? 's' : ''} missing (${holes.slice(0, 3).join('; ')}${holes.length > 3 ? '; …' : ''}); point-in-time recovery cannot cross it`,
      });
    }
  }
  return findings;
}

/** Facts about one job that `checkJob` verifies, all read beforehand (core/catalog). */
export interface JobFacts {
  job: Job;
  /** The job's retention (core/plan `retentionOf`). */
  retention: Retention;
  /** The plan's time zone (GFS periods). */
  timeZone: string;
  catalog: JobCatalog;
  /** How many recent backups the size median takes (plan `verify.recentCount`). */
  recentCount: number;
  now: Date;
  /** Claims of scheduled runs (core/catalog `listRunClaims`); runs that left no backup are reported. */
  runClaims?: readonly RunClaim[];
  /** Names of the job's WAL files (core/catalog `listWal`); continuity is checked when given. */
  walNames?: readonly string[];
  /** When the newest WAL file was archived (point-in-time jobs): the RPO met now. */
  walNewestArchivedAt?: Date;
  /** Check storage classes against the tier lifecycles (S3 vaults whose lifecycle the stack made). */
  storageClasses?: boolean;
}

/** What `checkJob` measured, for metrics and reports. */
export interface JobSummary {
  job: string;
  newestBackupId?: string;
  /** Seconds since the newest complete backup finished. */
  backupAgeSeconds?: number;
  /** Stored bytes of the newest complete backup. */
  lastBackupBytes?: number;
  /** Complete backups whose data is within retention and was checked against the manifest. */
  retained: number;
  /** Complete backups past their tier's retention (their data is expected to be gone). */
  expired: number;
  /** Backups with data but no manifest. */
  incomplete: number;
  /** Point-in-time jobs: the earliest and latest points a restore can reach (core/recovery-window). */
  recoveryWindow?: { earliest: string; latest?: string };
  /** Point-in-time jobs: seconds since the newest WAL file was archived. */
  walRpoSeconds?: number;
}

/** How long a run claim without a backup is reported (older ones are history). */
const MISSING_RUN_WINDOW_DAYS = 7;

/**
 * Every check of one job over facts read beforehand, worst finding first: newest backup's age, invalid
 * manifests, each retained backup's objects (presence, size, and storage class when asked) against its
 * manifest, data that outlived retention, size against the recent median and the floor, GFS tier
 * coverage, scheduled runs and incomplete backups that left no complete backup, and WAL continuity.
 * Backups past their tier's retention are not expected to have data (lifecycle removed it; manifests
 * stay in Standard for ever). Checksums need the data read: see `checkChecksums`.
 * @example const { findings, summary } = checkJob({ job, retention: retentionOf(plan, job),
 *   timeZone: plan.timezone, catalog: await readCatalog(vault, job.name), recentCount: 7, now: new Date() })
 */
export function checkJob(facts: JobFacts): { findings: Finding[]; summary: JobSummary } {
  const { job, retention, catalog, now } = facts;
  const findings: Finding[] = [];
  const manifests = completeManifests(catalog);
  const newest = manifests.at(-1);
  findings.push(...checkAge(job, newest, now));
  findings.push(...checkBackupWarnings(job, newest));
  for (const { backupId, error } of catalog.invalid) {
    findings.push({
      severity: 'critical',
      job: job.name,
      check: 'manifest-invalid',
      backupId,
      message: `${error.message}: this backup cannot be restored`,
    });
  }

  const listings = new Map(catalog.backups.map((b) => [b.backupId, b]));
  const overdue: (TieredBackup & { dataCreatedAt: Date })[] = [];
  const present: TieredBackup[] = [];
  let retained = 0;
  let expired = 0;
  const expiredIds = new Set<string>();
  for (const manifest of manifests) {
    const listing = listings.get(manifest.backupId);
    if (!listing) continue;
    const data = dataObjects(listing);
    const startedAt = listing.startedAt;
    // S3 lifecycle counts a data object's age from its creation; without data, from the id's time.
    const dataCreatedAt =
      data.length > 0 ? new Date(Math.min(...data.map((o) => o.lastModified.getTime()))) : startedAt;
    const tiered = { backupId: manifest.backupId, tier: manifest.tier, startedAt };
    if (data.length > 0) present.push(tiered);
    if (ageDays(dataCreatedAt, now) >= retention[manifest.tier]) {
      expired++;
      expiredIds.add(manifest.backupId);
      if (data.length > 0) overdue.push({ ...tiered, dataCreatedAt });
      continue;
    }
    retained++;
    const stored = new Map(listing.objects.map((o) => [o.key, o]));
    const keyOf = (name: string) => objectKey(job.name, manifest.backupId, name);
    findings.push(...checkObjects(manifest, stored, keyOf));
    if (facts.storageClasses) findings.push(...checkStorageClasses(manifest, stored, keyOf, retention, now));
  }
  findings.push(...checkRetentionOverdue(job, retention, overdue, now, { newestId: newest?.backupId }));
  findings.push(...checkSize(job, newest, manifests.slice(-facts.recentCount)));
  findings.push(...checkTierCoverage(job, retention, present, facts.timeZone, now));

  // Runs that left no complete backup: a claimed schedule, or data without a manifest.
  const completeIds = new Set(catalog.backups.filter((b) => b.complete).map((b) => b.backupId));
  const newestStart = newest ? (listings.get(newest.backupId)?.startedAt ?? new Date(0)) : new Date(0);
  const overAfter = (job.timeout + 3600) * 1000;
  const reported = new Set<string>();
  for (const claim of facts.runClaims ?? []) {
    if (completeIds.has(claim.backupId)) continue;
    const sinceMs = now.getTime() - claim.claimedAt.getTime();
    if (sinceMs < overAfter || sinceMs > MISSING_RUN_WINDOW_DAYS * DAY_MS) continue;
    const left = listings.has(claim.backupId) ? ' and left an incomplete backup' : '';
    reported.add(claim.backupId);
    findings.push({
      severity: claim.claimedAt > newestStart ? 'warning' : 'info',
      job: job.name,
      check: 'backup-missing',
      backupId: claim.backupId,
      message: `scheduled backup ${claim.backupId} (started ${claim.claimedAt.toISOString()}) never completed${left}`,
    });
  }
  const incomplete = catalog.backups.filter((b) => !b.complete);
  for (const listing of incomplete) {
    if (reported.has(listing.backupId)) continue;
    const lastWrite = listing.objects.reduce((max, o) => Math.max(max, o.lastModified.getTime()), 0);
    if (now.getTime() - lastWrite < overAfter) continue; // may still be running
    findings.push({
      severity: listing.startedAt > newestStart ? 'warning' : 'info',
      job: job.name,
      check: 'incomplete-backup',
      backupId: listing.backupId,
      message: `backup ${listing.backupId} never finished (data but no manifest); it does not count and is removed by lifecycle or strongbox prune`,
    });
  }
  let window: RecoveryWindow = {};
  if (capabilitiesOf(job.source.kind).pointInTime) {
    // From each retained base backup's end to the newest archived segment (core/recovery-window).
    const checked = checkRecoveryWindow({
      job: job.name,
      manifests: manifests.filter((m) => !expiredIds.has(m.backupId)),
      walNames: facts.walNames ?? [],
      newestArchivedAt: facts.walNewestArchivedAt,
      windowStart: new Date(now.getTime() - facts.retention.pointInTime * 86_400_000),
      now,
    });
    findings.push(...checked.findings);
    window = checked.window;
  } else if (facts.walNames) findings.push(...checkWalContinuity(job, facts.walNames));

  findings.sort((a, b) => SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity));
  const summary: JobSummary = { job: job.name, retained, expired, incomplete: incomplete.length };
  if (window.earliest) summary.recoveryWindow = { earliest: window.earliest, latest: window.latest };
  if (window.rpoSeconds !== undefined) summary.walRpoSeconds = window.rpoSeconds;
  if (newest) {
    summary.newestBackupId = newest.backupId;
    summary.backupAgeSeconds = Math.max(0, (now.getTime() - Date.parse(newest.finishedAt)) / 1000);
    summary.lastBackupBytes = newest.objects.reduce((sum, o) => sum + o.storedBytes, 0);
  }
  return { findings, summary };
}
