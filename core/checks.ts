/**
 * Verification checks, shared by `strongbox verify` and the verify Lambda. Each takes facts and returns
 * findings; none does I/O.
 */
import { formatDuration } from './duration';
import type { Manifest } from './manifest';
import type { Job } from './plan';
import type { StoredObject } from './ports';

export type Severity = 'critical' | 'warning' | 'info';

/** One thing verification found. */
export interface Finding {
  severity: Severity;
  job: string;
  /** Short machine-readable name: `backup-age`, `no-backup`, `object-missing`, … */
  check: string;
  message: string;
  backupId?: string;
}

/** Ordering of severities, worst first. */
export const SEVERITY_ORDER: readonly Severity[] = ['critical', 'warning', 'info'];

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

/**
 * Size of the newest backup against the median of the ones before it and the job's floor: a dump that
 * shrank to half overnight is usually a broken source, not a tidy database.
 */
export function checkSize(job: Job, newest: Manifest | undefined, recent: readonly Manifest[]): Finding[] {
  if (!newest) return [];
  const bytes = sourceBytesOf(newest);
  const base = { job: job.name, check: 'backup-size', backupId: newest.backupId };
  if (bytes < job.limits.minBytes) {
    return [
      {
        ...base,
        severity: 'critical',
        message: `newest backup has ${bytes} bytes, below the floor of ${job.limits.minBytes}`,
      },
    ];
  }
  const sizes = recent.filter((m) => m.backupId !== newest.backupId).map(sourceBytesOf);
  if (sizes.length < 2) return [];
  const median = medianOf(sizes);
  if (bytes < median * job.limits.shrinkRatio) {
    return [
      {
        ...base,
        severity: 'warning',
        message: `newest backup has ${bytes} bytes, under ${Math.round(job.limits.shrinkRatio * 100)}% of the recent median ${median}`,
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
