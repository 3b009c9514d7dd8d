/**
 * restore — on demand (`aws lambda invoke`), and two continuations:
 *
 * - **Request** (a direct invocation with the payload of docs/functions.md): validated field by field,
 *   the backup picked (by id, latest, or the newest that started at or before `at`). When any of its
 *   data objects is in Glacier Flexible Retrieval or Deep Archive, their retrieval is started, the
 *   request is kept in the vault at `restores/<job>/<backupId>/<requestId>.json` (Standard class), and
 *   the answer is `{status: "retrieving", eta}`. Otherwise the target host is commanded at once
 *   (`strongbox restore --options …`) and the answer carries the command id.
 * - **Retrieval done** (EventBridge `Object Restore Completed` from the vault bucket): continues every
 *   pending request of that backup whose objects are now all readable — exactly once per request,
 *   claimed with a create-only `….started` marker — and tells the alert topic it continued.
 * - **Restore finished** (EventBridge SSM status change of a `restore` command): tells the alert topic
 *   how it went (info on success, critical with the agent's error line on failure).
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { describeAwsError, isRetryableAwsError } from '#adapters/aws/errors';
import { agentRestoreResultSchema } from '#core/agent-output';
import { isBackupId } from '#core/backup-id';
import { listBackups, readManifest, selectBackup } from '#core/catalog';
import { type AgentRestoreOptions, FUNCTIONS } from '#core/deployment';
import { formatDuration } from '#core/duration';
import { NotFoundError, PlanError } from '#core/errors';
import {
  objectKey,
  parseBackupKey,
  restoreRequestKey,
  restoreRequestPrefix,
  restoreStartedKey,
} from '#core/layout';
import { findJob, type Job, type Plan } from '#core/plan';
import type { StoredObject } from '#core/ports';
import { makeAlert, publishAlert } from './lib/alerts';
import {
  type CommandTarget,
  describeTarget,
  jobTarget,
  outputLocation,
  readAgentResult,
  sendAgentCommand,
  targetOfHost,
} from './lib/commands';
import {
  commandStatusEventSchema,
  eventSource,
  isoTime,
  jobName,
  restoreCompletedEventSchema,
} from './lib/events';
import { readFinishedCommand } from './lib/finished-command';
import { runLogged } from './lib/handler';
import { createMetrics } from './lib/metrics';
import { failureWithoutErrorLine, hostOf, statusLine } from './lib/outcome';
import { checkInput, parseInput } from './lib/validate';
import { lazy, openServices, type Services } from './runtime';

const logger = new Logger({ serviceName: FUNCTIONS.restore });
const metrics = createMetrics(FUNCTIONS.restore);

/** Environment this handler needs beyond the plan and vault (core/deployment FUNCTION_ENV). */
export const RESTORE_ENV = ['documentName', 'logGroupName', 'topicArn'] as const;

/** The services restore uses. */
export type RestoreServices = Services<(typeof RESTORE_ENV)[number] | 'vaultBucket'>;

/** Storage classes whose objects must be retrieved before they can be read. */
export const ARCHIVE_CLASSES = ['GLACIER', 'DEEP_ARCHIVE'] as const;

/** Upper bounds of retrieval times (hours) by class and tier, from the S3 documentation. */
export const RETRIEVAL_HOURS: Readonly<Record<string, Partial<Record<RetrievalTier, number>>>> = {
  GLACIER: { Expedited: 5 / 60, Standard: 5, Bulk: 12 },
  DEEP_ARCHIVE: { Standard: 12, Bulk: 48 },
};

type RetrievalTier = 'Expedited' | 'Standard' | 'Bulk';

const INSTANCE_ID = /^(i-[0-9a-f]{8,17}|mi-[0-9a-f]{17})$/;
const TABLE = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/;

const targetSchema = z
  .strictObject({
    /** A host entry of the plan. */
    host: z.string().min(1).optional(),
    instanceIds: z
      .array(z.string().regex(INSTANCE_ID, 'must be an EC2 (i-…) or managed (mi-…) instance id'))
      .min(1)
      .max(50)
      .optional(),
    tags: z.record(z.string().min(1), z.string()).optional(),
  })
  .refine(
    (t) =>
      [t.host, t.instanceIds, t.tags && Object.keys(t.tags).length > 0 ? t.tags : undefined].filter(Boolean)
        .length === 1,
    {
      message: 'give exactly one of host, instanceIds or tags',
    },
  );

