/**
 * `strongbox restore --all --host <name>` and `strongbox drill --all --host <name>`: CLI glue over
 * agent/host-recovery. Prints one row per job in recovery order (status, time, backup, target), what
 * failed, and the total — the host's measured recovery time.
 *
 * A restore puts each job back in its original place (driver `originalTarget`: postgres its database,
 * redis the plan's server, files the original paths, influxdb the original databases, command its
 * restore command), the way a fresh host needs it. Before any step runs, every job's original target is
 * looked at: one that holds data already (or a job that has none) refuses the whole run, each named —
 * unless `--replace`, for kinds with the `replace` capability, which then restore over the live data
 * (safety backup first). A drill keeps scratch targets.
 */
import { formatTable } from '#agent/format';
import { type RecoveryStep, recoverHost } from '#agent/host-recovery';
import { type RestoreRequest, runRestore, sourceContext } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { detailsOf, sourceDriver } from '#agent/sources/index';
import type { AgentHostRecovery } from '#core/agent-output';
import { findBackup } from '#core/catalog';
import { exitCodeOf } from '#core/checks';
import { describeError, RestoreError } from '#core/errors';
import { type Job, recoveryOrderOf } from '#core/plan';
import type { OriginalTarget } from '#core/ports';
import { drillJob } from './drill';
import type { Outcome } from './outcome';

/** Options of `restore --all` / `drill --all`. */
export interface RecoverHostOptions {
  host: string;
  keepGoing?: boolean;
  /** restore: replace what the original targets of kinds with the `replace` capability hold. */
  replace?: boolean;
}

/** One job's plan for a whole-host restore: its backup, and the restore that puts it back. */
interface PlannedStep {
  backupId: string;
  request: RestoreRequest;
}

/**
 * Looks at every job's original target before anything is restored.
 * @throws RestoreError naming every job whose target holds data (and cannot be replaced) or is unknown.
 */
async function planOriginalTargets(
  runtime: Runtime,
  jobs: readonly Job[],
  replace: boolean,
): Promise<Map<string, PlannedStep>> {
  const planned = new Map<string, PlannedStep>();
  const refused: string[] = [];
  const ctx = sourceContext(runtime, runtime.signal);
  for (const job of jobs) {
    const driver = sourceDriver(job.source);
    let original: OriginalTarget;
    let backupId: string;
    try {
      const manifest = await findBackup(runtime.vault, job.name);
      backupId = manifest.backupId;
      original = await driver.originalTarget(
        job.source as never,
        detailsOf(manifest.source, job.source.kind) as never,
        ctx,
      );
    } catch (error) {
      refused.push(`${job.name}: ${describeError(error)}`);
      continue;
    }
    const replaces = replace && driver.spec.capabilities.replace;
    if (original.occupied.length > 0 && !replaces) {
      const hint = driver.spec.capabilities.replace ? ' (--replace restores over it)' : '';
      refused.push(`${job.name}: ${original.occupied.join(', ')}${hint}`);
      continue;
    }
    const confirm = job.name;
    const request: RestoreRequest =
      original.via === 'replace' || (original.occupied.length > 0 && replaces)
        ? { backupId, replace: true, confirm }
        : original.via === 'in-place'
          ? { backupId, inPlace: true, confirm }
          : original.via === 'target'
            ? { backupId, target: original.target }
            : { backupId };
    planned.set(job.name, { backupId, request });
  }
  if (refused.length > 0) {
    throw new RestoreError(
      `nothing was restored: ${refused.length} job(s) cannot go back to their original place: ${refused.join('; ')}`,
    );
  }
  return planned;
}

/** A restore step: the job's newest complete backup (never a safety backup) into its original target. */
function restoreStep(planned: Map<string, PlannedStep>): RecoveryStep {
  return async (runtime, job) => {
    const step = planned.get(job.name);
    if (!step) throw new RestoreError(`job '${job.name}' has no planned restore`);
    const result = await runRestore(runtime, job, step.request);
    return {
      backupId: result.backupId,
      target: result.target,
      checks: result.checks,
      findings: result.findings,
    };
  };
}

