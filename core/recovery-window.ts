/**
 * The recovery window of a point-in-time job, purely: from the job's retained base backups (their
 * manifests record the WAL range each needs) and the names of the files in its WAL archive, whether
 * every base backup can replay the archive up to its newest segment, which segments are missing where,
 * and how far back and how recently the job can be recovered.
 */
import type { Finding } from './agent-output';
import type { Manifest } from './manifest';
import { parseSegment, segmentName, WAL_SEGMENT_NAME } from './wal';

/** What the window check reports beside its findings. */
export interface RecoveryWindow {
  /**
   * The end of the oldest retained base backup inside the point-in-time window (older ones restore to
   * their own end only): the earliest point a point-in-time restore can reach.
   */
  earliest?: string;
  /** When the newest archived WAL file was stored: the latest point the archive reaches (about). */
  latest?: string;
  /** Seconds since the newest WAL file was archived: the recovery point objective met now. */
  rpoSeconds?: number;
  /** The newest archived segment. */
  newestSegment?: string;
}

/** What the check needs. */
export interface RecoveryWindowFacts {
  job: string;
  /** Complete, retained backups of the job, oldest first. */
  manifests: readonly Manifest[];
  /** Names of the files in the job's WAL archive. */
  walNames: readonly string[];
  /** When the newest WAL file was archived, when known. */
  newestArchivedAt?: Date;
  /**
   * Where the plan's point-in-time window starts (now minus `retention.pointInTime`). WAL before the
   * newest base backup that ended before it is expired by design ({@link expiredWal}): older base
   * backups restore to their own end only, and their missing WAL is no gap. @default no expiry
   */
  windowStart?: Date;
  now: Date;
}

interface PhysicalRange {
  timeline: number;
  firstWalSegment: string;
  lastWalSegment: string;
  walSegmentBytes: number;
}

function rangeOf(manifest: Manifest): PhysicalRange | undefined {
  const s = manifest.source as Partial<PhysicalRange>;
  if (!s.firstWalSegment || !s.lastWalSegment || !s.walSegmentBytes || !s.timeline) return undefined;
  return s as PhysicalRange;
}

/**
 * WAL continuity of every retained base backup, the recovery window and the RPO.
 * - A base backup whose WAL after its end has a hole is a critical `wal-gap`, naming the missing
 *   segments and the part of the window lost (targets after the hole cannot be reached from it).
 * - A point-in-time job with base backups but no archived WAL after the newest one is a warning
 *   (`wal-archive`): it restores to its backups' ends only.
 * - One `recovery-window` info finding states the window and the RPO.
 * @example checkRecoveryWindow({ job: 'pg', manifests, walNames, now: new Date() })
 */