/** The restore request payload (docs/functions.md). */
export const restoreRequestSchema = z
  .strictObject({
    job: jobName,
    backupId: z.string().refine(isBackupId, 'must be a backup id like 20241206T020000Z-3f9a1c').optional(),
    latest: z.literal(true).optional(),
    at: isoTime.optional(),
    /** Where to restore; the job's own host when absent. */
    target: targetSchema.optional(),
    mode: z.enum(['scratch', 'replace']).default('scratch'),
    /** Must equal the job name for mode replace. */
    confirm: z.string().optional(),
    /** Database (postgres) or directory (files) to restore into (scratch mode); a new one when absent. */
    into: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[^\0\n\r]+$/, 'must be one line')
      .optional(),
    /** Tables to restore (logical PostgreSQL jobs, scratch mode). */
    tables: z.array(z.string().regex(TABLE, 'must be table or schema.table')).min(1).optional(),
    /** How archived objects are retrieved: S3 retrieval tier and days the copy stays readable. */
    retrieval: z
      .strictObject({
        tier: z.enum(['Standard', 'Bulk', 'Expedited']).default('Standard'),
        days: z.number().int().min(1).max(30).default(7),
      })
      .optional(),
  })
  .superRefine((request, ctx) => {
    const selectors = [request.backupId, request.latest, request.at].filter((v) => v !== undefined).length;
    if (selectors !== 1) {
      ctx.addIssue({ code: 'custom', path: [], message: 'give exactly one of backupId, latest or at' });
    }
    if (request.mode === 'replace') {
      if (request.confirm !== request.job) {
        ctx.addIssue({
          code: 'custom',
          path: ['confirm'],
          message: `must equal the job name '${request.job}' to replace its live data`,
        });
      }
      if (request.into)
        ctx.addIssue({
          code: 'custom',
          path: ['into'],
          message: 'replace restores beside the live database and swaps; it takes no into',
        });
      if (request.tables)
        ctx.addIssue({
          code: 'custom',
          path: ['tables'],
          message: 'replace restores the whole database; restore tables in scratch mode',
        });
    }
  });

/** A validated restore request. */
export type RestoreRequest = z.output<typeof restoreRequestSchema>;

/** What a restore request kept in the vault while archived objects are retrieved. */
export interface PendingRestore {
  requestId: string;
  job: string;
  backupId: string;
  options: AgentRestoreOptions;
  target: CommandTarget;
  /** Data objects of the backup (vault keys) that must be readable first. */
  objects: string[];
  retrieval: { tier: RetrievalTier; days: number };
  requestedAt: string;
  eta: string;
}

/** What restore answered. */
export type RestoreResponse =
  | {
      status: 'started';
      job: string;
      backupId: string;
      mode: 'scratch' | 'replace';
      commandId: string;
      target: string;
    }
  | {
      status: 'retrieving';
      job: string;
      backupId: string;
      requestId: string;
      /** Objects being retrieved. */
      objects: number;
      retrievalTier: RetrievalTier;
      /** When the slowest retrieval should be done (the documented upper bound). */
      eta: string;
    }
  | { status: 'rejected'; errors: string[] }
  /** SSM refused the command (e.g. a target outside the plan's hosts, which the function may not command). */
  | { status: 'not-started'; job: string; backupId: string; reason: string }
  | { status: 'waiting'; job: string; backupId: string; requests: string[]; remaining: number }
  | { status: 'continued'; job: string; backupId: string; commandIds: string[] }
  | { status: 'finished' | 'failed'; job: string; backupId?: string; instanceId: string; alerted: true }
  | { status: 'ignored'; reason: string };

/**
 * Handles a restore request, a retrieval-completed event or a restore command's outcome.
 * @example await handleRestore({ job: 'app-db', latest: true }, services) // { status: 'started', commandId, … }
 */
export async function handleRestore(event: unknown, services: RestoreServices): Promise<RestoreResponse> {
  switch (eventSource(event)) {
    case 'aws.s3':
      return continueAfterRetrieval(event, services);
    case 'aws.ssm':
      return reportRestoreOutcome(event, services);
    default:
      return requestRestore(event, services);
  }
}

