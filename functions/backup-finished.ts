/**
 * backup-finished — EventBridge `EC2 Command Invocation Status-change Notification` for the Strongbox
 * document: when a host's backup command ends, confirms the outcome with GetCommandInvocation. Success →
 * metrics (bytes stored, duration). Failed, timed out or cancelled → one alert naming job, host and the
 * agent's error line. Commands of other actions (restore, drill) are left to their own handlers.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { type AgentBackupResult, agentBackupResultSchema } from '#core/agent-output';
import { FUNCTIONS, METRICS } from '#core/deployment';
import { makeAlert, publishAlert } from './lib/alerts';
import { type InvocationResult, outputLocation, readAgentResult } from './lib/commands';
import { commandStatusEventSchema } from './lib/events';
import { readFinishedCommand } from './lib/finished-command';
import { runLogged } from './lib/handler';
import { createMetrics, MetricUnit, publishJobMetrics } from './lib/metrics';
import { failureWithoutErrorLine, hostOf, statusLine } from './lib/outcome';
import { parseInput } from './lib/validate';
import { lazy, openServices, type Services } from './runtime';

const logger = new Logger({ serviceName: FUNCTIONS.backupFinished });
const metrics = createMetrics(FUNCTIONS.backupFinished);

/** Environment this handler needs beyond the plan (core/deployment FUNCTION_ENV). */
export const BACKUP_FINISHED_ENV = ['documentName', 'logGroupName', 'topicArn'] as const;

/** The services backup-finished uses. */
export type BackupFinishedServices = Services<(typeof BACKUP_FINISHED_ENV)[number]>;

/** What backup-finished made of an event. */
export interface BackupFinishedResult {
  status: 'ignored' | 'succeeded' | 'failed';
  job?: string;
  backupId?: string;
  instanceId?: string;
  /** Why it was ignored, or the agent's error. */
  reason?: string;
  /** Whether an alert was published. */
  alerted: boolean;
}

/**
 * Handles one status-change event.
 * @example await handleBackupFinished(event, services) // { status: 'failed', job: 'app-db', alerted: true, … }
 * @throws PlanError for an event that is not an SSM command invocation status change.
 */
export async function handleBackupFinished(
  event: unknown,
  services: BackupFinishedServices,
): Promise<BackupFinishedResult> {
  const parsed = parseInput(commandStatusEventSchema, event, 'backup-finished event');
  const finished = await readFinishedCommand(parsed, services, 'backup');
  if ('ignored' in finished) {
    services.logger.debug('event ignored', { reason: finished.ignored });
    return { status: 'ignored', reason: finished.ignored, alerted: false };
  }
  const { parameters, invocation } = finished;
  const job = parameters.job;
  const base = { job, backupId: parameters.backupId, instanceId: invocation.instanceId };
  const result = readAgentResult(agentBackupResultSchema, invocation.stdout);

  if (invocation.status === 'Success') {
    publishJobMetrics(services.metrics, job, [
      { name: METRICS.backupSucceeded, unit: MetricUnit.Count, value: 1 },
      { name: METRICS.backupFailed, unit: MetricUnit.Count, value: 0 },
      ...(result.ok
        ? [
            { name: METRICS.lastBackupBytes, unit: MetricUnit.Bytes, value: result.data.storedBytes },
            {
              name: METRICS.backupDurationSeconds,
              unit: MetricUnit.Seconds,
              value: result.data.durationSeconds,
            },
          ]
        : []),
    ]);
    if (result.ok) {
      services.logger.info('backup succeeded', { ...base, ...pick(result.data) });
      return { status: 'succeeded', ...base, backupId: result.data.backupId, alerted: false };
    }
    services.logger.warn('backup result unreadable', { ...base, problem: result.problem });
    await alert(services, invocation, job, parameters.backupId, {
      severity: 'warning',
      title: `Backup result unreadable: ${job} on ${hostOf(services.plan, job, invocation.instanceId)}`,
      details: [
        'The command succeeded but the agent printed no readable --json result on stdout; its size and duration were not recorded.',
        statusLine(invocation),
      ],
    });
    return { status: 'succeeded', ...base, reason: 'no readable result', alerted: true };
  }

  publishJobMetrics(services.metrics, job, [
    { name: METRICS.backupSucceeded, unit: MetricUnit.Count, value: 0 },
    { name: METRICS.backupFailed, unit: MetricUnit.Count, value: 1 },
  ]);
  const reason = invocation.errorLine ?? failureWithoutErrorLine(invocation);
  await alert(services, invocation, job, parameters.backupId, {
    severity: 'critical',
    title: `Backup failed: ${job} on ${hostOf(services.plan, job, invocation.instanceId)}`,
    details: [
      invocation.errorLine ? `Agent error: ${invocation.errorLine}` : reason,
      statusLine(invocation),
      'Nothing was committed: a backup without its manifest never counts, so the previous complete backup is still the newest.',
    ],
  });
  services.logger.warn('backup failed', { ...base, status: invocation.status, reason });
  return { status: 'failed', ...base, reason, alerted: true };
}

function pick(result: AgentBackupResult) {
  const { backupId, storedBytes, sourceBytes, durationSeconds } = result;
  return { backupId, storedBytes, sourceBytes, durationSeconds };
}

async function alert(
  services: BackupFinishedServices,
  invocation: InvocationResult,
  job: string,
  backupId: string | undefined,
  what: { severity: 'critical' | 'warning'; title: string; details: string[] },
): Promise<void> {
  const { env, plan, clock } = services;
  await publishAlert(
    services.sns,
    env.topicArn,
    makeAlert({
      ...what,
      plan: plan.name,
      job,
      host: hostOf(plan, job, invocation.instanceId),
      backupId,
      nextSteps: [
        `Read the full output in ${outputLocation(env.logGroupName, invocation.commandId, invocation.instanceId)}.`,
        `On the host, check the job's tools, database access and vault: strongbox doctor --plan /etc/strongbox/plan.json --job ${job}`,
        `Run the backup again once fixed: invoke the run-backup function with {"job":"${job}"} (docs/functions.md).`,
      ],
      source: FUNCTIONS.backupFinished,
      at: clock.now().toISOString(),
    }),
  );
}

/**
 * The handler over given services (tests pass mocked clients).
 * @example export const handler = createBackupFinishedHandler(async () => services)
 */
export function createBackupFinishedHandler(getServices: () => Promise<BackupFinishedServices>) {
  return async (event: unknown, context?: Context): Promise<BackupFinishedResult> => {
    const services = await getServices();
    return runLogged(services.logger, context, FUNCTIONS.backupFinished, () =>
      handleBackupFinished(event, services),
    );
  };
}

/** Lambda entry: EventBridge rule on SSM command invocation status changes of the Strongbox document. */
export const handler = createBackupFinishedHandler(
  lazy(() => openServices(process.env, BACKUP_FINISHED_ENV, { logger, metrics })),
);
