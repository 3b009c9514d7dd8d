/**
 * restore-drill — the proof that backups restore, on each job's drill schedule:
 *
 * - **Start** (Scheduler → {job, scheduledTime}): commands the drill host (`jobs[].drill.host`, else the
 *   job's host) to run `strongbox drill`, which restores the newest backup into a scratch target, runs
 *   the plan's checks (row counts against the manifest, custom SQL with expected results), times the
 *   restore and drops the scratch target whatever happened. Claimed once per scheduled time
 *   (`drills/<job>/<id>.json`), like run-backup.
 * - **Finish** (EventBridge SSM status change of a `drill` command): records the restore duration as the
 *   measured RTO (metric RestoreDrillDurationSeconds) and RestoreDrillFailed, and alerts when the drill
 *   failed, a check failed, or the RTO objective (`jobs[].drill.rto`) was missed.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { describeAwsError, isRetryableAwsError } from '#adapters/aws/errors';
import { agentDrillResultSchema, type Finding } from '#core/agent-output';
import { listBackups } from '#core/catalog';
import { FUNCTIONS, METRICS } from '#core/deployment';
import { formatDuration } from '#core/duration';
import { PlanError } from '#core/errors';
import { drillClaimKey } from '#core/layout';
import { findJob, type Job } from '#core/plan';
import { countFindings, makeAlert, publishAlert, worstSeverity } from './lib/alerts';
import {
  type CommandTarget,
  describeTarget,
  outputLocation,
  readAgentResult,
  sendAgentCommand,
  targetOfHost,
} from './lib/commands';
import { commandStatusEventSchema, eventSource, jobScheduleSchema } from './lib/events';
import { readFinishedCommand } from './lib/finished-command';
import { runLogged } from './lib/handler';
import { createMetrics, MetricUnit, publishJobMetrics } from './lib/metrics';
import { failureWithoutErrorLine, hostOf, statusLine } from './lib/outcome';
import { scheduledRunId, scheduledTimeOf } from './lib/schedule';
import { parseInput } from './lib/validate';
import { lazy, openServices, type Services } from './runtime';

const logger = new Logger({ serviceName: FUNCTIONS.restoreDrill });
const metrics = createMetrics(FUNCTIONS.restoreDrill);

/** Environment this handler needs beyond the plan and vault (core/deployment FUNCTION_ENV). */
export const RESTORE_DRILL_ENV = ['documentName', 'logGroupName', 'topicArn'] as const;

/** The services restore-drill uses. */
export type RestoreDrillServices = Services<(typeof RESTORE_DRILL_ENV)[number] | 'vaultBucket'>;

/** What restore-drill did. */
export type RestoreDrillResult =
  | { status: 'started'; job: string; drillId: string; commandId: string; target: string }
  | { status: 'duplicate' | 'not-started'; job: string; drillId: string; reason: string }
  | {
      status: 'passed' | 'failed';
      job: string;
      backupId?: string;
      instanceId: string;
      /** The measured recovery time. */
      durationSeconds?: number;
      findings: Finding[];
      alerted: boolean;
    }
  | { status: 'ignored'; reason: string };

/**
 * Starts a scheduled drill, or handles the outcome of one.
 * @example await handleRestoreDrill({ job: 'app-db', scheduledTime: '2024-12-08T04:00:00Z' }, services)
 * @throws PlanError for a malformed event, a job without a drill, or a drill host the plan does not have.
 */
export async function handleRestoreDrill(
  event: unknown,
  services: RestoreDrillServices,
): Promise<RestoreDrillResult> {
  return eventSource(event) === 'aws.ssm' ? finishDrill(event, services) : startDrill(event, services);
}

function drillTarget(services: RestoreDrillServices, job: Job): CommandTarget {
  if (!job.drill) throw new PlanError([`job '${job.name}' has no drill in the plan (jobs[].drill)`]);
  return targetOfHost(services.plan, job.drill.host ?? job.host, `job '${job.name}' drill.host`);
}

async function startDrill(input: unknown, services: RestoreDrillServices): Promise<RestoreDrillResult> {
  const { job: jobName, scheduledTime } = parseInput(jobScheduleSchema, input, 'restore-drill input');
  const { plan, vault, claims, clock, env } = services;
  const job = findJob(plan, jobName);
  const target = drillTarget(services, job);
  const at = scheduledTimeOf(scheduledTime, clock.now());
  const drillId = scheduledRunId(`drill ${job.name}`, at);

  if (!(await listBackups(vault, job.name)).some((b) => b.complete)) {
    const reason = 'the job has no complete backup to restore';
    await publishAlert(
      services.sns,
      env.topicArn,
      makeAlert({
        severity: 'critical',
        title: `Restore drill not started: ${job.name} has no backup`,
        plan: plan.name,
        job: job.name,
        host: describeTarget(target),
        details: [`The drill of ${at.toISOString()} found no complete backup of ${job.name} in the vault.`],
        nextSteps: [
          'See the backup-finished and verify alerts of this job; take a backup (invoke run-backup with {"job":"…"}).',
        ],
        source: FUNCTIONS.restoreDrill,
        at: clock.now().toISOString(),
      }),
    );
    return { status: 'not-started', job: job.name, drillId, reason };
  }
  const claimKey = drillClaimKey(job.name, drillId);
  const claim = {
    job: job.name,
    drillId,
    scheduledTime: at.toISOString(),
    claimedAt: clock.now().toISOString(),
  };
  if (!(await claims.claim(claimKey, JSON.stringify(claim)))) {
    services.logger.info('drill of this scheduled time claimed already; nothing started', {
      job: job.name,
      drillId,
    });
    return { status: 'duplicate', job: job.name, drillId, reason: `${claimKey} exists` };
  }
  try {
    const commandId = await sendAgentCommand(
      services.ssm,
      { documentName: env.documentName, logGroupName: env.logGroupName },
      { action: 'drill', job: job.name, target, timeoutSeconds: job.timeout },
    );
    services.logger.info('drill commanded', {
      job: job.name,
      drillId,
      commandId,
      target: describeTarget(target),
    });
    return { status: 'started', job: job.name, drillId, commandId, target: describeTarget(target) };
  } catch (error) {
    if (isRetryableAwsError(error)) {
      await claims.release(claimKey);
      throw error;
    }
    const reason = describeAwsError(error);
    await publishAlert(
      services.sns,
      env.topicArn,
      makeAlert({
        severity: 'critical',
        title: `Restore drill not started: ${job.name} on ${target.name ?? describeTarget(target)}`,
        plan: plan.name,
        job: job.name,
        host: describeTarget(target),
        details: [`Systems Manager refused the drill command: ${reason}`],
        nextSteps: [`Check that the drill host '${target.name}' is online and managed by Systems Manager.`],
        source: FUNCTIONS.restoreDrill,
        at: clock.now().toISOString(),
      }),
    );
    return { status: 'not-started', job: job.name, drillId, reason };
  }
}

