/**
 * Restoring a backup, and the restore drill built on it.
 *
 * Nothing that was there before is ever damaged: a restore writes into a target it creates (a scratch
 * database or an empty directory) and removes that target again if anything fails — a wrong key, a
 * flipped byte, a truncated object, a tool exiting non-zero, a failed check. `replace` takes a safety
 * backup of the live database first, restores beside it, checks the copy against the manifest, then swaps
 * names and keeps the old database under a new name: the live database is never dropped.
 */
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBackup } from '#agent/backup';
import { settleAll } from '#agent/pipeline/flow';
import { openBackupData } from '#agent/read-backup';
import type { Runtime } from '#agent/runtime';
import type { SourceContext } from '#agent/sources/context';
import { checkFiles, restoreFiles } from '#agent/sources/files';
import {
  checkPostgres,
  databaseExists,
  dropDatabase,
  restorePostgres,
  swapDatabases,
} from '#agent/sources/postgres';
import { stampedDatabaseName } from '#agent/sources/postgres-names';
import { findBackup } from '#core/catalog';
import type { Finding } from '#core/checks';
import { PlanError, RestoreError } from '#core/errors';
import type { Manifest } from '#core/manifest';
import type { Job, PostgresSourceConfig } from '#core/plan';

/** What to restore and where. */
export interface RestoreRequest {
  /** Backup to restore; the newest complete one when absent. */
  backupId?: string;
  /** Database (postgres) or directory (files) to restore into; a new scratch target when absent. */
  target?: string;
  /** Tables to restore (postgres only). */
  tables?: string[];
  /** Replace the live database (postgres only); needs `confirm` equal to the job name. */
  replace?: boolean;
  confirm?: string;
}

/** What a restore did. */
export interface RestoreResult {
  job: string;
  backupId: string;
  kind: Manifest['kind'];
  mode: 'scratch' | 'replace';
  /** Where the data now is: the scratch target, or the live database name after a replace. */
  target: string;
  /** After a replace: the name the previous live database was kept under. */
  keptAs?: string;
  /** After a replace: the safety backup taken before anything changed. */
  safetyBackupId?: string;
  sourceBytes: number;
  durationSeconds: number;
  /** Checks of the restored data against the manifest; empty when everything matched. */
  findings: Finding[];
}

/**
 * Validates a restore request against the job before anything starts.
 * @throws PlanError naming the bad field.
 */
export function validateRestoreRequest(job: Job, request: RestoreRequest): void {
  if (request.replace && job.source.kind !== 'postgres') {
    throw new PlanError([
      `replace: only postgres jobs can be replaced in place; restore '${job.name}' into a --target directory`,
    ]);
  }
  if (request.replace && request.confirm !== job.name) {
    throw new PlanError([`confirm: replacing the live database needs --confirm ${job.name}`]);
  }
  if (request.replace && request.target) {
    throw new PlanError(['target: --replace restores beside the live database; it takes no --target']);
  }
  if (request.tables?.length && job.source.kind !== 'postgres') {
    throw new PlanError([
      `tables: only postgres backups can be restored table by table ('${job.name}' is ${job.source.kind})`,
    ]);
  }
  if (request.replace && request.tables?.length) {
    throw new PlanError([
      'tables: --replace restores the whole database; restore tables into a scratch --target instead',
    ]);
  }
}

/**
 * Restores a backup of a job.
 * @example await runRestore(runtime, findJob(plan, 'appdb'), { tables: ['public.orders'] })
 */