/**
 * The request branch: validates, picks the backup, then retrieves or commands.
 * Invalid requests are answered `rejected` with one message per field; nothing is started.
 */
export async function requestRestore(payload: unknown, services: RestoreServices): Promise<RestoreResponse> {
  const checked = checkInput(restoreRequestSchema, payload);
  if (!checked.ok) return { status: 'rejected', errors: checked.issues };
  const request = checked.data;
  const { plan, vault, clock } = services;
  let job: Job;
  let target: CommandTarget;
  try {
    job = findJob(plan, request.job);
    const problems = jobProblems(job, request);
    if (problems.length > 0) return { status: 'rejected', errors: problems };
    target = requestTarget(plan, job, request);
  } catch (error) {
    if (error instanceof PlanError) return { status: 'rejected', errors: [...error.issues] };
    throw error;
  }
  let backupId: string;
  try {
    const selector = request.backupId
      ? { backupId: request.backupId }
      : request.at
        ? { at: new Date(request.at) }
        : { latest: true as const };
    backupId = selectBackup(await listBackups(vault, job.name), selector).backupId;
  } catch (error) {
    if (error instanceof NotFoundError)
      return { status: 'rejected', errors: [`${job.name}: ${error.message}`] };
    throw error;
  }
  const manifest = await readManifest(vault, job.name, backupId);
  const options = agentOptions(request);
  const now = clock.now();

  const heads = await Promise.all(
    manifest.objects.map(async (o) => {
      const key = objectKey(job.name, backupId, o.name);
      const head = await vault.head(key);
      if (!head)
        throw new NotFoundError(`${key} is missing: backup ${backupId} cannot be restored (run verify)`);
      return head;
    }),
  );
  const archived = heads.filter((h) => !isReadable(h, now));
  if (archived.length === 0) {
    let commandId: string;
    try {
      commandId = await commandRestore(services, job, backupId, options, target);
    } catch (error) {
      if (isRetryableAwsError(error)) throw error;
      const reason = `Systems Manager refused the restore command: ${describeAwsError(error)}`;
      services.logger.warn('restore not started', { job: job.name, backupId, reason });
      return { status: 'not-started', job: job.name, backupId, reason };
    }
    services.logger.info('restore commanded', {
      job: job.name,
      backupId,
      commandId,
      target: describeTarget(target),
    });
    return {
      status: 'started',
      job: job.name,
      backupId,
      mode: request.mode,
      commandId,
      target: describeTarget(target),
    };
  }

  const retrieval = {
    tier: request.retrieval?.tier ?? 'Standard',
    days: request.retrieval?.days ?? 7,
  } as const;
  const unavailable = archived.filter((h) => RETRIEVAL_HOURS[h.storageClass]?.[retrieval.tier] === undefined);
  if (unavailable.length > 0) {
    return {
      status: 'rejected',
      errors: [
        `retrieval.tier: ${retrieval.tier} retrieval is not available for ${[...new Set(unavailable.map((h) => h.storageClass))].join(', ')} objects; use Standard or Bulk`,
      ],
    };
  }
  for (const head of archived) {
    if (!head.restore) await vault.requestRestore(head.key, retrieval.days, retrieval.tier);
  }
  const hours = Math.max(...archived.map((h) => RETRIEVAL_HOURS[h.storageClass]?.[retrieval.tier] ?? 48));
  const eta = new Date(now.getTime() + hours * 3_600_000).toISOString();
  const requestId = `${now.toISOString().replace(/[-:.]/g, '').slice(0, 15)}Z-${randomBytes(4).toString('hex')}`;
  const pending: PendingRestore = {
    requestId,
    job: job.name,
    backupId,
    options,
    target,
    objects: heads.map((h) => h.key),
    retrieval,
    requestedAt: now.toISOString(),
    eta,
  };
  await services.vault.put(
    restoreRequestKey(job.name, backupId, requestId),
    readableOf(JSON.stringify(pending, null, 2)),
    {
      contentType: 'application/json',
    },
  );
  services.logger.info('retrieval started; restore continues when S3 reports it done', {
    job: job.name,
    backupId,
    requestId,
    objects: archived.length,
    eta,
  });
  return {
    status: 'retrieving',
    job: job.name,
    backupId,
    requestId,
    objects: archived.length,
    retrievalTier: retrieval.tier,
    eta,
  };
}