async function finishDrill(event: unknown, services: RestoreDrillServices): Promise<RestoreDrillResult> {
  const parsed = parseInput(commandStatusEventSchema, event, 'restore-drill event');
  const finished = await readFinishedCommand(parsed, services, 'drill');
  if ('ignored' in finished) return { status: 'ignored', reason: finished.ignored };
  const { parameters, invocation } = finished;
  const { plan, clock, env } = services;
  const jobName = parameters.job;
  const job = plan.jobs.find((j) => j.name === jobName);
  const host = hostOf(plan, jobName, invocation.instanceId, 'drill');
  const read = readAgentResult(agentDrillResultSchema, invocation.stdout);
  const result = read.ok ? read.data : undefined;
  if (!read.ok) services.logger.warn('drill result unreadable', { job: jobName, problem: read.problem });
  const findings: Finding[] = [...(result?.findings ?? [])];
  const duration = result?.durationSeconds;
  const rto = job?.drill?.rto;
  if (
    duration !== undefined &&
    rto !== undefined &&
    duration > rto &&
    !findings.some((f) => f.check === 'rto')
  ) {
    findings.push({
      severity: 'critical',
      job: jobName,
      check: 'rto',
      backupId: result?.backupId,
      message: `restore took ${formatDuration(duration)}, over the recovery time objective of ${formatDuration(rto)}`,
    });
  }
  if (!result) {
    findings.push({
      severity: 'critical',
      job: jobName,
      check: 'drill-failed',
      message: invocation.errorLine ?? failureWithoutErrorLine(invocation),
    });
  }
  const failed = invocation.status !== 'Success' || findings.some((f) => f.severity === 'critical');
  publishJobMetrics(services.metrics, jobName, [
    ...(duration !== undefined
      ? [{ name: METRICS.drillDurationSeconds, unit: MetricUnit.Seconds, value: duration }]
      : []),
    { name: METRICS.drillFailed, unit: MetricUnit.Count, value: failed ? 1 : 0 },
  ]);
  const problems = findings.filter((f) => f.severity !== 'info');
  const severity = failed ? 'critical' : worstSeverity(problems);
  if (severity && severity !== 'info') {
    const restored =
      result?.backupId && duration !== undefined
        ? `Restored ${result.backupId} into the scratch target '${result.target ?? '?'}' in ${formatDuration(duration)}${rto !== undefined ? ` (objective ${formatDuration(rto)})` : ''}; the scratch target was dropped.`
        : 'Nothing was restored.';
    await publishAlert(
      services.sns,
      env.topicArn,
      makeAlert({
        severity,
        title: failed
          ? `Restore drill failed: ${jobName} on ${host}`
          : `Restore drill: ${countFindings(problems)} for ${jobName} on ${host}`,
        plan: plan.name,
        job: jobName,
        host,
        backupId: result?.backupId,
        details: [restored, statusLine(invocation)],
        findings,
        nextSteps: [
          `Read the full output in ${outputLocation(env.logGroupName, invocation.commandId, invocation.instanceId)}.`,
          `Run the drill by hand on the drill host: strongbox drill --plan /etc/strongbox/plan.json --job ${jobName}`,
          'A missed RTO: restore on faster storage or with more cores, make the backup smaller, or change the objective in the plan (jobs[].drill.rto).',
        ],
        source: FUNCTIONS.restoreDrill,
        at: clock.now().toISOString(),
      }),
    );
  }
  services.logger.info('drill finished', {
    job: jobName,
    backupId: result?.backupId,
    durationSeconds: duration,
    failed,
    findings: findings.length,
  });
  return {
    status: failed ? 'failed' : 'passed',
    job: jobName,
    backupId: result?.backupId,
    instanceId: invocation.instanceId,
    durationSeconds: duration,
    findings,
    alerted: severity !== undefined && severity !== 'info',
  };
}

/**
 * The handler over given services (tests pass mocked clients and a real vault).
 * @example export const handler = createRestoreDrillHandler(async () => services)
 */
export function createRestoreDrillHandler(getServices: () => Promise<RestoreDrillServices>) {
  return async (event: unknown, context?: Context): Promise<RestoreDrillResult> => {
    const services = await getServices();
    return runLogged(services.logger, context, FUNCTIONS.restoreDrill, () =>
      handleRestoreDrill(event, services),
    );
  };
}

/** Lambda entry: the drill schedule's `{ "job": …, "scheduledTime": … }`, and SSM status changes. */
export const handler = createRestoreDrillHandler(
  lazy(() => openServices(process.env, RESTORE_DRILL_ENV, { logger, metrics })),
);
