/**
 * Restoring a backup, and the restore drill built on it.
 *
 * Nothing that was there before is ever damaged: a restore writes into a target it creates (a scratch
 * database or an empty directory) and removes that target again if anything fails — a wrong key, a
 * flipped byte, a truncated object, a tool exiting non-zero. `replace` takes a safety backup of the live
 * database first, restores beside it, checks the copy against the manifest, then swaps names and keeps
 * the old database under a new name: the live database is never dropped.
 */
import { tmpdir } from 'node:os';
import { runBackup } from '#agent/backup';
import { settleAll } from '#agent/pipeline/flow';
import { openBackupData } from '#agent/read-backup';
import type { Runtime } from '#agent/runtime';
import type { SourceContext } from '#agent/sources/context';
import { sourceDriver } from '#agent/sources/index';
import { swapDatabases } from '#agent/sources/postgres';
import { findBackup } from '#core/catalog';
import type { Finding } from '#core/checks';
import { PlanError, RestoreError } from '#core/errors';
import type { Manifest } from '#core/manifest';
import type { Job } from '#core/plan';

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

/** What a restore did (the `--json` output of `strongbox restore`, core/deployment AgentRestoreResult). */
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
 * @throws PlanError naming the bad option.
 */
export function validateRestoreRequest(job: Job, request: RestoreRequest): void {
  const problems: string[] = [];
  if (request.replace) {
    if (job.source.kind !== 'postgres') {
      problems.push(
        `replace: only postgres jobs can be replaced in place; restore '${job.name}' into a --target directory`,
      );
    }
    if (request.confirm !== job.name)
      problems.push(`confirm: replacing the live database needs --confirm ${job.name}`);
    if (request.target)
      problems.push('target: --replace restores beside the live database; it takes no --target');
    if (request.tables?.length)
      problems.push('tables: --replace restores the whole database; restore tables into a --target');
  }
  if (request.tables?.length && job.source.kind !== 'postgres') {
    problems.push(
      `tables: only postgres backups can be restored table by table ('${job.name}' is ${job.source.kind})`,
    );
  }
  if (problems.length) throw new PlanError(problems);
}

/** A fresh scratch target for a job: `<database>_<label>_<time>` or a directory under the temp dir. */
export function scratchTargetOf(runtime: Runtime, job: Job, label: string): string {
  return sourceDriver(job.source).scratchTarget(job.source, label, runtime.clock.now(), tmpdir());
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
  const ctx: SourceContext = { env: runtime.env };
  const base = { job: job.name, backupId: manifest.backupId, kind: manifest.kind };

  if (!request.replace || job.source.kind !== 'postgres') {
    const target = request.target ?? scratchTargetOf(runtime, job, 'restore');
    runtime.log(`restore ${job.name} ${manifest.backupId} into ${target}`);
    const { sourceBytes } = await restoreInto(runtime, job, manifest, target, request.tables, ctx);
    const findings = await checkRestored(job, manifest, target, request.tables, ctx);
    return {
      ...base,
      mode: 'scratch',
      target,
      sourceBytes,
      durationSeconds: secondsSince(started),
      findings,
    };
  }

  // Replace: safety backup, restore beside, check, swap, keep the old one.
  const config = job.source;
  const safety = await runBackup(runtime, job);
  runtime.log(`safety backup ${safety.backupId} of '${config.database}' taken`);
  const beside = scratchTargetOf(runtime, job, 'restore');
  const { sourceBytes } = await restoreInto(runtime, job, manifest, beside, undefined, ctx);
  const findings = await checkRestored(job, manifest, beside, undefined, ctx);
  if (findings.some((f) => f.severity === 'critical')) {
    await sourceDriver(config).discard(config, beside, ctx);
    throw new RestoreError(
      `the restored copy of ${manifest.backupId} failed its checks; '${config.database}' was left as it was: ${findings
        .map((f) => f.message)
        .join('; ')}`,
    );
  }
  const { keptAs } = await swapDatabases(config, { live: config.database, beside, ctx });
  runtime.log(
    `swapped: '${config.database}' is now the restored copy; the previous one is kept as '${keptAs}'`,
  );
  return {
    ...base,
    mode: 'replace',
    target: config.database,
    keptAs,
    safetyBackupId: safety.backupId,
    sourceBytes,
    durationSeconds: secondsSince(started),
    findings,
  };
}

/**
 * Streams a backup into a new target. The driver refuses a target that exists and removes the target it
 * created when restoring fails; if the data then fails its final checksum, the copy is removed here.
 */
async function restoreInto(
  runtime: Runtime,
  job: Job,
  manifest: Manifest,
  target: string,
  tables: string[] | undefined,
  ctx: SourceContext,
): Promise<{ sourceBytes: number }> {
  const driver = sourceDriver(job.source);
  const controller = new AbortController();
  const onAbort = () => controller.abort(runtime.signal.reason);
  if (runtime.signal.aborted) onAbort();
  runtime.signal.addEventListener('abort', onAbort, { once: true });
  const reader = await openBackupData(runtime, manifest, controller.signal);
  let restored = false;
  try {
    const [, counts] = await settleAll(
      [
        driver
          .restore(job.source, reader.stream, { target, tables, ctx: { ...ctx, signal: controller.signal } })
          .then(() => {
            restored = true;
          }),
        reader.done,
      ] as const,
      controller,
    );
    return { sourceBytes: counts.sourceBytes };
  } catch (error) {
    if (restored) await driver.discard(job.source, target, ctx);
    throw error;
  } finally {
    runtime.signal.removeEventListener('abort', onAbort);
  }
}

async function checkRestored(
  job: Job,
  manifest: Manifest,
  target: string,
  tables: string[] | undefined,
  ctx: SourceContext,
): Promise<Finding[]> {
  const findings = await sourceDriver(job.source).check(job.source, manifest.source, { target, tables, ctx });
  return findings.map((f) => ({ ...f, job: manifest.job, backupId: manifest.backupId }));
}

function secondsSince(startedMs: number): number {
  return (Date.now() - startedMs) / 1000;
}
