/**
 * `strongbox drill`: the proof that a backup restores. Restores the newest backup into a scratch target,
 * runs the checks (the source's own — row counts, file counts — against the manifest, and the plan's
 * drill SQL where the source runs SQL), measures the time the restore took — the real recovery time —
 * against the job's RTO, and removes the scratch target whatever happened.
 */

import { attribute, runRestore, scratchTargetOf, sourceContext } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import type { AgentDrillResult, AgentDrillRun } from '#core/agent-output';
import type { Finding } from '#core/checks';
import { exitCodeOf } from '#core/checks';
import { formatDuration } from '#core/duration';
import { describeError, PlanError } from '#core/errors';
import { type Job, selectJobs } from '#core/plan';
import type { RecoveryPoint, TargetCheck } from '#core/ports';
import type { Outcome } from './outcome';
import { parseRestoreOptions } from './restore';

export interface DrillOptions {
  /** Jobs to drill (default: every job of the plan, in plan order). */
  jobs?: readonly string[];
  /** `--options` JSON: restore options (a target), with one job only. */
  options?: string;
}

/** What a drill found (the `--json` output). */
export interface DrillResult {
  job: string;
  backupId?: string;
  target: string;
  /** Seconds the restore took: the measured recovery time. */
  durationSeconds?: number;
  rtoSeconds?: number;
  /** Point-in-time jobs: where the recovery got to (the base backup plus the archive to its end). */
  recoveryPoint?: RecoveryPoint;
  /** Every check that ran on the restored target, passed or not. */
  checks: TargetCheck[];
  findings: Finding[];
}

/**
 * Drills each selected job in plan order; every drill is reported, and the exit status is the worst
 * finding of any of them. A drill that fails to restore is a finding, not an error.
 */
export async function drillCommand(runtime: Runtime, options: DrillOptions): Promise<Outcome> {
  const jobs = selectJobs(runtime.plan, options.jobs);
  const restoreOptions = parseRestoreOptions({ options: options.options });
  if (jobs.length > 1 && (restoreOptions.target || restoreOptions.backupId)) {
    throw new PlanError(['--options: a target names one scratch place, so it needs exactly one --job']);
  }
  const results: DrillResult[] = [];
  const texts: string[] = [];
  for (const job of jobs) {
    const { result, text } = await drillJob(runtime, job, restoreOptions);
    results.push(result);
    texts.push(text);
  }
  const findings = results.flatMap((r) => r.findings);
  const failed = results.filter((r) => r.findings.length > 0).map((r) => r.job);
  if (results.length > 1) {
    texts.push(
      failed.length === 0
        ? `${results.length} drills passed`
        : `${failed.length} of ${results.length} drills failed: ${failed.join(', ')}`,
    );
  }
  return {
    exitCode: exitCodeOf(findings),
    json:
      results.length === 1
        ? (results[0] satisfies AgentDrillResult | undefined)
        : ({ drills: results } satisfies AgentDrillRun),
    text: texts.join('\n\n'),
  };
}

export async function drillJob(
  runtime: Runtime,
  job: Job,
  options: { target?: string; backupId?: string },
): Promise<{ result: DrillResult; text: string }> {
  const driver = sourceDriver(job.source);
  const target = options.target ?? scratchTargetOf(runtime, job, 'drill');
  const result: DrillResult = { job: job.name, target, rtoSeconds: job.drill?.rto, checks: [], findings: [] };
  const ctx = sourceContext(runtime);
  let restored = false;
  try {
    // A point-in-time job's drill is a whole recovery: the base backup, the archive to its end, promotion.
    const recovers = driver.spec.capabilities.pointInTime;
    const restore = await runRestore(runtime, job, {
      target,
      backupId: options.backupId,
      ...(recovers ? { recoverTo: { type: 'latest' as const }, start: true } : {}),
    });
    restored = true;
    result.backupId = restore.backupId;
    result.durationSeconds = restore.durationSeconds;
    result.checks.push(...restore.checks);
    if (recovers && driver.recoveryPoint)
      result.recoveryPoint = await driver.recoveryPoint(job.source, target, ctx);
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
    ...(result.recoveryPoint ? [describePoint(result.recoveryPoint)] : []),
    ...result.checks.map((c) => `${c.passed ? 'ok  ' : 'FAIL'}  ${c.check}: ${c.detail}`),
  ];
  lines.push(
    result.findings.length === 0
      ? `drill ${job.name} passed (${result.checks.length} check${result.checks.length === 1 ? '' : 's'})`
      : `drill ${job.name} failed: ${result.findings.length} finding(s)`,
  );
  return { result, text: lines.join('\n') };
}

/** `recovered to 2026-12-02T01:47:28Z (last commit replayed), LSN 0/3000148, timeline 2`. */
function describePoint(point: RecoveryPoint): string {
  const parts = [
    point.time ? `${point.time} (last commit replayed)` : 'the end of the archive (no commit replayed)',
    ...(point.lsn ? [`LSN ${point.lsn}`] : []),
    ...(point.timeline ? [`timeline ${point.timeline}`] : []),
  ];
  return `recovered to ${parts.join(', ')}`;
}
