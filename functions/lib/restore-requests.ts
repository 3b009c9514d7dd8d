/**
 * What restore-request and restore-continue share: the pending restore requests kept in the vault while
 * archived objects are retrieved (`restores/<job>/<backupId>/<requestId>.json`, Standard class: written
 * by restore-request, read back and validated by restore-continue), whether an object can be read now,
 * the restore command both send, and the job-dependent rules of a request.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { z } from 'zod';
import type { RetrievalTier } from '#adapters/vaults/s3';
import { isBackupId } from '#core/backup-id';
import { type AgentRestoreOptions, agentRestoreOptionsSchema } from '#core/deployment';
import { parseBackupKey, restoreRequestKey, restoreRequestPrefix, restoreStartedKey } from '#core/layout';
import type { Job } from '#core/plan';
import type { StoredObject, Vault } from '#core/ports';
import { sourceSpec } from '#core/sources/index';
import { needsRetrieval } from '#core/storage-classes';
import { type CommandTarget, commandTargetSchema, type DocumentConfig, sendAgentCommand } from './commands';
import { isoTime, jobName } from './events';
import { checkInput } from './validate';

/** S3 retrieval tiers a request may ask for. */
export const RETRIEVAL_TIERS = ['Standard', 'Bulk', 'Expedited'] as const satisfies readonly RetrievalTier[];

/**
 * A restore request kept in the vault while its archived objects are retrieved. Read back by
 * restore-continue hours later, possibly by a newer deployment of it: unknown fields are dropped, and
 * every field it acts on (the target it commands, the options it passes) is checked again.
 */
export const pendingRestoreSchema = z.object({
  requestId: z.string().min(1),
  job: jobName,
  backupId: z.string().refine(isBackupId, 'must be a backup id like 20241206T020000Z-3f9a1c'),
  options: agentRestoreOptionsSchema,
  target: commandTargetSchema,
  /** Data objects of the backup (vault keys) that must be readable first. */
  objects: z.array(z.string().min(1)).min(1),
  retrieval: z.strictObject({ tier: z.enum(RETRIEVAL_TIERS), days: z.number().int().min(1).max(30) }),
  requestedAt: isoTime,
  /** When the slowest retrieval should be done (the documented upper bound). */
  eta: isoTime,
});

/** A pending restore request. */
export type PendingRestore = z.output<typeof pendingRestoreSchema>;

/**
 * A new request id: the time it was made and 8 hex digits, e.g. `20241206T090000Z-9f1c2a7b`.
 * @example newRequestId(new Date('2024-12-06T09:00:00Z'))
 */
export function newRequestId(now: Date): string {
  return `${now.toISOString().replace(/[-:.]/g, '').slice(0, 15)}Z-${randomBytes(4).toString('hex')}`;
}

/**
 * Keeps a pending request in the vault.
 * @returns its key, `restores/<job>/<backupId>/<requestId>.json`.
 */
export async function savePendingRestore(vault: Vault, pending: PendingRestore): Promise<string> {
  const key = restoreRequestKey(pending.job, pending.backupId, pending.requestId);
  await vault.put(key, Readable.from([Buffer.from(JSON.stringify(pending, null, 2))]), {
    contentType: 'application/json',
  });
  return key;
}

/** A pending request as listed: its key, its id, and the key of the marker that it was handled. */
export interface PendingEntry {
  key: string;
  requestId: string;
  /** Create-only marker: the request was continued, or reported as unreadable (core/layout). */
  startedKey: string;
}

/**
 * The requests of one backup that were not handled yet (no `.started` marker beside them). Keys below
 * the prefix that are not request keys of the layout are returned as `strays`: nothing of Strongbox
 * wrote them.
 */
export async function listPendingRestores(
  vault: Vault,
  job: string,
  backupId: string,
): Promise<{ pending: PendingEntry[]; strays: string[] }> {
  const prefix = restoreRequestPrefix(job, backupId);
  const keys = new Set<string>();
  for await (const object of vault.list(prefix)) keys.add(object.key);
  const pending: PendingEntry[] = [];
  const strays: string[] = [];
  for (const key of keys) {
    if (!key.endsWith('.json')) continue;
    const requestId = key.slice(prefix.length, -'.json'.length);
    let startedKey: string;
    try {
      if (restoreRequestKey(job, backupId, requestId) !== key) throw new RangeError(key);
      startedKey = restoreStartedKey(job, backupId, requestId);
    } catch {
      strays.push(key);
      continue;
    }
    if (!keys.has(startedKey)) pending.push({ key, requestId, startedKey });
  }
  return { pending: pending.sort((a, b) => a.key.localeCompare(b.key)), strays };
}