/** Job-dependent rules: tables and replace only for logical PostgreSQL jobs. */
function jobProblems(job: Job, request: RestoreRequest): string[] {
  const problems: string[] = [];
  if (request.tables && job.source.kind !== 'postgres') {
    problems.push(
      `tables: only logical PostgreSQL jobs restore table by table ('${job.name}' is ${job.source.kind})`,
    );
  }
  if (request.mode === 'replace' && job.source.kind !== 'postgres') {
    problems.push(
      `mode: only PostgreSQL jobs can be replaced in place; restore '${job.name}' in scratch mode into a directory`,
    );
  }
  return problems;
}

/** The host to command: the request's, or the job's own host. */
function requestTarget(plan: Plan, job: Job, request: RestoreRequest): CommandTarget {
  const target = request.target;
  if (!target) return jobTarget(plan, job);
  if (target.host) return targetOfHost(plan, target.host, 'target.host');
  // One host at a time, and stop at the first failure: a restore is not a fleet operation.
  return { instanceIds: target.instanceIds, tags: target.tags, maxConcurrency: 1, maxErrors: 0 };
}

function agentOptions(request: RestoreRequest): AgentRestoreOptions {
  const options: AgentRestoreOptions = {};
  if (request.into) options.target = request.into;
  if (request.tables) options.tables = request.tables;
  if (request.mode === 'replace') {
    options.replace = true;
    options.confirm = request.confirm;
  }
  return options;
}

/** Whether an object can be read now: not archived, or archived with a finished, unexpired retrieval. */
export function isReadable(object: StoredObject, now: Date): boolean {
  if (!(ARCHIVE_CLASSES as readonly string[]).includes(object.storageClass)) return true;
  return object.restore?.ongoing === false && (object.restore.expiresAt ?? now) >= now;
}

async function commandRestore(
  services: RestoreServices,
  job: Job,
  backupId: string,
  options: AgentRestoreOptions,
  target: CommandTarget,
): Promise<string> {
  return sendAgentCommand(
    services.ssm,
    { documentName: services.env.documentName, logGroupName: services.env.logGroupName },
    {
      action: 'restore',
      job: job.name,
      backupId,
      options: Object.keys(options).length > 0 ? JSON.stringify(options) : undefined,
      target,
      timeoutSeconds: job.timeout,
    },
  );
}

/**
 * The retrieval-done branch: continues each pending request of the backup the retrieved object belongs
 * to, once all its objects are readable.
 */
export async function continueAfterRetrieval(
  event: unknown,
  services: RestoreServices,
): Promise<RestoreResponse> {
  const parsed = parseInput(restoreCompletedEventSchema, event, 'restore completed event');
  const bucket = parsed.detail.bucket.name;
  if (bucket !== services.env.vaultBucket)
    return { status: 'ignored', reason: `bucket ${bucket} is not the vault` };
  const key = decodeURIComponent(parsed.detail.object.key.replace(/\+/g, ' '));
  const backup = parseBackupKey(key);
  if (!backup) return { status: 'ignored', reason: `${key} is not part of a backup` };
  const { vault, clock, claims, plan } = services;
  const prefix = restoreRequestPrefix(backup.job, backup.backupId);
  const files: string[] = [];
  for await (const object of vault.list(prefix)) files.push(object.key);
  const pending = files.filter(
    (k) => k.endsWith('.json') && !files.includes(`${k.slice(0, -'.json'.length)}.started`),
  );
  if (pending.length === 0)
    return { status: 'ignored', reason: `no pending restore of ${backup.job}/${backup.backupId}` };

  const now = clock.now();
  const commandIds: string[] = [];
  let remaining = 0;
  for (const requestKey of pending) {
    const request = JSON.parse(await readText(await vault.get(requestKey))) as PendingRestore;
    const heads = await Promise.all(request.objects.map((k) => vault.head(k)));
    const waiting = heads.filter((h) => !h || !isReadable(h, now)).length;
    if (waiting > 0) {
      remaining += waiting;
      continue;
    }
    const startedKey = restoreStartedKey(request.job, request.backupId, request.requestId);
    if (!(await claims.claim(startedKey, JSON.stringify({ continuedAt: now.toISOString() })))) continue;
    const job = findJob(plan, request.job);
    let commandId: string;
    try {
      commandId = await commandRestore(services, job, request.backupId, request.options, request.target);
    } catch (error) {
      if (isRetryableAwsError(error)) {
        await claims.release(startedKey);
        throw error;
      }
      await alertContinuation(services, request, 'critical', `Restore could not continue: ${request.job}`, [
        `The archived objects of ${request.backupId} are retrieved, but Systems Manager refused the restore command: ${describeAwsError(error)}`,
      ]);
      continue;
    }
    commandIds.push(commandId);
    await alertContinuation(
      services,
      request,
      'info',
      `Restore continues: ${request.job} ${request.backupId}`,
      [
        `All ${request.objects.length} object(s) are retrieved (requested ${request.requestedAt}); restore command ${commandId} sent to ${describeTarget(request.target)}.`,
      ],
    );
  }
  if (commandIds.length === 0 && remaining > 0) {
    return { status: 'waiting', job: backup.job, backupId: backup.backupId, requests: pending, remaining };
  }
  return { status: 'continued', job: backup.job, backupId: backup.backupId, commandIds };
}

