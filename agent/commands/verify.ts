/**
 * `strongbox verify`: for each job, the newest complete backup's age against the job's limits, every
 * object of it present with the recorded size, its size against the recent median, incomplete backups
 * left behind; with `--deep`, a full read of the data — decrypt, authenticate every chunk, decompress,
 * checksum — without restoring it.
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { formatBytes, formatTable } from '#agent/format';
import { settleAll } from '#agent/pipeline/flow';
import { openBackupData } from '#agent/read-backup';
import type { Runtime } from '#agent/runtime';
import { listBackups, readManifest } from '#core/catalog';
import { checkAge, checkObjects, checkSize, exitCodeOf, type Finding, SEVERITY_ORDER } from '#core/checks';
import { formatDuration } from '#core/duration';
import { describeError } from '#core/errors';
import { objectKey } from '#core/layout';
import type { Manifest } from '#core/manifest';
import { findJob, type Job } from '#core/plan';
import type { Outcome } from './outcome';

export interface VerifyOptions {
  job?: string;
  deep?: boolean;
  /** Deep-verify this backup instead of the newest. */
  backupId?: string;
}

interface JobReport {
  job: string;
  newest?: string;
  ageSeconds?: number;
  complete: number;
  incomplete: number;
  deep?: { backupId: string; storedBytes: number; sourceBytes: number; seconds: number };
}

/** Verifies each job; the exit code is the worst finding's. */
export async function verifyCommand(runtime: Runtime, options: VerifyOptions): Promise<Outcome> {
  const jobs = options.job ? [findJob(runtime.plan, options.job)] : runtime.plan.jobs;
  const findings: Finding[] = [];
  const reports: JobReport[] = [];
  for (const job of jobs) {
    const { report, found } = await verifyJob(runtime, job, options);
    reports.push(report);
    findings.push(...found);
  }
  findings.sort((a, b) => SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity));
  const lines = [
    formatTable([
      ['JOB', 'NEWEST', 'AGE', 'COMPLETE', 'INCOMPLETE', 'DEEP'],
      ...reports.map((r) => [
        r.job,
        r.newest ?? '-',
        r.ageSeconds === undefined ? '-' : formatDuration(r.ageSeconds),
        String(r.complete),
        String(r.incomplete),
        r.deep ? `ok ${formatBytes(r.deep.sourceBytes)} in ${r.deep.seconds.toFixed(1)}s` : '-',
      ]),
    ]),
    ...findings.map((f) => `${f.severity.toUpperCase()}  ${f.job}: ${f.message}`),
  ];
  if (findings.length === 0) lines.push('all checks passed');
  return { exitCode: exitCodeOf(findings), json: { jobs: reports, findings }, text: lines.join('\n') };
}

async function verifyJob(
  runtime: Runtime,
  job: Job,
  options: VerifyOptions,
): Promise<{ report: JobReport; found: Finding[] }> {
  const now = runtime.clock.now();
  const backups = await listBackups(runtime.vault, job.name);
  const complete = backups.filter((b) => b.complete);
  const found: Finding[] = [];
  const report: JobReport = {
    job: job.name,
    complete: complete.length,
    incomplete: backups.length - complete.length,
  };

  for (const stale of backups.filter(
    (b) => !b.complete && now.getTime() - b.startedAt.getTime() > job.timeout * 1000,
  )) {
    found.push({
      severity: 'warning',
      job: job.name,
      check: 'incomplete-backup',
      backupId: stale.backupId,
      message: `backup ${stale.backupId} never finished (no manifest); \`strongbox prune\` removes it`,
    });
  }

  const newestListing = complete.at(-1);
  const recent: Manifest[] = [];
  for (const listing of complete.slice(-runtime.plan.verify.recentCount)) {
    recent.push(await readManifest(runtime.vault, job.name, listing.backupId));
  }
  const newest = recent.at(-1);
  found.push(...checkAge(job, newest, now));
  if (newest && newestListing) {
    report.newest = newest.backupId;
    report.ageSeconds = (now.getTime() - Date.parse(newest.finishedAt)) / 1000;
    const stored = new Map(newestListing.objects.map((o) => [o.key, o]));
    found.push(...checkObjects(newest, stored, (name) => objectKey(job.name, newest.backupId, name)));
    found.push(...checkSize(job, newest, recent));
  }

  if (options.deep) {
    const target = options.backupId ? await readManifest(runtime.vault, job.name, options.backupId) : newest;
    if (target) {
      try {
        report.deep = await readThrough(runtime, target);
      } catch (error) {
        found.push({
          severity: 'critical',
          job: job.name,
          check: 'deep-verify',
          backupId: target.backupId,
          message: `backup ${target.backupId} does not read back: ${describeError(error)}`,
        });
      }
    }
  }
  return { report, found };
}

/** Reads a whole backup through decryption and decompression into nothing, checking it on the way. */
async function readThrough(runtime: Runtime, manifest: Manifest): Promise<JobReport['deep']> {
  const started = Date.now();
  const controller = new AbortController();
  const reader = await openBackupData(runtime, manifest, controller.signal);
  const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  const [, counts] = await settleAll(
    [pipeline(reader.stream, sink, { signal: controller.signal }), reader.done] as const,
    controller,
  );
  return { backupId: manifest.backupId, ...counts, seconds: (Date.now() - started) / 1000 };
}
