/**
 * restore-request — a restore on demand (`aws lambda invoke` with the payload of docs/functions.md):
 * validated field by field, the backup picked (by id, latest, or the newest that started at or before
 * `at`). When any of its data objects is in Glacier Flexible Retrieval or Deep Archive, their retrieval
 * is started, the request is kept in the vault at `restores/<job>/<backupId>/<requestId>.json` (Standard
 * class) for restore-continue, and the answer is `{status: "retrieving", eta}`. Otherwise the target host
 * is commanded at once (`strongbox restore --options …`) and the answer carries the command id.
 * restore-report tells the alert topic how the command ended.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { describeAwsError, isRetryableAwsError } from '#adapters/aws/errors';
import { isBackupId } from '#core/backup-id';
import { type BackupListing, listBackups, pickableAsLatest, readManifest, selectBackup } from '#core/catalog';
import { type AgentRestoreOptions, DOCUMENT_OPTIONS_PATTERN, FUNCTIONS } from '#core/deployment';
import { NotFoundError, PlanError } from '#core/errors';
import { objectKey } from '#core/layout';
import type { Manifest } from '#core/manifest';
import { findJob, type Job, type Plan } from '#core/plan';
import { parseRecoveryTarget } from '#core/recovery';
import { RETRIEVAL_HOURS } from '#core/storage-classes';
import { type CommandTarget, describeTarget, jobTarget, targetOfHost } from './lib/commands';
import { isoTime, jobName } from './lib/events';
import { runLogged } from './lib/handler';
import { createMetrics } from './lib/metrics';
import {
  commandRestore,
  isReadable,
  newRequestId,
  RETRIEVAL_TIERS,
  restoreJobProblems,
  savePendingRestore,
} from './lib/restore-requests';
import { checkInput } from './lib/validate';
import { lazy, openServices, type Services } from './runtime';

const logger = new Logger({ serviceName: FUNCTIONS.restoreRequest });
const metrics = createMetrics(FUNCTIONS.restoreRequest);

/** Environment this handler needs beyond the plan and vault (core/deployment FUNCTION_ENV). */
export const RESTORE_REQUEST_ENV = ['documentName', 'logGroupName'] as const;

/** The services restore-request uses. */
export type RestoreRequestServices = Services<(typeof RESTORE_REQUEST_ENV)[number]>;

/** Backups a time or latest request looks through, newest first, for one whose data still exists. */
const MAX_CANDIDATES = 100;

