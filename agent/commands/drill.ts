/**
 * `strongbox drill`: the proof that a backup restores. Restores the newest backup into a scratch target,
 * runs the checks (row counts against the manifest, the plan's drill SQL), measures the time the restore
 * took — the real recovery time — against the job's RTO, and drops the scratch target whatever happened.
 */

import { runRestore, scratchTargetOf } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import { runSqlChecks } from '#agent/sources/postgres';
import type { AgentDrillResult } from '#core/agent-output';
import type { Finding } from '#core/checks';
import { exitCodeOf } from '#core/checks';
import { formatDuration } from '#core/duration';
import { describeError } from '#core/errors';
import { findJob } from '#core/plan';
import type { Outcome } from './outcome';
import type { ParsedRestoreOptions } from './restore';

/** What a drill found (the `--json` output). */
export interface DrillResult {
  job: string;
  backupId?: string;
  target: string;
  /** Seconds the restore took: the measured recovery time. */
  durationSeconds?: number;
  rtoSeconds?: number;
  findings: Finding[];
}

export async function drillCommand(runtime: Runtime, options: ParsedRestoreOptions): Promise<Outcome> {
  const job = findJob(runtime.plan, options.job);
  const target = options.target ?? scratchTargetOf(runtime, job, 'drill');
  const result: DrillResult = { job: job.name, target, rtoSeconds: job.drill?.rto, findings: [] };
  const ctx = { env: runtime.env };
  let restored = false;
  try {
    const restore = await runRestore(runtime, job, { target, backupId: options.backupId });
    restored = true;
    result.backupId = restore.backupId;
    result.durationSeconds = restore.durationSeconds;
    result.findings.push(...restore.findings);
    if (job.source.kind === 'postgres' && job.drill?.checks.length) {
      result.findings.push(
        ...(await runSqlChecks(job.source, target, job.drill.checks, ctx)).map((f) => ({
          ...f,
          job: job.name,
        })),
      );
    }
    if (job.drill?.rto !== undefined && restore.durationSeconds > job.drill.rto) {
      result.findings.push({
        severity: 'critical',
        job: job.name,
        check: 'rto',
        backupId: restore.backupId,
        message: `restore took ${formatDuration(restore.durationSeconds)}, over the recovery time objective of ${formatDuration(job.drill.rto)}`,
      });
    }
  } catch (error) {
    result.findings.push({
      severity: 'critical',
      job: job.name,
      check: 'drill-restore',
      message: `restore failed: ${describeError(error)}`,
    });
  } finally {
    if (restored) await sourceDriver(job.source).discard(job.source, target, ctx);
  }
  const lines = [
    `drill ${job.name} ${result.backupId ?? '(no backup restored)'}: ${
      result.durationSeconds === undefined
        ? 'failed'
        : `restored in ${formatDuration(result.durationSeconds)}`
    }${result.rtoSeconds === undefined ? '' : ` (RTO ${formatDuration(result.rtoSeconds)})`}; scratch target removed`,
    ...result.findings.map((f) => `${f.severity.toUpperCase()}  ${f.message}`),
  ];
  if (result.findings.length === 0) lines.push('drill passed');
  return {
    exitCode: exitCodeOf(result.findings),
    json: result satisfies AgentDrillResult,
    text: lines.join('\n'),
  };
}
