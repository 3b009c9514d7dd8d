/**
 * `strongbox verify`: for each job, every check of core/checks `checkJob` (the same code the verify
 * Lambda runs) — the newest complete backup's age against the job's limits, each retained backup's
 * objects present with their recorded sizes, size against the recent median and the floor, GFS tier
 * coverage, data kept past retention, incomplete backups, WAL continuity — and with `--deep` a full read
 * of the newest backup (or `--backup-id`): decrypt, authenticate every chunk, decompress and compare the
 * SHA-256 and sizes with the manifest, without restoring anything.
 */
import { backupsForCopy, openCopyRuntime } from '#agent/copy';
import { formatBytes, formatTable } from '#agent/format';
import { openBackup, readThroughBackup } from '#agent/read-backup';
import { sourceContext } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { detailsOf, sourceDriver } from '#agent/sources/index';
import { watchVaultStorage } from '#agent/storage-watch';
import type { AgentVerifyResult } from '#core/agent-output';
import {
  completeManifests,
  type JobCatalog,
  listBackups,
  listRunClaims,
  listWal,
  readCatalog,
  readManifest,
} from '#core/catalog';
import { checkJob, exitCodeOf, type Finding, type JobSummary, SEVERITY_ORDER } from '#core/checks';
import { formatDuration } from '#core/duration';
import { describeError } from '#core/errors';
import type { Manifest } from '#core/manifest';
import { type Job, retentionOf, selectJobs } from '#core/plan';
import type { TargetCheck } from '#core/ports';
import type { Outcome } from './outcome';

export interface VerifyOptions {
  /** Jobs to act on (default: every job of the plan). */
  jobs?: readonly string[];
  deep?: boolean;
  /** Deep-verify this backup instead of the newest. */
  backupId?: string;
  /** Print the Nagios plugin format instead of the table (see {@link nagiosText}). */
  nagios?: boolean;
  /** Also report, per copy of the plan, the backups it should hold and does not (`copy-missing`). */
  copies?: boolean;
}

/** A deep read of one backup. */
export interface DeepRead {
  backupId: string;
  storedBytes: number;
  sourceBytes: number;
  seconds: number;
  /** The source's checks of the content (drivers with `inspect`: postgres lists its TOC's tables). */
  checks?: TargetCheck[];
}

/** Verifies each job; the exit code is the worst finding's (0 none, 1 warning, 2 critical). */
export async function verifyCommand(runtime: Runtime, options: VerifyOptions): Promise<Outcome> {
  const jobs = selectJobs(runtime.plan, options.jobs);
  const findings: Finding[] = [];
  const reports: (JobSummary & { deep?: DeepRead })[] = [];
  for (const job of jobs) {
    const { findings: found, summary, catalog } = await verifyJob(runtime, job);
    const report: JobSummary & { deep?: DeepRead } = summary;
    findings.push(...found);
    if (options.deep) {
      const backupId = options.backupId ?? summary.newestBackupId;
      if (backupId) {
        try {
          const manifest = await readManifest(runtime.vault, job.name, backupId);
          if (manifest.kind !== job.source.kind) {
            findings.push({
              severity: 'critical',
              job: job.name,
              check: 'deep-verify',
              backupId,
              message: `backup ${backupId} is a ${manifest.kind} backup but job '${job.name}' is ${job.source.kind}: it cannot be restored by this job`,
            });
          } else {
            report.deep = await readThrough(runtime, job, manifest);
            for (const check of report.deep.checks ?? [])
              findings.push(...check.findings.map((f) => ({ ...f, job: job.name, backupId })));
          }
        } catch (error) {
          findings.push({
            severity: 'critical',
            job: job.name,
            check: 'deep-verify',
            backupId,
            message: `backup ${backupId} does not read back: ${describeError(error)}`,
          });
        }
      }
    }
    reports.push(report);
    if (options.copies) findings.push(...(await checkCopies(runtime, job, completeManifests(catalog))));
  }
  // The storage watch: a file vault's file system against the plan's storage thresholds.
  findings.push(...(await storageFindings(runtime, jobs)));
  findings.sort((a, b) => SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity));
  const lines = [
    formatTable([
      ['JOB', 'NEWEST', 'AGE', 'RETAINED', 'INCOMPLETE', 'DEEP READ'],
      ...reports.map((r) => [
        r.job,
        r.newestBackupId ?? '-',
        r.backupAgeSeconds === undefined ? '-' : formatDuration(r.backupAgeSeconds),
        String(r.retained),
        String(r.incomplete),
        r.deep ? `ok, ${formatBytes(r.deep.sourceBytes)} in ${r.deep.seconds.toFixed(1)}s` : '-',
      ]),
    ]),
    ...findings.map((f) => `${f.severity.toUpperCase()}  ${f.job}: ${f.message}`),
  ];
  if (findings.length === 0) lines.push('all checks passed');
  return {
    exitCode: exitCodeOf(findings),
    json: { jobs: reports, findings } satisfies AgentVerifyResult,
    text: options.nagios ? nagiosText(reports, findings, jobs) : lines.join('\n'),
  };
}

