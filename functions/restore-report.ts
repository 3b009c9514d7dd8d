/**
 * restore-report — EventBridge SSM status change of a `restore` command of the Strongbox document: tells
 * the alert topic how the restore ended on the host — info on success (with the checks of the restored
 * data against the manifest; a warning when one found something), critical with the agent's error line
 * on failure. It reads command outcomes and publishes; it retrieves nothing and commands nothing.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { agentRestoreResultSchema } from '#core/agent-output';
import { FUNCTIONS } from '#core/deployment';
import { formatDuration } from '#core/duration';
import { makeAlert, publishAlert } from './lib/alerts';
import { outputLocation, readAgentResult } from './lib/commands';
import { commandStatusEventSchema } from './lib/events';
import { readFinishedCommand } from './lib/finished-command';
import { runLogged } from './lib/handler';
import { createMetrics } from './lib/metrics';
import { failureWithoutErrorLine, hostOf, statusLine } from './lib/outcome';
import { parseInput } from './lib/validate';
import { lazy, openServices, type Services } from './runtime';

const logger = new Logger({ serviceName: FUNCTIONS.restoreReport });
const metrics = createMetrics(FUNCTIONS.restoreReport);

/** Environment this handler needs beyond the plan (core/deployment FUNCTION_ENV). */
export const RESTORE_REPORT_ENV = ['documentName', 'logGroupName', 'topicArn'] as const;

/** The services restore-report uses. */
export type RestoreReportServices = Services<(typeof RESTORE_REPORT_ENV)[number]>;

/** What restore-report made of an event. */
export type RestoreReportResult =
  | { status: 'finished' | 'failed'; job: string; backupId?: string; instanceId: string; alerted: true }
  | { status: 'ignored'; reason: string };

/**
 * Tells the alert topic how a restore command ended on a host; commands of other actions are ignored.
 * @example await reportRestore(commandStatusEvent, services) // { status: 'finished', job: 'app-db', alerted: true, … }
 * @throws PlanError for an event that is not an SSM command invocation status change.
 */
export async function reportRestore(
  event: unknown,
  services: RestoreReportServices,
): Promise<RestoreReportResult> {
  const parsed = parseInput(commandStatusEventSchema, event, 'restore command event');
  const finished = await readFinishedCommand(parsed, services, 'restore');
  if ('ignored' in finished) {
    services.logger.debug('event ignored', { reason: finished.ignored });
    return { status: 'ignored', reason: finished.ignored };
  }
  const { parameters, invocation } = finished;
  const job = parameters.job;
  const result = readAgentResult(agentRestoreResultSchema, invocation.stdout);
  if (!result.ok) services.logger.warn('restore result unreadable', { job, problem: result.problem });
  const host = hostOf(services.plan, job, invocation.instanceId);
  const succeeded = invocation.status === 'Success' && result.ok;
  const findings = result.ok ? result.data.findings : [];
  const details = result.ok
    ? [
        result.data.mode === 'replace'
          ? `Restored ${result.data.backupId} over '${result.data.target}' in ${formatDuration(result.data.durationSeconds)}; the previous database is kept as '${result.data.keptAs}' (safety backup ${result.data.safetyBackupId}).`
          : `Restored ${result.data.backupId} into '${result.data.target}' in ${formatDuration(result.data.durationSeconds)}.`,
        statusLine(invocation),
      ]
    : [
        invocation.status === 'Success'
          ? `The command succeeded but the agent's --json result is unreadable (${result.problem}): the restore is not confirmed.`
          : invocation.errorLine
            ? `Agent error: ${invocation.errorLine}`
            : failureWithoutErrorLine(invocation),
        statusLine(invocation),
      ];
  const severity = !succeeded ? 'critical' : findings.some((f) => f.severity !== 'info') ? 'warning' : 'info';
  const backupId = result.ok ? result.data.backupId : parameters.backupId;
  await publishAlert(
    services.sns,
    services.env.topicArn,
    makeAlert({
      severity,
      title: succeeded ? `Restore finished: ${job} on ${host}` : `Restore failed: ${job} on ${host}`,
      plan: services.plan.name,
      job,
      host,
      backupId,
      details,
      findings,
      nextSteps: succeeded
        ? [
            'Check the restored data, then point the application at it (scratch) or confirm the swap (replace).',
          ]
        : [
            `Read the full output in ${outputLocation(services.env.logGroupName, invocation.commandId, invocation.instanceId)}.`,
            'Nothing live was changed: a failed restore removes what it created. Fix the cause and invoke restore-request again.',
          ],
      source: FUNCTIONS.restoreReport,
      at: services.clock.now().toISOString(),
    }),
  );
  services.logger.info('restore reported', { job, backupId, instanceId: invocation.instanceId, succeeded });
  return {
    status: succeeded ? 'finished' : 'failed',
    job,
    backupId,
    instanceId: invocation.instanceId,
    alerted: true,
  };
}

/**
 * The handler over given services (tests pass mocked clients).
 * @example export const handler = createRestoreReportHandler(async () => services)
 */
export function createRestoreReportHandler(getServices: () => Promise<RestoreReportServices>) {
  return async (event: unknown, context?: Context): Promise<RestoreReportResult> => {
    const services = await getServices();
    return runLogged(services.logger, context, FUNCTIONS.restoreReport, () => reportRestore(event, services));
  };
}

/** Lambda entry: EventBridge rule on SSM command invocation status changes of the Strongbox document. */
export const handler = createRestoreReportHandler(
  lazy(() => openServices(process.env, RESTORE_REPORT_ENV, { logger, metrics })),
);
