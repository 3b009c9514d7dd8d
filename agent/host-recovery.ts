/**
 * Whole-host recovery: every job of one host, in the plan's recovery order (core/plan
 * `recoveryOrderOf`), each restored from its newest complete backup that is not a safety backup — or,
 * for a drill, restored into a scratch target, checked and removed. Each step is timed and the total is
 * the host's measured recovery time. The first failed step stops the run (what comes after it, a cache
 * warmed from a database that did not come back, would only mislead) unless `keepGoing`; the steps not
 * run are reported as skipped.
 */
import type { Runtime } from '#agent/runtime';
import type { AgentHostRecovery, AgentRecoveryStep } from '#core/agent-output';
import { describeError } from '#core/errors';
import { type Job, recoveryOrderOf } from '#core/plan';

/** What one step did: its part of the report, minus the step number, job, kind and status. */
export type StepOutcome = Pick<AgentRecoveryStep, 'backupId' | 'target' | 'checks' | 'findings' | 'error'>;

/** Runs one job's step; a step fails when it throws or has a critical finding. */
export type RecoveryStep = (runtime: Runtime, job: Job) => Promise<StepOutcome>;

/** Options of a whole-host recovery. */
export interface HostRecoveryOptions {
  host: string;
  mode: AgentHostRecovery['mode'];
  /** Go on after a failed step. @default false: stop at the first failure */
  keepGoing?: boolean;
  step: RecoveryStep;
}

/**
 * Runs every job of a host in recovery order.
 * @example await recoverHost(runtime, { host: 'db1', mode: 'drill', step: drillStep })
 * @throws PlanError when the host is unknown or runs no job (before anything starts).
 */
export async function recoverHost(
  runtime: Runtime,
  options: HostRecoveryOptions,
): Promise<AgentHostRecovery> {
  const jobs = recoveryOrderOf(runtime.plan, options.host);
  const steps: AgentRecoveryStep[] = [];
  const started = Date.now();
  let stopped = false;
  for (const [index, job] of jobs.entries()) {
    const base = { step: index + 1, job: job.name, kind: job.source.kind };
    if (stopped) {
      steps.push({ ...base, status: 'skipped', checks: [], findings: [] });
      continue;
    }
    runtime.log(`${options.mode} ${options.host} step ${index + 1}/${jobs.length}: ${job.name}`);
    const stepStarted = Date.now();
    let outcome: StepOutcome;
    try {
      outcome = await options.step(runtime, job);
    } catch (error) {
      runtime.signal.throwIfAborted();
      outcome = { checks: [], findings: [], error: describeError(error) };
    }
    const failed = outcome.error !== undefined || outcome.findings.some((f) => f.severity === 'critical');
    steps.push({
      ...base,
      status: failed ? 'failed' : 'ok',
      ...outcome,
      durationSeconds: (Date.now() - stepStarted) / 1000,
    });
    if (failed && !options.keepGoing) stopped = true;
  }
  return {
    host: options.host,
    mode: options.mode,
    ok: steps.every((s) => s.status === 'ok'),
    steps,
    totalSeconds: (Date.now() - started) / 1000,
  };
}
