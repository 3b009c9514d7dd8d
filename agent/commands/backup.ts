/** `strongbox backup`: back up one job, or every job of the plan in order. */

import { type BackupResult, runBackup } from '#agent/backup';
import { formatBytes, formatTable } from '#agent/format';
import type { Runtime } from '#agent/runtime';
import type { AgentBackupOutput } from '#core/agent-output';
import { describeError, PlanError, StrongboxError } from '#core/errors';
import { findJob } from '#core/plan';
import type { Tier } from '#core/tiers';
import type { Outcome } from './outcome';

export interface BackupCommandOptions {
  job?: string;
  backupId?: string;
  tier?: Tier;
}

/**
 * Runs the backup of one job, or of every job in plan order. One job failing does not stop the others:
 * each is attempted, and the run then fails naming every job that failed.
 * @throws the job's error (one job), or a StrongboxError naming each failed job (every job).
 */
export async function backupCommand(runtime: Runtime, options: BackupCommandOptions): Promise<Outcome> {
  const jobs = options.job ? [findJob(runtime.plan, options.job)] : runtime.plan.jobs;
  if (jobs.length > 1 && options.backupId) {
    throw new PlanError(['--backup-id: names one backup, so it needs --job']);
  }
  const results: BackupResult[] = [];
  const failures: string[] = [];
  for (const job of jobs) {
    try {
      results.push(await runBackup(runtime, job, { backupId: options.backupId, tier: options.tier }));
    } catch (error) {
      if (jobs.length === 1 || runtime.signal.aborted) throw error;
      runtime.log(`backup ${job.name} failed: ${describeError(error)}`);
      failures.push(`${job.name}: ${describeError(error)}`);
    }
  }
  if (failures.length) {
    throw new StrongboxError(`${failures.length} of ${jobs.length} backups failed (${failures.join('; ')})`);
  }
  const rows = results.map((r) => [
    r.job,
    r.backupId,
    r.tier,
    formatBytes(r.sourceBytes),
    formatBytes(r.storedBytes),
    `${r.durationSeconds.toFixed(1)}s`,
    `${formatBytes(r.sourceBytes / Math.max(r.durationSeconds, 0.001))}/s`,
  ]);
  const warned = results.filter((r) => r.warnings?.length);
  const warningLines = warned.flatMap((r) =>
    (r.warnings ?? []).map((warning) => `warning: ${r.job} ${r.backupId}: ${warning}`),
  );
  return {
    exitCode: warned.length > 0 ? 1 : 0,
    json: (results.length === 1 ? results[0] : { backups: results }) satisfies AgentBackupOutput | undefined,
    text: [
      formatTable([['JOB', 'BACKUP', 'TIER', 'SOURCE', 'STORED', 'TIME', 'RATE'], ...rows]),
      ...warningLines,
    ].join('\n'),
  };
}