/** Nagios service states by exit code (the plugin API): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. */
export const NAGIOS_STATES = ['OK', 'WARNING', 'CRITICAL', 'UNKNOWN'] as const;

/**
 * The Nagios plugin output of a verify run: the first line is `STATE: summary | perfdata`, with per
 * job the age of the newest complete backup in seconds (warning and critical thresholds from the plan)
 * and its stored size in bytes; then one line per finding (the plugin's long output).
 * @example 'OK: 2 jobs verified, newest backups 2h 5m to 20h 1m old | \'app-db age\'=7500s;90000;108000;0 …'
 */
export function nagiosText(
  reports: readonly JobSummary[],
  findings: readonly Finding[],
  jobs: readonly Job[],
): string {
  const state = NAGIOS_STATES[exitCodeOf(findings)];
  const ages = reports.flatMap((r) => (r.backupAgeSeconds === undefined ? [] : [r.backupAgeSeconds]));
  const count = (severity: Finding['severity']) => findings.filter((f) => f.severity === severity).length;
  const worst = findings[0];
  const summary = worst
    ? `${[`${count('critical')} critical`, `${count('warning')} warning`].join(', ')}; ${worst.job}: ${worst.message}`
    : `${reports.length} job${reports.length === 1 ? '' : 's'} verified${
        ages.length === 0
          ? ''
          : ages.length === 1
            ? `, newest backup ${formatDuration(ages[0] as number)} old`
            : `, newest backups ${formatDuration(Math.min(...ages))} to ${formatDuration(Math.max(...ages))} old`
      }`;
  const label = (text: string) => `'${text.replace(/'/g, '')}'`;
  const perfdata = reports.flatMap((r) => {
    const job = jobs.find((j) => j.name === r.job);
    const age =
      r.backupAgeSeconds === undefined
        ? []
        : [
            `${label(`${r.job} age`)}=${Math.round(r.backupAgeSeconds)}s;${job?.limits.warnAge ?? ''};${job?.limits.criticalAge ?? ''};0`,
          ];
    const size =
      r.lastBackupBytes === undefined ? [] : [`${label(`${r.job} size`)}=${r.lastBackupBytes}B;;;0`];
    return [...age, ...size];
  });
  const first = `${state}: ${summary.replace(/\|/g, '/')}${perfdata.length ? ` | ${perfdata.join(' ')}` : ''}`;
  return [
    first,
    ...findings.map((f) => `${f.severity.toUpperCase()} ${f.job}: ${f.message.replace(/\|/g, '/')}`),
  ].join('\n');
}

