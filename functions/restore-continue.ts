/**
 * restore-continue — EventBridge `Object Restore Completed` from the vault bucket: S3 finished retrieving
 * an archived object. Continues every pending request of that object's backup (kept by restore-request
 * at `restores/<job>/<backupId>/<requestId>.json`) whose objects are now all readable — exactly once per
 * request, claimed with a create-only `….started` marker — and tells the alert topic it continued.
 *
 * A pending record that does not read back as a valid request of that backup (not JSON, a bad field, a
 * job no longer in the plan, objects of another backup) is never acted on: it is reported once, as a
 * critical alert naming the record and each problem, and its marker is claimed so the events of the
 * backup's other objects do not report it again. An alert rather than a log line, because a person is
 * waiting for that restore: without one it would silently never happen.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { describeAwsError, isRetryableAwsError } from '#adapters/aws/errors';
import { FUNCTIONS } from '#core/deployment';
import { PlanError } from '#core/errors';
import { parseBackupKey } from '#core/layout';
import { findJob, type Job } from '#core/plan';
import { makeAlert, publishAlert } from './lib/alerts';
import { describeTarget } from './lib/commands';
import { restoreCompletedEventSchema } from './lib/events';
import { runLogged } from './lib/handler';
import { createMetrics } from './lib/metrics';
import {
  commandRestore,
  isReadable,
  listPendingRestores,
  type PendingEntry,
  type PendingRestore,
  readPendingRestore,
} from './lib/restore-requests';
import { parseInput } from './lib/validate';
import { lazy, openServices, type Services } from './runtime';

const logger = new Logger({ serviceName: FUNCTIONS.restoreContinue });
const metrics = createMetrics(FUNCTIONS.restoreContinue);

/** Environment this handler needs beyond the plan and vault (core/deployment FUNCTION_ENV). */
export const RESTORE_CONTINUE_ENV = ['documentName', 'logGroupName', 'topicArn', 'vaultBucket'] as const;

/** The services restore-continue uses. */
export type RestoreContinueServices = Services<(typeof RESTORE_CONTINUE_ENV)[number]>;

/** What restore-continue did with an event. */
export type RestoreContinueResult =
  | {
      status: 'continued' | 'waiting';
      job: string;
      backupId: string;
      /** Commands sent by this invocation. */
      commandIds: string[];
      /** Objects of pending requests still being retrieved (`waiting` when nothing was sent). */
      remaining: number;
      /** Keys of pending records reported as unreadable by this invocation, and not acted on. */
      refused: string[];
    }
  | { status: 'ignored'; reason: string };

/**
 * Continues the pending requests of the backup the retrieved object belongs to, once all their objects
 * are readable.
 * @example await continueRestores(objectRestoreCompletedEvent, services) // { status: 'continued', commandIds, … }
 * @throws PlanError for an event that is not an `Object Restore Completed`; retryable AWS errors (after
 *   releasing the claim it took, so the retry can continue the request).
 */
export async function continueRestores(
  event: unknown,
  services: RestoreContinueServices,
): Promise<RestoreContinueResult> {
  const parsed = parseInput(restoreCompletedEventSchema, event, 'restore completed event');
  const bucket = parsed.detail.bucket.name;
  if (bucket !== services.env.vaultBucket)
    return { status: 'ignored', reason: `bucket ${bucket} is not the vault` };
  const key = decodeURIComponent(parsed.detail.object.key.replace(/\+/g, ' '));
  const backup = parseBackupKey(key);
  if (!backup) return { status: 'ignored', reason: `${key} is not part of a backup` };
  const { vault, clock, claims } = services;
  const { pending, strays } = await listPendingRestores(vault, backup.job, backup.backupId);
  if (strays.length > 0) services.logger.warn('not restore request keys; left alone', { strays });
  if (pending.length === 0)
    return { status: 'ignored', reason: `no pending restore of ${backup.job}/${backup.backupId}` };

  const now = clock.now();
  const commandIds: string[] = [];
  const refused: string[] = [];
  let remaining = 0;
  for (const entry of pending) {
    const read = await readRequest(services, entry, backup);
    if (!read.ok) {
      if (await reportUnreadable(services, entry, backup, read.problems)) refused.push(entry.key);
      continue;
    }
    const { request, job } = read;
    const heads = await Promise.all(request.objects.map((k) => vault.head(k)));
    const waiting = heads.filter((h) => !h || !isReadable(h, now)).length;
    if (waiting > 0) {
      remaining += waiting;
      continue;
    }
    if (!(await claims.claim(entry.startedKey, JSON.stringify({ continuedAt: now.toISOString() })))) continue;
    let commandId: string;
    try {
      commandId = await commandRestore(services.ssm, services.env, {
        job,
        backupId: request.backupId,
        options: request.options,
        target: request.target,
      });
    } catch (error) {
      if (isRetryableAwsError(error)) {
        await claims.release(entry.startedKey);
        throw error;
      }
      await alertRequest(services, request, 'critical', `Restore could not continue: ${request.job}`, [
        `The archived objects of ${request.backupId} are retrieved, but Systems Manager refused the restore command: ${describeAwsError(error)}`,
      ]);
      continue;
    }
    commandIds.push(commandId);
    services.logger.info('restore continued', {
      job: request.job,
      backupId: request.backupId,
      requestId: request.requestId,
      commandId,
    });
    await alertRequest(services, request, 'info', `Restore continues: ${request.job} ${request.backupId}`, [
      `All ${request.objects.length} object(s) are retrieved (requested ${request.requestedAt}); restore command ${commandId} sent to ${describeTarget(request.target)}.`,
    ]);
  }
  return {
    status: commandIds.length === 0 && remaining > 0 ? 'waiting' : 'continued',
    job: backup.job,
    backupId: backup.backupId,
    commandIds,
    remaining,
    refused,
  };
}

