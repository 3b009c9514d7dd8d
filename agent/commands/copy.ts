/**
 * `strongbox copy`: transfers the primary vault's complete backups to the plan's copies (agent/copy),
 * each job to each copy, and reports every backup copied, already there, skipped or failed.
 */
import { type CopyJobResult, copyJob, openCopyRuntime, selectCopies } from '#agent/copy';
import { formatBytes, formatTable } from '#agent/format';
import type { Runtime } from '#agent/runtime';
import { describeError, PlanError, StrongboxError } from '#core/errors';
import { selectJobs } from '#core/plan';
import { errorJson, type Outcome } from './outcome';

export interface CopyCommandOptions {
  /** Jobs to copy (default: every job of the plan). */
  jobs?: readonly string[];
  /** The copy to fill (default: every copy of the plan). */
  to?: string;
  /** Copy this backup only (with one job), also a safety backup or one the copy's filter leaves out. */
  backupId?: string;
}

/**
 * Copies each selected job to each selected copy. A backup that fails does not stop the others; the
 * run then fails (exit 2) naming each one.
 * @example await copyCommand(runtime, { to: 'offsite' })
 */
export async function copyCommand(runtime: Runtime, options: CopyCommandOptions): Promise<Outcome> {
  const jobs = selectJobs(runtime.plan, options.jobs);
  const copies = selectCopies(runtime.plan, options.to);
  if (options.backupId && jobs.length !== 1) {
    throw new PlanError(['--backup-id: names one backup, so it needs exactly one --job']);
  }
  const results: CopyJobResult[] = [];
  for (const copy of copies) {
    const target = await openCopyRuntime(runtime, copy.name);
    for (const job of jobs) {
      results.push(await copyJob(runtime, target, copy, job, { backupId: options.backupId }));
    }
  }
  return copyOutcome(results);
}

/** The report of copy runs: one row per backup, then the failures; exit 2 when any failed. */
export function copyOutcome(results: readonly CopyJobResult[]): Outcome {
  const rows = results.flatMap((r) => [
    ...r.backups.map((b) => [
      b.copy,
      b.job,
      b.backupId,
      b.tier,
      b.action,
      formatBytes(b.storedBytes),
      b.action === 'copied' ? `${b.durationSeconds.toFixed(1)}s` : '-',
    ]),
    ...r.failures.map((f) => [f.copy, f.job, f.backupId, '-', 'FAILED', '-', '-']),
  ]);
  const failures = results.flatMap((r) => r.failures);
  const copied = results.flatMap((r) => r.backups).filter((b) => b.action === 'copied').length;
  const text = [
    rows.length
      ? formatTable([['COPY', 'JOB', 'BACKUP', 'TIER', 'ACTION', 'STORED', 'TIME'], ...rows])
      : 'no backups to copy',
    `copied ${copied} backup${copied === 1 ? '' : 's'}`,
    ...failures.map((f) => `FAILED  ${f.copy} ${f.job} ${f.backupId}: ${describeError(f.error)}`),
  ].join('\n');
  const json = {
    copies: results.map((r) => ({
      copy: r.copy,
      job: r.job,
      backups: r.backups,
      skipped: r.skipped,
      failed: r.failures.map((f) => ({ backupId: f.backupId, error: errorJson(f.error) })),
    })),
  };
  const failure = failures.length
    ? new StrongboxError(
        `${failures.length} backup${failures.length === 1 ? '' : 's'} not copied (${failures.map((f) => `${f.copy} ${f.job}/${f.backupId}: ${describeError(f.error)}`).join('; ')})`,
      )
    : undefined;
  return { exitCode: failure ? 2 : 0, json, text, failure };
}