const INSTANCE_ID = /^(i-[0-9a-f]{8,17}|mi-[0-9a-f]{17})$/;
// No `$` (PostgreSQL allows it in names; the SSM document's options pattern does not).
const TABLE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;
/** What `into` may hold so that its JSON passes DOCUMENT_OPTIONS_PATTERN (a `"` would become `\"`). */
const INTO = /^[A-Za-z0-9 _.,:;'@%+=/()*?!#<>{}[\]-]+$/;
const OPTIONS_PATTERN = new RegExp(DOCUMENT_OPTIONS_PATTERN);

/** An absolute path whose JSON passes DOCUMENT_OPTIONS_PATTERN (no `"`, `$`, `\\`, control or non-ASCII). */
const absolutePath = z
  .string()
  .regex(
    INTO,
    "may hold letters, digits, space and _.,:;'@%+=/()*?!#<>{}[]- only (the SSM document's allowedPattern)",
  )
  .refine((p) => p.startsWith('/'), 'must be an absolute path')
  .refine((p) => !p.split('/').includes('..'), "must not contain '..'");

/**
 * What the restore passes to the agent beyond target, tables and mode, by kind (the CLI restore's flags):
 * point-in-time jobs `to`, `start`, `archive`, `tablespaceMap`; files jobs `paths`, `inPlace`, `delete`.
 */
const optionsSchema = z.strictObject({
  /** `--to`: latest, time:<ISO time with offset>, lsn:<lsn>, xid:<xid> or name:<restore point>. */
  to: z
    .string()
    .min(1)
    .superRefine((text, ctx) => {
      try {
        parseRecoveryTarget(text);
      } catch (error) {
        ctx.addIssue({
          code: 'custom',
          message:
            error instanceof PlanError
              ? error.issues.join('; ').replace(/^recovery target: /, '')
              : String(error),
        });
      }
      if (!INTO.test(text))
        ctx.addIssue({
          code: 'custom',
          message: "may hold letters, digits, space and _.,:;'@%+=/()*?!#<>{}[]- only",
        });
    })
    .optional(),
  /** `--start`: start the restored copy and wait until it is promoted. */
  start: z.boolean().optional(),
  /** `--archive`: the copy archives its new timeline into the job's WAL archive from promotion on. */
  archive: z.boolean().optional(),
  /** `--path`: absolute paths (globs allowed) to restore instead of everything. */
  paths: z.array(absolutePath).min(1).optional(),
  /** `--in-place`: restore over the original locations (needs `confirm`: the job name). */
  inPlace: z.boolean().optional(),
  /** `--delete`, with inPlace: also move away what is not in the backup. */
  delete: z.boolean().optional(),
  /** `--tablespace-map`: a physical backup's tablespaces by original location → new location. */
  tablespaceMap: z.record(absolutePath, absolutePath).optional(),
});

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
      .regex(
        INTO,
        "may hold letters, digits, space and _.,:;'@%+=/()*?!#<>{}[]- only (the SSM document's allowedPattern)",
      )
      .optional(),
    /** Tables to restore (logical PostgreSQL jobs, scratch mode). */
    tables: z.array(z.string().regex(TABLE, 'must be table or schema.table')).min(1).optional(),
    /** Options of the agent's restore for the job's kind (point-in-time and files jobs). */
    options: optionsSchema.optional(),
    /** How archived objects are retrieved: S3 retrieval tier and days the copy stays readable. */
    retrieval: z
      .strictObject({
        tier: z.enum(RETRIEVAL_TIERS).default('Standard'),
        days: z.number().int().min(1).max(30).default(7),
      })
      .optional(),
  })
  .superRefine((request, ctx) => {
    const json = JSON.stringify(agentOptions(request));
    if (json !== '{}' && !OPTIONS_PATTERN.test(json)) {
      ctx.addIssue({
        code: 'custom',
        path: request.tables ? ['tables'] : request.options?.paths ? ['options', 'paths'] : ['into'],
        message: `the restore options would be ${json.length} characters of JSON; the SSM document takes at most 4002 of letters, digits, space and _.,:;"'@%+=/()*?!#<>{}[]-`,
      });
    }
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
    const options = request.options ?? {};
    if (options.archive && !options.to)
      ctx.addIssue({
        code: 'custom',
        path: ['options', 'archive'],
        message: 'only a point-in-time restore (options.to) archives a new timeline',
      });
    if (options.to && request.mode === 'replace')
      ctx.addIssue({
        code: 'custom',
        path: ['options', 'to'],
        message: 'a point-in-time restore goes into a new data directory; it cannot replace',
      });
    if (options.delete && !options.inPlace)
      ctx.addIssue({ code: 'custom', path: ['options', 'delete'], message: 'only with options.inPlace' });
    if (options.inPlace) {
      if (request.confirm !== request.job)
        ctx.addIssue({
          code: 'custom',
          path: ['confirm'],
          message: `must equal the job name '${request.job}' to restore over its original paths`,
        });
      if (request.into)
        ctx.addIssue({
          code: 'custom',
          path: ['into'],
          message: 'an in-place restore writes to the original paths; it takes no into',
        });
      if (request.mode === 'replace')
        ctx.addIssue({ code: 'custom', path: ['options', 'inPlace'], message: 'not with mode replace' });
    }
  });

/** A validated restore request. */
export type RestoreRequest = z.output<typeof restoreRequestSchema>;

/** What restore-request answered. */
export type RestoreRequestResponse =
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
      retrievalTier: (typeof RETRIEVAL_TIERS)[number];
      /** When the slowest retrieval should be done (the documented upper bound). */
      eta: string;
    }
  | { status: 'rejected'; errors: string[] }
  /** SSM refused the command (e.g. a target outside the plan's hosts, which the function may not command). */
  | { status: 'not-started'; job: string; backupId: string; reason: string };

/**
 * Validates a request, picks the backup, then retrieves or commands. Invalid requests are answered
 * `rejected` with one message per field; nothing is started.
 * @example await requestRestore({ job: 'app-db', latest: true }, services) // { status: 'started', commandId, … }
 */