export function checkRecoveryWindow(facts: RecoveryWindowFacts): {
  findings: Finding[];
  window: RecoveryWindow;
} {
  const findings: Finding[] = [];
  const backups = facts.manifests.flatMap((m) => {
    const range = rangeOf(m);
    return range ? [{ manifest: m, range }] : [];
  });
  const window: RecoveryWindow = {};
  if (backups.length === 0) return { findings, window };
  const segmentBytes = (backups[0] as { range: PhysicalRange }).range.walSegmentBytes;
  const byTimeline = new Map<number, Set<number>>();
  let newest: { timeline: number; number: number } | undefined;
  for (const name of facts.walNames) {
    if (!WAL_SEGMENT_NAME.test(name)) continue;
    const s = parseSegment(name, segmentBytes);
    const set = byTimeline.get(s.timeline) ?? new Set<number>();
    set.add(s.number);
    byTimeline.set(s.timeline, set);
    if (
      !newest ||
      s.timeline > newest.timeline ||
      (s.timeline === newest.timeline && s.number > newest.number)
    )
      newest = s;
  }
  const perLog = 0x1_0000_0000 / segmentBytes;
  // Backups older than the window's anchor keep their own WAL only: the archive after them expired.
  const anchor = facts.windowStart ? walAnchor(facts.manifests, facts.windowStart) : undefined;
  const anchorEnd = anchor ? Date.parse(anchor.m.finishedAt) : Number.NEGATIVE_INFINITY;
  const inWindow = backups.filter(({ manifest }) => Date.parse(manifest.finishedAt) >= anchorEnd);
  for (const { manifest, range } of inWindow) {
    const set = byTimeline.get(range.timeline);
    const last = parseSegment(range.lastWalSegment, segmentBytes).number;
    const top = set ? Math.max(...set) : -1;
    if (top <= last) continue; // nothing archived after this backup on its timeline
    const missing: number[] = [];
    for (let n = last + 1; n < top; n++) if (!set?.has(n)) missing.push(n);
    if (missing.length === 0) continue;
    const first = missing[0] as number;
    const names = runs(missing).map(([a, b]) =>
      a === b
        ? segmentName(range.timeline, a, perLog)
        : `${segmentName(range.timeline, a, perLog)} … ${segmentName(range.timeline, b, perLog)}`,
    );
    findings.push({
      severity: 'critical',
      job: facts.job,
      check: 'wal-gap',
      backupId: manifest.backupId,
      message: `WAL gap after base backup ${manifest.backupId}: ${missing.length} segment${missing.length > 1 ? 's' : ''} missing on timeline ${range.timeline} (${names.slice(0, 3).join('; ')}${names.length > 3 ? '; …' : ''}); recovery from it stops at ${segmentName(range.timeline, first - 1, perLog)}, every later point is lost`,
    });
  }
  const newestBackup = backups.at(-1) as { manifest: Manifest; range: PhysicalRange };
  window.earliest = (inWindow[0] ?? newestBackup).manifest.finishedAt;
  if (newest) window.newestSegment = segmentName(newest.timeline, newest.number, perLog);
  const lastOfNewest = parseSegment(newestBackup.range.lastWalSegment, segmentBytes);
  const archivedAfter =
    newest && (newest.timeline > lastOfNewest.timeline || newest.number > lastOfNewest.number);
  if (!archivedAfter) {
    findings.push({
      severity: 'warning',
      job: facts.job,
      check: 'wal-archive',
      message: `no WAL archived after base backup ${newestBackup.manifest.backupId}: point-in-time recovery reaches only the ends of base backups (is archive_command calling strongbox wal-push?)`,
    });
    window.latest = newestBackup.manifest.finishedAt;
  } else if (facts.newestArchivedAt) {
    window.latest = facts.newestArchivedAt.toISOString();
    window.rpoSeconds = Math.max(0, (facts.now.getTime() - facts.newestArchivedAt.getTime()) / 1000);
  }
  findings.push({
    severity: 'info',
    job: facts.job,
    check: 'recovery-window',
    message: `recovery window ${window.earliest} … ${window.latest ?? 'unknown'}${window.newestSegment ? ` (newest WAL ${window.newestSegment}` : ''}${window.rpoSeconds !== undefined ? `, archived ${Math.round(window.rpoSeconds)} s ago` : ''}${window.newestSegment ? ')' : ''}`,
  });
  return { findings, window };
}

/** Consecutive runs of sorted numbers: [1,2,3,7] → [[1,3],[7,7]]. */
function runs(numbers: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const n of numbers) {
    const last = out.at(-1);
    if (last && last[1] === n - 1) last[1] = n;
    else out.push([n, n]);
  }
  return out;
}

/** The newest base backup that ended before the point-in-time window starts: WAL before it expires. */
function walAnchor(
  manifests: readonly Manifest[],
  windowStart: Date,
): { m: Manifest; range: PhysicalRange } | undefined {
  return manifests
    .flatMap((m) => {
      const range = rangeOf(m);
      return range && Date.parse(m.finishedAt) <= windowStart.getTime() ? [{ m, range }] : [];
    })
    .sort((a, b) => Date.parse(a.m.finishedAt) - Date.parse(b.m.finishedAt))
    .at(-1);
}

/**
 * The WAL files retention no longer needs: those before the first segment of the newest base backup that
 * ended before the point-in-time window starts (`windowStart`), on its timeline or older ones. History
 * files are always kept (they are tiny, and recovery reads them to follow timelines). When no base
 * backup ended before the window starts, nothing expires.
 * @example expiredWal(manifests, walNames, new Date(Date.now() - 7 * 86_400_000))
 */
export function expiredWal(
  manifests: readonly Manifest[],
  walNames: readonly string[],
  windowStart: Date,
): { anchorBackupId?: string; expire: string[] } {
  const anchor = walAnchor(manifests, windowStart);
  if (!anchor) return { expire: [] };
  return {
    anchorBackupId: anchor.m.backupId,
    expire: walNames.filter((name) => isBefore(name, anchor.range)),
  };
}

/**
 * The WAL files any of these base backups can replay: all but those before the first segment of the
 * oldest one (on its timeline or older ones); history files always. None without a base backup.
 * @example neededWal(await listManifests(copyVault, 'pg'), walNames) // what a copy of the archive holds
 */
export function neededWal(manifests: readonly Manifest[], walNames: readonly string[]): string[] {
  const oldest = manifests
    .flatMap((m) => {
      const range = rangeOf(m);
      return range ? [{ m, range }] : [];
    })
    .sort((a, b) => Date.parse(a.m.finishedAt) - Date.parse(b.m.finishedAt))[0];
  if (!oldest) return [];
  return walNames.filter((name) => !isBefore(name, oldest.range));
}

/** Whether a WAL file is a segment before a base backup's first, on its timeline or an older one. */
function isBefore(name: string, range: PhysicalRange): boolean {
  const segment = name.slice(0, 24);
  if (!WAL_SEGMENT_NAME.test(segment)) return false;
  const bytes = range.walSegmentBytes;
  const first = parseSegment(range.firstWalSegment, bytes);
  const s = parseSegment(segment, bytes);
  return s.timeline <= first.timeline && s.number < first.number;
}
