/** `strongbox backup`: back up one job, or every job of the plan in order. */

import { type BackupResult, runBackup } from '#agent/backup';
import { formatBytes, formatTable } from '#agent/format';
import type { Runtime } from '#agent/runtime';
import { findJob } from '#core/plan';
import type { Tier } from '#core/tiers';
import type { Outcome } from './outcome';

export interface BackupCommandOptions {
  job?: string;
  backupId?: string;
  tier?: Tier;
}

/** Runs the backup(s); the first failure stops the run and is thrown. */
export async function backupCommand(runtime: Runtime, options: BackupCommandOptions): Promise<Outcome> {
  const jobs = options.job ? [findJob(runtime.plan, options.job)] : runtime.plan.jobs;
  const results: BackupResult[] = [];
  for (const job of jobs) {
    results.push(await runBackup(runtime, job, { backupId: options.backupId, tier: options.tier }));
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
  return {
    exitCode: 0,
    json: results.length === 1 ? results[0] : { backups: results },
    text: formatTable([['JOB', 'BACKUP', 'TIER', 'SOURCE', 'STORED', 'TIME', 'RATE'], ...rows]),
  };
}
