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

/**
 * The report of copy runs: one row per backup, a line per point-in-time job's WAL, then the failures;
 * exit 2 when any failed.
 */
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
  const walFailures = results.flatMap((r) =>
    (r.wal?.failures ?? []).map((f) => ({ copy: r.copy, job: r.job, ...f })),
  );
  const copied = results.flatMap((r) => r.backups).filter((b) => b.action === 'copied').length;
  const text = [
    rows.length
      ? formatTable([['COPY', 'JOB', 'BACKUP', 'TIER', 'ACTION', 'STORED', 'TIME'], ...rows])
      : 'no backups to copy',
    `copied ${copied} backup${copied === 1 ? '' : 's'}`,
    ...results.flatMap((r) =>
      r.wal
        ? [
            `WAL ${r.job} → ${r.copy}: copied ${r.wal.copied} file${r.wal.copied === 1 ? '' : 's'} (${formatBytes(r.wal.storedBytes)}), ${r.wal.present} already there`,
          ]
        : [],
    ),
    ...failures.map((f) => `FAILED  ${f.copy} ${f.job} ${f.backupId}: ${describeError(f.error)}`),
    ...walFailures.map((f) => `FAILED  ${f.copy} ${f.job} WAL ${f.name}: ${describeError(f.error)}`),
  ].join('\n');
  const json = {
    copies: results.map((r) => ({
      copy: r.copy,
      job: r.job,
      backups: r.backups,
      skipped: r.skipped,
      failed: r.failures.map((f) => ({ backupId: f.backupId, error: errorJson(f.error) })),
      ...(r.wal
        ? {
            wal: {
              copied: r.wal.copied,
              present: r.wal.present,
              storedBytes: r.wal.storedBytes,
              failed: r.wal.failures.map((f) => ({ name: f.name, error: errorJson(f.error) })),
            },
          }
        : {}),
    })),
  };
  const failed = [
    ...failures.map((f) => `${f.copy} ${f.job}/${f.backupId}: ${describeError(f.error)}`),
    ...walFailures.map((f) => `${f.copy} ${f.job} WAL ${f.name}: ${describeError(f.error)}`),
  ];
  const counted = (n: number, what: string) => (n ? [`${n} ${what}${n === 1 ? '' : 's'}`] : []);
  const failure = failed.length
    ? new StrongboxError(
        `${[...counted(failures.length, 'backup'), ...counted(walFailures.length, 'WAL file')].join(' and ')} not copied (${failed.join('; ')})`,
      )
    : undefined;
  return { exitCode: failure ? 2 : 0, json, text, failure };
}