async function verifyJob(
  runtime: Runtime,
  job: Job,
): Promise<ReturnType<typeof checkJob> & { catalog: JobCatalog }> {
  const [catalog, runClaims, wal] = await Promise.all([
    readCatalog(runtime.vault, job.name),
    listRunClaims(runtime.vault, job.name),
    listWal(runtime.vault, job.name),
  ]);
  const checked = checkJob({
    job,
    retention: retentionOf(runtime.plan, job),
    timeZone: runtime.plan.timezone,
    catalog,
    recentCount: runtime.plan.verify.recentCount,
    now: runtime.clock.now(),
    runClaims,
    walNames: wal.length ? wal.map((w) => w.name) : undefined,
    walNewestArchivedAt: wal.length
      ? new Date(Math.max(...wal.map((w) => w.object.lastModified.getTime())))
      : undefined,
  });
  return { ...checked, catalog };
}

/**
 * Per copy of the plan, the job's backups that the copy should hold by its tiers and retention
 * (agent/copy `backupsForCopy`) and does not hold complete: one `copy-missing` warning per copy naming
 * them, or a critical `copy-unreachable` when the copy cannot be listed.
 */
async function checkCopies(runtime: Runtime, job: Job, manifests: readonly Manifest[]): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const copy of runtime.plan.copies) {
    const { wanted } = backupsForCopy(manifests, copy, runtime.plan, job, runtime.clock.now());
    let present: Set<string>;
    try {
      const target = await openCopyRuntime(runtime, copy.name);
      present = new Set(
        (await listBackups(target.vault, job.name)).filter((b) => b.complete).map((b) => b.backupId),
      );
    } catch (error) {
      findings.push({
        severity: 'critical',
        job: job.name,
        check: 'copy-unreachable',
        message: `copy '${copy.name}' (${copy.vault.url}) cannot be listed: ${describeError(error)}`,
      });
      continue;
    }
    const missing = wanted.filter((m) => !present.has(m.backupId)).map((m) => m.backupId);
    if (missing.length === 0) continue;
    const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? ', …' : '');
    findings.push({
      severity: 'warning',
      job: job.name,
      check: 'copy-missing',
      backupId: missing.at(-1),
      message: `copy '${copy.name}' (${copy.vault.url}) lacks ${missing.length} of ${wanted.length} backup${wanted.length === 1 ? '' : 's'} it should hold: ${shown} (run strongbox copy --to ${copy.name})`,
    });
  }
  return findings;
}

/**
 * Reads a whole backup through decryption and decompression, checking it on the way; a source that can
 * inspect its content (driver `inspect`) reads it and checks it against the manifest's details.
 */
async function readThrough(runtime: Runtime, job: Job, manifest: Manifest): Promise<DeepRead> {
  const started = performance.now();
  const driver = sourceDriver(job.source);
  if (!driver.inspect) {
    const counts = await readThroughBackup(runtime, manifest, runtime.signal);
    return { backupId: manifest.backupId, ...counts, seconds: (performance.now() - started) / 1000 };
  }
  const reader = await openBackup(runtime, manifest, runtime.signal);
  let checks: TargetCheck[];
  try {
    checks = await driver.inspect(
      job.source,
      detailsOf(manifest.source, job.source.kind),
      reader,
      sourceContext(runtime, runtime.signal),
    );
  } catch (error) {
    await reader.finish().catch(() => {});
    throw error;
  }
  const counts = await reader.finish();
  return { backupId: manifest.backupId, ...counts, seconds: (performance.now() - started) / 1000, checks };
}

/** The storage watch's findings for a verify run; a file system that cannot be measured is a warning. */
async function storageFindings(runtime: Runtime, jobs: readonly Job[]): Promise<Finding[]> {
  const job = jobs.map((j) => j.name).join(',');
  try {
    return (await watchVaultStorage(runtime, job)).findings;
  } catch (error) {
    return [
      {
        severity: 'warning',
        job,
        check: 'vault-fill',
        message: `cannot measure the file system of vault ${runtime.plan.vault.url}: ${describeError(error)}`,
      },
    ];
  }
}