/**
 * Reads a pending request back and checks it: valid JSON, every field as `pendingRestoreSchema` says,
 * and about the backup it is stored under (same job, backup and request id, objects of that backup).
 * @returns the request, or every problem found (one line each). A vault failure throws.
 */
export async function readPendingRestore(
  vault: Vault,
  entry: PendingEntry,
  backup: { job: string; backupId: string },
): Promise<{ ok: true; request: PendingRestore } | { ok: false; problems: string[] }> {
  let data: unknown;
  try {
    data = JSON.parse(await readText(await vault.get(entry.key)));
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return { ok: false, problems: [`not JSON (${error.message})`] };
  }
  const checked = checkInput(pendingRestoreSchema, data);
  if (!checked.ok) return { ok: false, problems: checked.issues };
  const request = checked.data;
  const problems: string[] = [];
  if (request.job !== backup.job)
    problems.push(`job: '${request.job}', but it is stored under ${backup.job}`);
  if (request.backupId !== backup.backupId)
    problems.push(`backupId: ${request.backupId}, but it is stored under ${backup.backupId}`);
  if (request.requestId !== entry.requestId)
    problems.push(`requestId: ${request.requestId}, but the key names ${entry.requestId}`);
  request.objects.forEach((key, i) => {
    const parsed = parseBackupKey(key);
    if (parsed?.job !== backup.job || parsed.backupId !== backup.backupId)
      problems.push(`objects[${i}]: ${key} is not an object of backup ${backup.job}/${backup.backupId}`);
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, request };
}

/** Whether an object can be read now: not archived, or archived with a finished, unexpired retrieval. */
export function isReadable(object: StoredObject, now: Date): boolean {
  if (!needsRetrieval(object.storageClass)) return true;
  return object.restore?.ongoing === false && (object.restore.expiresAt ?? now) >= now;
}

/**
 * Commands the target to restore a backup of a job (`strongbox restore --options …`), within the job's
 * time budget.
 * @returns the command id.
 */
export async function commandRestore(
  ssm: SSMClient,
  doc: DocumentConfig,
  restore: { job: Job; backupId: string; options: AgentRestoreOptions; target: CommandTarget },
): Promise<string> {
  const { job, backupId, options, target } = restore;
  return sendAgentCommand(ssm, doc, {
    action: 'restore',
    job: job.name,
    backupId,
    options: Object.keys(options).length > 0 ? JSON.stringify(options) : undefined,
    target,
    timeoutSeconds: job.timeout,
  });
}

/**
 * The rules of a restore request that depend on what the job's source can do (core/sources
 * capabilities): tables only where the source restores table by table, replace only where it can be
 * replaced in place, options.to/start/archive/tablespaceMap only for point-in-time jobs, options.paths and inPlace only
 * where the source restores path by path and in place.
 * @returns one message per problem, naming the field.
 */
export function restoreJobProblems(
  job: Job,
  request: {
    tables?: string[];
    mode: 'scratch' | 'replace';
    options?: {
      to?: string;
      start?: boolean;
      archive?: boolean;
      tablespaceMap?: Record<string, string>;
      paths?: string[];
      inPlace?: boolean;
    };
  },
): string[] {
  const { capabilities, kind, targetNoun } = sourceSpec(job.source.kind);
  const problems: string[] = [];
  const options = request.options ?? {};
  for (const name of ['to', 'start', 'archive', 'tablespaceMap'] as const) {
    if (options[name] !== undefined && !capabilities.pointInTime)
      problems.push(
        `options.${name}: ${kind} backups do not recover to a point in time ('${job.name}' is ${kind})`,
      );
  }
  if (options.paths && !capabilities.paths)
    problems.push(
      `options.paths: ${kind} backups cannot be restored path by path ('${job.name}' is ${kind})`,
    );
  if (options.inPlace && !capabilities.inPlace)
    problems.push(
      `options.inPlace: ${kind} backups cannot be restored in place; restore '${job.name}' into a ${targetNoun}`,
    );
  if (request.tables && !capabilities.tables) {
    problems.push(`tables: ${kind} backups cannot be restored table by table ('${job.name}' is ${kind})`);
  }
  if (request.mode === 'replace' && !capabilities.replace) {
    problems.push(
      `mode: ${kind} jobs cannot be replaced in place; restore '${job.name}' in scratch mode into a ${targetNoun}`,
    );
  }
  return problems;
}

/** Reads a small object into a string. */
async function readText(stream: AsyncIterable<Buffer | string>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(typeof part === 'string' ? Buffer.from(part) : part);
  return Buffer.concat(parts).toString('utf8');
}