/** A pending request read back and checked, with the plan's job of it (a job may have left the plan). */
async function readRequest(
  services: RestoreContinueServices,
  entry: PendingEntry,
  backup: { job: string; backupId: string },
): Promise<{ ok: true; request: PendingRestore; job: Job } | { ok: false; problems: string[] }> {
  const read = await readPendingRestore(services.vault, entry, backup);
  if (!read.ok) return read;
  try {
    return { ok: true, request: read.request, job: findJob(services.plan, read.request.job) };
  } catch (error) {
    if (error instanceof PlanError) return { ok: false, problems: error.issues.map((i) => `job: ${i}`) };
    throw error;
  }
}

/**
 * Reports a pending record that cannot be acted on, once: claims its marker (recording why), then
 * alerts. When the alert cannot be published the claim is released, so the retry reports it.
 * @returns whether this call reported it (false: another invocation did).
 */
async function reportUnreadable(
  services: RestoreContinueServices,
  entry: PendingEntry,
  backup: { job: string; backupId: string },
  problems: readonly string[],
): Promise<boolean> {
  const at = services.clock.now().toISOString();
  services.logger.error('pending restore request unreadable; not continued', { key: entry.key, problems });
  if (!(await services.claims.claim(entry.startedKey, JSON.stringify({ refusedAt: at, problems })))) {
    return false;
  }
  try {
    await publishAlert(
      services.sns,
      services.env.topicArn,
      makeAlert({
        severity: 'critical',
        title: `Restore cannot continue: ${backup.job} ${backup.backupId}`,
        plan: services.plan.name,
        job: backup.job,
        backupId: backup.backupId,
        details: [
          `The archived objects of ${backup.backupId} are being retrieved, but the pending restore request ${entry.key} does not read back as a request of that backup, so nothing was commanded:`,
          ...problems.map((p) => `  ${p}`),
        ],
        nextSteps: [
          'Invoke restore-request again with the request you made (docs/functions.md): retrieved objects stay readable for the days the request asked for.',
          `The record and its marker ${entry.startedKey} (which says why it was refused) can be deleted afterwards.`,
        ],
        source: FUNCTIONS.restoreContinue,
        at,
      }),
    );
  } catch (error) {
    await services.claims.release(entry.startedKey);
    throw error;
  }
  return true;
}

async function alertRequest(
  services: RestoreContinueServices,
  request: PendingRestore,
  severity: 'critical' | 'info',
  title: string,
  details: string[],
): Promise<void> {
  await publishAlert(
    services.sns,
    services.env.topicArn,
    makeAlert({
      severity,
      title,
      plan: services.plan.name,
      job: request.job,
      host: describeTarget(request.target),
      backupId: request.backupId,
      details,
      nextSteps:
        severity === 'info'
          ? ['Another message follows when the restore command has finished.']
          : [
              'Fix the target host, then invoke restore-request again with the same request: the objects stay readable for the requested days.',
            ],
      source: FUNCTIONS.restoreContinue,
      at: services.clock.now().toISOString(),
    }),
  );
}

/**
 * The handler over given services (tests pass mocked clients and a vault).
 * @example export const handler = createRestoreContinueHandler(async () => services)
 */
export function createRestoreContinueHandler(getServices: () => Promise<RestoreContinueServices>) {
  return async (event: unknown, context?: Context): Promise<RestoreContinueResult> => {
    const services = await getServices();
    return runLogged(services.logger, context, FUNCTIONS.restoreContinue, () =>
      continueRestores(event, services),
    );
  };
}

/** Lambda entry: EventBridge rule on `Object Restore Completed` of the vault bucket. */
export const handler = createRestoreContinueHandler(
  lazy(() => openServices(process.env, RESTORE_CONTINUE_ENV, { logger, metrics })),
);
