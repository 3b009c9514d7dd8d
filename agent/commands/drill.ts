/**
 * `strongbox drill`: the proof that a backup restores. Restores the newest backup into a scratch target,
 * runs the checks (the source's own — row counts, file counts — against the manifest, and the plan's
 * drill SQL where the source runs SQL), measures the time the restore took — the real recovery time —
 * against the job's RTO, and removes the scratch target whatever happened.
 */

import { attribute, runRestore, scratchTargetOf, sourceContext } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import type { AgentDrillResult } from '#core/agent-output';
import type { Finding } from '#core/checks';
import { exitCodeOf } from '#core/checks';
import { formatDuration } from '#core/duration';
import { describeError } from '#core/errors';
import { findJob } from '#core/plan';
import type { TargetCheck } from '#core/ports';
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
  /** Every check that ran on the restored target, passed or not. */
  checks: TargetCheck[];
  findings: Finding[];
}

export async function drillCommand(runtime: Runtime, options: ParsedRestoreOptions): Promise<Outcome> {
  const job = findJob(runtime.plan, options.job);
  const driver = sourceDriver(job.source);
  const target = options.target ?? scratchTargetOf(runtime, job, 'drill');
  const result: DrillResult = { job: job.name, target, rtoSeconds: job.drill?.rto, checks: [], findings: [] };
  const ctx = sourceContext(runtime);
  let restored = false;
  try {
    const restore = await runRestore(runtime, job, { target, backupId: options.backupId });
    restored = true;
    result.backupId = restore.backupId;
    result.durationSeconds = restore.durationSeconds;
    result.checks.push(...restore.checks);
    const sqlChecks = job.drill?.checks ?? [];
    if (sqlChecks.length > 0 && driver.sqlChecks) {
      result.checks.push(...attribute(await driver.sqlChecks(job.source, target, sqlChecks, ctx), restore));
    }
    if (job.drill?.rto !== undefined) {
      const over = restore.durationSeconds > job.drill.rto;
      const detail = `restore took ${formatDuration(restore.durationSeconds)}, ${over ? 'over' : 'within'} the recovery time objective of ${formatDuration(job.drill.rto)}`;
      result.checks.push({
        check: 'rto',
        passed: !over,
        detail,
        findings: over
          ? [
              {
                severity: 'critical',
                job: job.name,
                check: 'rto',
                backupId: restore.backupId,
                message: detail,
              },
            ]
          : [],
      });
    }
  } catch (error) {
    result.checks.push({
      check: 'restore',
      passed: false,
      detail: `restore failed: ${describeError(error)}`,
      findings: [
        {
          severity: 'critical',
          job: job.name,
          check: 'drill-restore',
          message: `restore failed: ${describeError(error)}`,
        },
      ],
    });
  } finally {
    if (restored) await driver.discard(job.source, target, ctx);
  }
  result.findings = result.checks.flatMap((c) => c.findings);
  const lines = [
    `drill ${job.name} ${result.backupId ?? '(no backup restored)'}: ${
      result.durationSeconds === undefined
        ? 'failed'
        : `restored in ${formatDuration(result.durationSeconds)}`
    }${result.rtoSeconds === undefined ? '' : ` (RTO ${formatDuration(result.rtoSeconds)})`}; scratch target removed`,
    ...result.checks.map((c) => `${c.passed ? 'ok  ' : 'FAIL'}  ${c.check}: ${c.detail}`),
  ];
  lines.push(
    result.findings.length === 0 ? 'drill passed' : `drill failed: ${result.findings.length} finding(s)`,
  );
  return {
    exitCode: exitCodeOf(result.findings),
    json: result satisfies AgentDrillResult,
    text: lines.join('\n'),
  };
}
