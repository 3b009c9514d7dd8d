/** `strongbox backup`: back up the given jobs, or every job of the plan, in plan order. */

import { type BackupResult, runBackup } from '#agent/backup';
import { formatBytes, formatRate, formatTable } from '#agent/format';
import type { Runtime } from '#agent/runtime';
import type { AgentBackupOutput, Finding } from '#core/agent-output';
import { listBackups, readManifest } from '#core/catalog';
import { checkSize } from '#core/checks';
import { describeError, PlanError, StrongboxError } from '#core/errors';
import type { Manifest } from '#core/manifest';
import { type Job, selectJobs } from '#core/plan';
import type { Tier } from '#core/tiers';
import { errorJson, type Outcome } from './outcome';

export interface BackupCommandOptions {
  /** Jobs to back up (default: every job of the plan). */
  jobs?: readonly string[];
  backupId?: string;
  tier?: Tier;
}

/**
 * Runs the backup of each selected job in plan order. One job failing does not stop the others: each is
 * attempted, every job's outcome is reported (table and `--json`), and the run then fails naming every
 * job that failed.
 * @throws the job's error when the run covers one job.
 */
export async function backupCommand(runtime: Runtime, options: BackupCommandOptions): Promise<Outcome> {
  const jobs = selectJobs(runtime.plan, options.jobs);
  if (jobs.length > 1 && options.backupId) {
    throw new PlanError(['--backup-id: names one backup, so it needs exactly one --job']);
  }
  const results: BackupResult[] = [];
  const failures: { job: string; error: unknown }[] = [];
  for (const job of jobs) {
    try {
      const result = await runBackup(runtime, job, { backupId: options.backupId, tier: options.tier });
      const findings = await sizeFindings(runtime, job, result.backupId);
      results.push(findings.length ? { ...result, findings } : result);
    } catch (error) {
      if (jobs.length === 1 || runtime.signal.aborted) throw error;
      runtime.log(`backup ${job.name} failed: ${describeError(error)}`);
      failures.push({ job: job.name, error });
    }
  }
  const rows = jobs.map((job) => {
    const r = results.find((result) => result.job === job.name);
    if (!r) return [job.name, '-', '-', '-', '-', '-', '-', 'FAILED'];
    return [
      r.job,
      r.backupId,
      r.tier,
      formatBytes(r.sourceBytes),
      formatBytes(r.storedBytes),
      `${r.durationSeconds.toFixed(1)}s`,
      formatRate(r.sourceBytes, r.durationSeconds),
      r.warnings?.length || r.findings?.length ? 'ok, warnings' : 'ok',
    ];
  });
  const warned = results.filter((r) => r.warnings?.length || r.findings?.length);
  const text = [
    formatTable([['JOB', 'BACKUP', 'TIER', 'SOURCE', 'STORED', 'TIME', 'RATE', 'STATUS'], ...rows]),
    ...warned.flatMap((r) => [
      ...(r.warnings ?? []).map((warning) => `warning: ${r.job} ${r.backupId}: ${warning}`),
      ...(r.findings ?? []).map((f) => `warning: ${r.job} ${r.backupId}: ${f.message}`),
    ]),
    ...failures.map((f) => `FAILED  ${f.job}: ${describeError(f.error)}`),
  ].join('\n');
  const json: AgentBackupOutput =
    jobs.length === 1 && results[0]
      ? results[0]
      : { backups: results, failed: failures.map((f) => ({ job: f.job, error: errorJson(f.error) })) };
  const failure = failures.length
    ? new StrongboxError(
        `${failures.length} of ${jobs.length} backups failed (${failures.map((f) => `${f.job}: ${describeError(f.error)}`).join('; ')})`,
      )
    : undefined;
  return { exitCode: failure ? 2 : warned.length > 0 ? 1 : 0, json, text, failure };
}

/**
 * The size check of a backup just committed (core/checks `checkSize`) against the job's backups before
 * it — at most `verify.recentCount` of them, safety backups left out — as warnings: the backup is
 * stored and restores, but a dump of an empty database or a path that was not mounted should not wait
 * for the next verify to be noticed. Reads only manifests (the newest few).
 */
async function sizeFindings(runtime: Runtime, job: Job, backupId: string): Promise<Finding[]> {
  const complete = (await listBackups(runtime.vault, job.name)).filter((b) => b.complete);
  const newest = await readManifest(runtime.vault, job.name, backupId);
  const recent: Manifest[] = [];
  for (const listing of complete.filter((b) => b.backupId < backupId).reverse()) {
    if (recent.length >= runtime.plan.verify.recentCount) break;
    const manifest = await readManifest(runtime.vault, job.name, listing.backupId);
    if (manifest.purpose !== 'safety') recent.unshift(manifest);
  }
  return checkSize(job, newest, recent).map((f) => ({ ...f, severity: 'warning' }));
}