async function alertContinuation(
  services: RestoreServices,
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
              'Fix the target host, then invoke the restore function again with the same request: the objects stay readable for the requested days.',
            ],
      source: FUNCTIONS.restore,
      at: services.clock.now().toISOString(),
    }),
  );
}

/** The outcome branch: tells the alert topic how a restore command ended on a host. */
export async function reportRestoreOutcome(
  event: unknown,
  services: RestoreServices,
): Promise<RestoreResponse> {
  const parsed = parseInput(commandStatusEventSchema, event, 'restore command event');
  const finished = await readFinishedCommand(parsed, services, 'restore');
  if ('ignored' in finished) return { status: 'ignored', reason: finished.ignored };
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
        invocation.errorLine ? `Agent error: ${invocation.errorLine}` : failureWithoutErrorLine(invocation),
        statusLine(invocation),
      ];
  const severity = !succeeded ? 'critical' : findings.some((f) => f.severity !== 'info') ? 'warning' : 'info';
  await publishAlert(
    services.sns,
    services.env.topicArn,
    makeAlert({
      severity,
      title: succeeded ? `Restore finished: ${job} on ${host}` : `Restore failed: ${job} on ${host}`,
      plan: services.plan.name,
      job,
      host,
      backupId: result.ok ? result.data.backupId : parameters.backupId,
      details,
      findings,
      nextSteps: succeeded
        ? [
            'Check the restored data, then point the application at it (scratch) or confirm the swap (replace).',
          ]
        : [
            `Read the full output in ${outputLocation(services.env.logGroupName, invocation.commandId, invocation.instanceId)}.`,
            'Nothing live was changed: a failed restore removes what it created. Fix the cause and invoke restore again.',
          ],
      source: FUNCTIONS.restore,
      at: services.clock.now().toISOString(),
    }),
  );
  return {
    status: succeeded ? 'finished' : 'failed',
    job,
    backupId: result.ok ? result.data.backupId : parameters.backupId,
    instanceId: invocation.instanceId,
    alerted: true,
  };
}

async function readText(stream: AsyncIterable<Buffer | string>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(typeof part === 'string' ? Buffer.from(part) : part);
  return Buffer.concat(parts).toString('utf8');
}

function readableOf(text: string) {
  return Readable.from([Buffer.from(text)]);
}

/**
 * The handler over given services (tests pass mocked clients and a real vault).
 * @example export const handler = createRestoreHandler(async () => services)
 */
export function createRestoreHandler(getServices: () => Promise<RestoreServices>) {
  return async (event: unknown, context?: Context): Promise<RestoreResponse> => {
    const services = await getServices();
    return runLogged(services.logger, context, FUNCTIONS.restore, async () => {
      const response = await handleRestore(event, services);
      if (response.status === 'rejected')
        services.logger.warn('restore request rejected', { errors: response.errors });
      return response;
    });
  };
}

/** Lambda entry: a direct invocation with a restore request, or the S3 and SSM events above. */
export const handler = createRestoreHandler(
  lazy(() => openServices(process.env, RESTORE_ENV, { logger, metrics })),
);