/** A drill step: restore into a scratch target, every check, the RTO, the target removed. */
const drillStep: RecoveryStep = async (runtime, job) => {
  const { result } = await drillJob(runtime, job, {});
  const restoreFailed = result.durationSeconds === undefined;
  return {
    ...(result.backupId ? { backupId: result.backupId } : {}),
    target: result.target,
    checks: result.checks,
    findings: result.findings,
    ...(restoreFailed ? { error: result.checks.find((c) => !c.passed)?.detail ?? 'restore failed' } : {}),
  };
};

/** `restore --all --host <name>`. */
export function restoreAllCommand(runtime: Runtime, options: RecoverHostOptions): Promise<Outcome> {
  return recoverHostCommand(runtime, options, 'restore');
}

/** `drill --all --host <name>`. */
export function drillAllCommand(runtime: Runtime, options: RecoverHostOptions): Promise<Outcome> {
  return recoverHostCommand(runtime, options, 'drill');
}

async function recoverHostCommand(
  runtime: Runtime,
  options: RecoverHostOptions,
  mode: AgentHostRecovery['mode'],
): Promise<Outcome> {
  const step =
    mode === 'drill'
      ? drillStep
      : restoreStep(
          await planOriginalTargets(
            runtime,
            recoveryOrderOf(runtime.plan, options.host),
            options.replace === true,
          ),
        );
  const report = await recoverHost(runtime, {
    host: options.host,
    mode,
    keepGoing: options.keepGoing,
    step,
  });
  const findings = report.steps.flatMap((s) => s.findings);
  const failed = report.steps.filter((s) => s.status === 'failed');
  const exitCode = failed.length > 0 ? 2 : exitCodeOf(findings);
  const first = failed[0];
  return {
    exitCode,
    json: report satisfies AgentHostRecovery,
    text: formatReport(report),
    ...(first
      ? {
          failure: new RestoreError(
            `${mode} of host ${report.host}: step ${first.step} (${first.job}) failed${failed.length > 1 ? ` and ${failed.length - 1} more` : ''}: ${first.error ?? first.findings.map((f) => f.message).join('; ')}`,
          ),
        }
      : {}),
  };
}

/** The report as text: a table in recovery order, what failed, the total. */
export function formatReport(report: AgentHostRecovery): string {
  const rows = [
    [
      'step',
      'job',
      'kind',
      'status',
      'time',
      'backup',
      report.mode === 'drill' ? 'scratch target (removed)' : 'target',
    ],
    ...report.steps.map((s) => [
      String(s.step),
      s.job,
      s.kind,
      s.status,
      s.durationSeconds === undefined ? '-' : formatSeconds(s.durationSeconds),
      s.backupId ?? '-',
      s.target ?? '-',
    ]),
  ];
  const problems = report.steps.flatMap((s) => [
    ...(s.error ? [`step ${s.step} ${s.job}: ${s.error}`] : []),
    ...s.findings
      .filter(() => !s.error)
      .map((f) => `step ${s.step} ${s.job}: ${f.severity.toUpperCase()} ${f.check}: ${f.message}`),
  ]);
  const counts = (['ok', 'failed', 'skipped'] as const)
    .map((status) => [status, report.steps.filter((s) => s.status === status).length] as const)
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
  const verb = report.mode === 'drill' ? 'drill' : 'restore';
  return [
    `${verb} of host ${report.host}: ${report.steps.length} job(s) in recovery order`,
    formatTable(rows),
    ...problems,
    `total ${formatSeconds(report.totalSeconds)} (the measured recovery time of host ${report.host}): ${counts}${report.ok ? '' : report.steps.some((s) => s.status === 'skipped') ? '; stopped at the first failure (--keep-going runs the rest)' : ''}`,
  ].join('\n');
}

/** Seconds with one decimal below a minute (steps often take less than one), else `4m 05s`. */
function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}m ${String(whole % 60).padStart(2, '0')}s`;
}