export async function runRestore(
  runtime: Runtime,
  job: Job,
  request: RestoreRequest,
): Promise<RestoreResult> {
  validateRestoreRequest(job, request);
  const started = Date.now();
  const manifest = await findBackup(runtime.vault, job.name, request.backupId);
  if (manifest.kind !== job.source.kind) {
    throw new RestoreError(
      `backup ${manifest.backupId} is a ${manifest.kind} backup but job '${job.name}' is ${job.source.kind}`,
    );
  }
  runtime.log(`restore ${job.name} ${manifest.backupId}${request.replace ? ' (replace)' : ''}`);
  const ctx: SourceContext = { env: runtime.env };
  const base = { job: job.name, backupId: manifest.backupId, kind: manifest.kind };

  if (job.source.kind === 'files') {
    const target = request.target ?? join(tmpdir(), `strongbox-restore-${job.name}-${manifest.backupId}`);
    const { sourceBytes } = await restoreFilesFrom(runtime, manifest, target);
    const findings = manifest.source.kind === 'files' ? await checkFiles(manifest.source, target) : [];
    return { ...base, mode: 'scratch', target, sourceBytes, durationSeconds: seconds(started), findings };
  }

  const config = job.source;
  if (!request.replace) {
    const target = request.target ?? stampedDatabaseName(config.database, 'restore', runtime.clock.now());
    const { sourceBytes } = await restoreDatabaseFrom(runtime, config, manifest, target, request.tables, ctx);
    const findings = await checkRestoredDatabase(config, target, manifest, request.tables, ctx);
    return { ...base, mode: 'scratch', target, sourceBytes, durationSeconds: seconds(started), findings };
  }

  // Replace: safety backup, restore beside, check, swap, keep the old one.
  const safety = await runBackup(runtime, job);
  runtime.log(`safety backup ${safety.backupId} taken`);
  const beside = stampedDatabaseName(config.database, 'restore', runtime.clock.now());
  const { sourceBytes } = await restoreDatabaseFrom(runtime, config, manifest, beside, undefined, ctx);
  const findings = await checkRestoredDatabase(config, beside, manifest, undefined, ctx);
  if (findings.some((f) => f.severity === 'critical')) {
    await dropDatabase(config, beside, ctx);
    throw new RestoreError(
      `restored copy of ${manifest.backupId} failed its checks, live database '${config.database}' left as it was: ${findings
        .map((f) => f.message)
        .join('; ')}`,
    );
  }
  const { keptAs } = await swapDatabases(config, { live: config.database, beside, ctx });
  runtime.log(`swapped: '${config.database}' is the restored copy, the previous one is kept as '${keptAs}'`);
  return {
    ...base,
    mode: 'replace',
    target: config.database,
    keptAs,
    safetyBackupId: safety.backupId,
    sourceBytes,
    durationSeconds: seconds(started),
    findings,
  };
}

/** Streams a backup into a new database; removes the database if reading or restoring fails. */
async function restoreDatabaseFrom(
  runtime: Runtime,
  config: PostgresSourceConfig,
  manifest: Manifest,
  target: string,
  tables: string[] | undefined,
  ctx: SourceContext,
): Promise<{ sourceBytes: number }> {
  if (await databaseExists(config, target, ctx)) {
    throw new RestoreError(
      `database '${target}' already exists; restore never writes into an existing database`,
    );
  }
  const controller = new AbortController();
  try {
    const reader = await openBackupData(runtime, manifest, controller.signal);
    const [, counts] = await settleAll(
      [
        restorePostgres(config, reader.stream, {
          targetDatabase: target,
          tables,
          ctx: { ...ctx, signal: controller.signal },
        }),
        reader.done,
      ] as const,
      controller,
    );
    return counts;
  } catch (error) {
    // restorePostgres removes what it created when it fails itself; the data can also fail its final
    // checksum after pg_restore finished, so make sure the half-trusted copy is gone either way.
    if (await databaseExists(config, target, ctx).catch(() => false)) await dropDatabase(config, target, ctx);
    throw error;
  }
}

/** Streams a backup into a new directory; removes the directory if reading or extracting fails. */
async function restoreFilesFrom(
  runtime: Runtime,
  manifest: Manifest,
  target: string,
): Promise<{ sourceBytes: number }> {
  const controller = new AbortController();
  const reader = await openBackupData(runtime, manifest, controller.signal);
  let extracted = false;
  try {
    const [, counts] = await settleAll(
      [
        restoreFiles(reader.stream, { targetDir: target }).then(() => (extracted = true)),
        reader.done,
      ] as const,
      controller,
    );
    return counts;
  } catch (error) {
    if (extracted) await rm(target, { recursive: true, force: true });
    throw error;
  }
}

async function checkRestoredDatabase(
  config: PostgresSourceConfig,
  target: string,
  manifest: Manifest,
  tables: string[] | undefined,
  ctx: SourceContext,
): Promise<Finding[]> {
  if (manifest.source.kind !== 'postgres') return [];
  const findings = await checkPostgres(config, target, manifest.source, ctx, tables);
  return findings.map((f) => ({ ...f, job: manifest.job, backupId: manifest.backupId }));
}

function seconds(startedMs: number): number {
  return (Date.now() - startedMs) / 1000;
}

/** Removes a scratch target a drill created. */
export async function dropScratch(job: Job, target: string, ctx: SourceContext): Promise<void> {
  if (job.source.kind === 'postgres') await dropDatabase(job.source, target, ctx);
  else await rm(target, { recursive: true, force: true });
}
