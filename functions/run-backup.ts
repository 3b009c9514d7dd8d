/**
 * run-backup — EventBridge Scheduler → {job, scheduledTime}: decides the backup id and GFS tier and
 * commands the job's host(s) to back up through the Strongbox SSM document.
 *
 * The backup id is derived from job and scheduled time, and claimed with a create-only put of
 * `runs/<job>/<backupId>.json` before SendCommand: a retried invocation for the same scheduled time finds
 * the claim and starts nothing. The tier comes from the previous complete backup (core/tiers `tierOf`).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { describeAwsError, isRetryableAwsError } from '#adapters/aws/errors';
import { listBackups, previousComplete } from '#core/catalog';
import { FUNCTIONS } from '#core/deployment';
import { describeError } from '#core/errors';
import { runClaimKey } from '#core/layout';
import { findJob } from '#core/plan';
import { type Tier, tierOf } from '#core/tiers';
import { makeAlert, publishAlert } from './lib/alerts';
import { describeTarget, jobTarget, sendAgentCommand } from './lib/commands';
import { jobScheduleSchema } from './lib/events';
import { runLogged } from './lib/handler';
import { createMetrics } from './lib/metrics';
import { scheduledRunId, scheduledTimeOf } from './lib/schedule';
import { parseInput } from './lib/validate';
import { lazy, openServices, type Services } from './runtime';

const logger = new Logger({ serviceName: FUNCTIONS.runBackup });
const metrics = createMetrics(FUNCTIONS.runBackup);

/** Environment this handler needs beyond the plan and vault (core/deployment FUNCTION_ENV). */
export const RUN_BACKUP_ENV = ['documentName', 'logGroupName', 'topicArn'] as const;

/** The services run-backup uses. */
export type RunBackupServices = Services<(typeof RUN_BACKUP_ENV)[number] | 'vaultBucket'>;

/** What run-backup did. */
export interface RunBackupResult {
  /** `started`: command sent; `duplicate`: this scheduled time was claimed before; `not-started`: SSM refused (alerted). */
  status: 'started' | 'duplicate' | 'not-started';
  job: string;
  backupId: string;
  tier?: Tier;
  commandId?: string;
  /** Why nothing was started. */
  reason?: string;
}

/**
 * The backup id of a scheduled run: the scheduled time and 6 hex digits hashed from job and time.
 * @example scheduledBackupId('app-db', new Date('2024-12-06T02:00:00Z')) // '20241206T020000Z-…'
 */
export function scheduledBackupId(job: string, scheduledTime: Date): string {
  return scheduledRunId(job, scheduledTime);
}

/**
 * Starts the scheduled backup of one job, at most once per scheduled time.
 * @example await startScheduledBackup({ job: 'app-db', scheduledTime: '2024-12-06T02:00:00Z' }, services)
 * @throws PlanError for a bad input or a job the plan does not have or cannot target; the SDK's error for
 *   a retryable SSM failure (after releasing the claim, so the Scheduler's retry can start it).
 */
export async function startScheduledBackup(
  input: unknown,
  services: RunBackupServices,
  invocation: { requestId?: string; functionName?: string } = {},
): Promise<RunBackupResult> {
  const { job: jobName, scheduledTime } = parseInput(jobScheduleSchema, input, 'run-backup input');
  const { plan, vault, claims, ssm, env, clock, logger: log } = services;
  const job = findJob(plan, jobName);
  const target = jobTarget(plan, job);
  const at = scheduledTimeOf(scheduledTime, clock.now());
  const backupId = scheduledBackupId(job.name, at);

  const backups = await listBackups(vault, job.name);
  if (backups.some((b) => b.backupId === backupId && b.complete)) {
    log.info('backup of this scheduled time exists already; nothing to do', { job: job.name, backupId });
    return { status: 'duplicate', job: job.name, backupId, reason: 'the backup exists already' };
  }
  const tier = tierOf(at, previousComplete(backups, at)?.startedAt, plan.timezone);
  const claimKey = runClaimKey(job.name, backupId);
  const claim = {
    job: job.name,
    backupId,
    tier,
    scheduledTime: at.toISOString(),
    claimedAt: clock.now().toISOString(),
    requestId: invocation.requestId,
  };
  if (!(await claims.claim(claimKey, JSON.stringify(claim)))) {
    log.info('scheduled run claimed already (a retried invocation); nothing started', {
      job: job.name,
      backupId,
    });
    return { status: 'duplicate', job: job.name, backupId, tier, reason: `${claimKey} exists` };
  }

  try {
    const commandId = await sendAgentCommand(
      ssm,
      { documentName: env.documentName, logGroupName: env.logGroupName },
      { action: 'backup', job: job.name, backupId, tier, target, timeoutSeconds: job.timeout },
    );
    log.info('backup commanded', {
      job: job.name,
      backupId,
      tier,
      commandId,
      target: describeTarget(target),
    });
    return { status: 'started', job: job.name, backupId, tier, commandId };
  } catch (error) {
    if (isRetryableAwsError(error)) {
      await claims.release(claimKey);
      log.warn('SendCommand failed, claim released for the retry', {
        job: job.name,
        backupId,
        error: describeAwsError(error),
      });
      throw error;
    }
    const reason = error instanceof Error && 'name' in error ? describeAwsError(error) : describeError(error);
    await publishAlert(
      services.sns,
      env.topicArn,
      makeAlert({
        severity: 'critical',
        title: `Backup not started: ${job.name} on ${target.name ?? describeTarget(target)}`,
        plan: plan.name,
        job: job.name,
        host: describeTarget(target),
        backupId,
        details: [
          `Systems Manager refused the command: ${reason}`,
          `Scheduled for ${at.toISOString()}, tier ${tier}.`,
        ],
        nextSteps: [
          `Check that the host is online and managed by Systems Manager (Fleet Manager), and that the plan's host '${target.name}' names it.`,
          `Start the backup by hand once fixed: aws lambda invoke --function-name ${invocation.functionName ?? FUNCTIONS.runBackup} --cli-binary-format raw-in-base64-out --payload '{"job":"${job.name}"}' out.json`,
        ],
        source: FUNCTIONS.runBackup,
        at: clock.now().toISOString(),
      }),
    );
    log.error('backup not started', { job: job.name, backupId, error: reason });
    return { status: 'not-started', job: job.name, backupId, tier, reason };
  }
}

/**
 * The handler over given services (tests pass mocked clients and a real vault).
 * @example export const handler = createRunBackupHandler(async () => services)
 */
export function createRunBackupHandler(getServices: () => Promise<RunBackupServices>) {
  return async (event: unknown, context?: Context): Promise<RunBackupResult> => {
    const services = await getServices();
    return runLogged(services.logger, context, FUNCTIONS.runBackup, () =>
      startScheduledBackup(event, services, {
        requestId: context?.awsRequestId,
        functionName: context?.functionName,
      }),
    );
  };
}

/** Lambda entry: Scheduler target input `{ "job": "app-db", "scheduledTime": "<aws.scheduler.scheduled-time>" }`. */
export const handler = createRunBackupHandler(
  lazy(() => openServices(process.env, RUN_BACKUP_ENV, { logger, metrics })),
);
