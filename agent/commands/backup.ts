/** `strongbox backup`: back up the given jobs, or every job of the plan, in plan order. */

import { type BackupResult, runBackup } from '#agent/backup';
import { type CopyJobResult, copyJob, openCopyRuntime, selectCopies } from '#agent/copy';
import { formatBytes, formatRate, formatTable } from '#agent/format';
import { lockOptionsOf, withJobLocks } from '#agent/job-lock';
import type { Runtime } from '#agent/runtime';
import type { AgentBackupOutput, Finding } from '#core/agent-output';
import { listBackups, readManifest } from '#core/catalog';
import { checkSize } from '#core/checks';
import { describeError, PlanError, StrongboxError } from '#core/errors';
import type { Manifest } from '#core/manifest';
import { type CopyConfig, type Job, selectJobs } from '#core/plan';
import type { Tier } from '#core/tiers';
import { copyOutcome } from './copy';
import { errorJson, type Outcome } from './outcome';

export interface BackupCommandOptions {
  /** Jobs to back up (default: every job of the plan). */
  jobs?: readonly string[];
  backupId?: string;
  tier?: Tier;
  /** Then copy each job that backed up to every copy of the plan (agent/copy `copyJob`). */
  copy?: boolean;
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
  // Before any backup: a --copy without copies is a plan mistake, not something to find out after.
  const copies = options.copy ? selectCopies(runtime.plan) : [];
  const results: BackupResult[] = [];
  const failures: { job: string; error: unknown }[] = [];
  for (const job of jobs) {
    try {
      // One run of a job at a time: a backup still running when the next starts refuses the next.
      const locks = { ...lockOptionsOf(runtime, 'backup'), jobs: [job.name] };
      const result = await withJobLocks(locks, () =>
        runBackup(runtime, job, { backupId: options.backupId, tier: options.tier }),
      );
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
  const outcome: Outcome = { exitCode: failure ? 2 : warned.length > 0 ? 1 : 0, json, text, failure };
  return copies.length
    ? withCopies(
        runtime,
        outcome,
        copies,
        jobs.filter((j) => results.some((r) => r.job === j.name)),
      )
    : outcome;
}

/** `backup --copy`: the backup's outcome, then each backed-up job copied to each copy. */
async function withCopies(
  runtime: Runtime,
  outcome: Outcome,
  copies: readonly CopyConfig[],
  jobs: readonly Job[],
): Promise<Outcome> {
  const results: CopyJobResult[] = [];
  for (const copy of copies) {
    const target = await openCopyRuntime(runtime, copy.name);
    for (const job of jobs) results.push(await copyJob(runtime, target, copy, job));
  }
  const copied = copyOutcome(results);
  const failures = [outcome.failure, copied.failure].filter((f) => f !== undefined);
  return {
    exitCode: failures.length ? 2 : (Math.max(outcome.exitCode, copied.exitCode) as Outcome['exitCode']),
    json: { ...(outcome.json as object), copies: (copied.json as { copies: unknown }).copies },
    text: `${outcome.text}\n${copied.text}`,
    failure:
      failures.length > 1
        ? new StrongboxError(failures.map((f) => describeError(f)).join('; '))
        : failures[0],
  };
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
  // The listing's order, not the ids': two backups started in one second have ids whose random parts
  // sort either way (core/catalog `byStart` orders them by when their manifests were stored).
  const at = complete.findIndex((b) => b.backupId === backupId);
  for (const listing of complete.slice(0, at === -1 ? complete.length : at).reverse()) {
    if (recent.length >= runtime.plan.verify.recentCount) break;
    const manifest = await readManifest(runtime.vault, job.name, listing.backupId);
    if (manifest.purpose !== 'safety') recent.unshift(manifest);
  }
  return checkSize(job, newest, recent).map((f) => ({ ...f, severity: 'warning' }));
}