export async function requestRestore(
  payload: unknown,
  services: RestoreRequestServices,
): Promise<RestoreRequestResponse> {
  const checked = checkInput(restoreRequestSchema, payload);
  if (!checked.ok) return { status: 'rejected', errors: checked.issues };
  const request = checked.data;
  const { plan, vault, clock } = services;
  let job: Job;
  let target: CommandTarget;
  try {
    job = findJob(plan, request.job);
    const problems = restoreJobProblems(job, request);
    if (problems.length > 0) return { status: 'rejected', errors: problems };
    target = requestTarget(plan, job, request);
  } catch (error) {
    if (error instanceof PlanError) return { status: 'rejected', errors: [...error.issues] };
    throw error;
  }
  const listing = await listBackups(vault, job.name);
  let first: BackupListing;
  try {
    const selector = request.backupId
      ? { backupId: request.backupId }
      : request.at
        ? { at: new Date(request.at) }
        : { latest: true as const };
    first = selectBackup(listing, selector);
  } catch (error) {
    if (error instanceof NotFoundError)
      return { status: 'rejected', errors: [`${job.name}: ${error.message}`] };
    throw error;
  }
  // Manifests are kept while data follows its tier's retention: a backup whose data expired is no
  // candidate. By id: that backup or nothing; latest or at: the newest restorable one at or before.
  const candidates = request.backupId
    ? [first]
    : listing
        .filter((b) => b.complete && b.startedAt <= first.startedAt)
        .reverse()
        .slice(0, MAX_CANDIDATES);
  const skipped: string[] = [];
  let chosen: { backupId: string; manifest: Manifest } | undefined;
  for (const candidate of candidates) {
    const manifest = await readManifest(vault, job.name, candidate.backupId);
    // A safety backup holds what a replace was about to overwrite: asked for by id only, never "latest".
    if (!request.backupId && !pickableAsLatest(manifest)) {
      skipped.push(`${candidate.backupId}: a safety backup (taken by restore --replace); ask for it by id`);
      continue;
    }
    const stored = new Set(candidate.objects.map((o) => o.key));
    const missing = manifest.objects
      .map((o) => objectKey(job.name, candidate.backupId, o.name))
      .filter((key) => !stored.has(key));
    if (missing.length === 0) {
      chosen = { backupId: candidate.backupId, manifest };
      break;
    }
    skipped.push(
      `${candidate.backupId}: its data is gone (expired by its tier's retention, or deleted): ${missing[0]}${missing.length > 1 ? ` and ${missing.length - 1} more` : ''}`,
    );
  }
  if (!chosen) {
    const scope = request.backupId
      ? `backup ${request.backupId} cannot be restored`
      : `no restorable backup at or before ${first.backupId} among the newest ${candidates.length}`;
    return { status: 'rejected', errors: [`${job.name}: ${scope}`, ...skipped.slice(0, 5)] };
  }
  const { backupId, manifest } = chosen;
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
      commandId = await commandRestore(services.ssm, services.env, { job, backupId, options, target });
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
  const requestId = newRequestId(now);
  await savePendingRestore(vault, {
    requestId,
    job: job.name,
    backupId,
    options,
    target,
    objects: heads.map((h) => h.key),
    retrieval,
    requestedAt: now.toISOString(),
    eta,
  });
  services.logger.info('retrieval started; restore-continue goes on when S3 reports it done', {
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

/** The host to command: the request's, or the job's own host. */
function requestTarget(plan: Plan, job: Job, request: RestoreRequest): CommandTarget {
  const target = request.target;
  if (!target) return jobTarget(plan, job);
  if (target.host) return targetOfHost(plan, target.host, 'target.host');
  // One host at a time, and stop at the first failure: a restore is not a fleet operation.
  return { instanceIds: target.instanceIds, tags: target.tags, maxConcurrency: 1, maxErrors: 0 };
}

/** The agent's `--options`: only what the request set, with the names the CLI restore reads. */
function agentOptions(
  request: Pick<RestoreRequest, 'into' | 'tables' | 'mode' | 'confirm' | 'options'>,
): AgentRestoreOptions {
  const options: AgentRestoreOptions = {};
  if (request.into) options.target = request.into;
  if (request.tables) options.tables = request.tables;
  if (request.mode === 'replace') {
    options.replace = true;
    options.confirm = request.confirm;
  }
  const { to, start, archive, tablespaceMap, paths, inPlace, delete: remove } = request.options ?? {};
  if (to !== undefined) options.to = to;
  if (start) options.start = true;
  if (archive) options.archive = true;
  if (tablespaceMap && Object.keys(tablespaceMap).length > 0) options.tablespaceMap = tablespaceMap;
  if (paths) options.paths = paths;
  if (inPlace) {
    options.inPlace = true;
    options.confirm = request.confirm;
  }
  if (remove) options.delete = true;
  return options;
}

/**
 * The handler over given services (tests pass mocked clients and a real vault).
 * @example export const handler = createRestoreRequestHandler(async () => services)
 */
export function createRestoreRequestHandler(getServices: () => Promise<RestoreRequestServices>) {
  return async (event: unknown, context?: Context): Promise<RestoreRequestResponse> => {
    const services = await getServices();
    return runLogged(services.logger, context, FUNCTIONS.restoreRequest, async () => {
      const response = await requestRestore(event, services);
      if (response.status === 'rejected')
        services.logger.warn('restore request rejected', { errors: response.errors });
      return response;
    });
  };
}

/** Lambda entry: a direct invocation with a restore request (`aws lambda invoke`). */
export const handler = createRestoreRequestHandler(
  lazy(() => openServices(process.env, RESTORE_REQUEST_ENV, { logger, metrics })),
);
