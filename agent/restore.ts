/**
 * Restoring a backup, and the restore drill built on it.
 *
 * Nothing that was there before is ever damaged: a restore writes into a target it creates (a scratch
 * database or an empty directory) and removes that target again if anything fails — a wrong key, a
 * flipped byte, a truncated object, a tool exiting non-zero. `replace` (sources with the `replace`
 * capability) takes a safety backup of the live data first, restores beside it, checks the copy against
 * the manifest, then swaps names and keeps the old data under a new name: the live data is never dropped.
 * `intoLive` (sources with the `liveTables` capability) restores chosen tables into the live data: the
 * driver's preflight first, a safety backup of exactly those tables, then the driver's restore in one
 * transaction that rolls back on any failure.
 * What a restore may do is decided by the source's declared capabilities, never by its kind's name.
 */
import { tmpdir } from 'node:os';
import { runBackup } from '#agent/backup';
import { openBackup } from '#agent/read-backup';
import type { Runtime } from '#agent/runtime';
import { detailsOf, sourceDriver } from '#agent/sources/index';
import { findBackup, listManifests } from '#core/catalog';
import type { Finding } from '#core/checks';
import { AGENT_ENV } from '#core/deployment';
import { describeError, PlanError, RestoreError } from '#core/errors';
import type { Manifest } from '#core/manifest';
import type { Job } from '#core/plan';
import type { RestoreOutcome, RestoreTarget, SourceContext, TargetCheck } from '#core/ports';
import { chooseBaseBackup, type RecoveryTarget, walFetchCommand, walPushCommandLine } from '#core/recovery';

/** What to restore and where. */
export interface RestoreRequest {
  /** Backup to restore; the newest complete one when absent. */
  backupId?: string;
  /** Where to restore (a database, a directory); a new scratch target when absent. */
  target?: string;
  /** Tables to restore (sources with the `tables` capability). */
  tables?: string[];
  /** Replace the live data (sources with the `replace` capability); needs `confirm` equal to the job name. */
  replace?: boolean;
  confirm?: string;
  /**
   * Point-in-time recovery (sources with the `pointInTime` capability): replay the job's WAL archive to
   * this target. Without it a physical backup restores to its own end.
   */
  recoverTo?: RecoveryTarget;
  /** Start the restored copy and wait until it serves (sources with the `pointInTime` capability). */
  start?: boolean;
  /** Absolute paths (globs allowed) to restore instead of everything (sources with the `paths` capability). */
  paths?: string[];
  /**
   * Restore over the original locations (sources with the `inPlace` capability); needs `confirm` equal
   * to the job name. What it overwrites is kept beside (RestoreResult `keptAs`).
   */
  inPlace?: boolean;
  /** With `inPlace`: also move away what exists below the restored paths but is not in the backup. */
  delete?: boolean;
  /**
   * With `tables`: restore them into the job's own live database (sources with the `liveTables`
   * capability), after a safety backup of exactly those tables, in one transaction; needs `confirm`
   * equal to the job name.
   */
  intoLive?: boolean;
  /**
   * With `recoverTo`: the copy becomes the primary and archives its new timeline into the job's WAL
   * archive from promotion on (sources with the `pointInTime` capability). Without it the copy does not
   * archive.
   */
  archive?: boolean;
  /**
   * Physical backups: new locations of tablespaces by their original location (`--tablespace-map
   * OLD=NEW`); the others go beside the target data directory.
   */
  tablespaceMap?: Record<string, string>;
}

/** What a restore did (the `--json` output of `strongbox restore`, core/deployment AgentRestoreResult). */
export interface RestoreResult {
  job: string;
  backupId: string;
  kind: Manifest['kind'];
  mode: 'scratch' | 'replace' | 'in-place' | 'into-live';
  /** Where the data now is: the scratch target, the live target's name after a replace, the paths in place. */
  target: string;
  /** After a replace: the name the previous live data was kept under; in place: the kept directory. */
  keptAs?: string;
  /** After a replace or a restore into the live database: the safety backup taken before anything changed. */
  safetyBackupId?: string;
  sourceBytes: number;
  durationSeconds: number;
  /** Every check the restored data went through, passed or not. */
  checks: TargetCheck[];
  /** What the checks found wrong; empty when everything matched. */
  findings: Finding[];
  /** What the restore said beyond its checks (in place: what it moved and kept). */
  notes?: string[];
}

/**
 * Validates a restore request against what the job's source can do, before anything starts.
 * @throws PlanError naming the bad option.
 */
export function validateRestoreRequest(job: Job, request: RestoreRequest): void {
  const { capabilities, kind, targetNoun } = sourceDriver(job.source).spec;
  const problems: string[] = [];
  if (request.replace) {
    if (!capabilities.replace) {
      problems.push(
        `replace: ${kind} jobs cannot be replaced in place; restore '${job.name}' into a --target ${targetNoun}`,
      );
    }
    if (request.confirm !== job.name)
      problems.push(`confirm: replacing the live data needs --confirm ${job.name}`);
    if (request.target)
      problems.push('target: --replace restores beside the live data; it takes no --target');
    if (request.tables?.length)
      problems.push('tables: --replace restores the whole backup; restore tables into a --target');
  }
  if (request.tables?.length === 0 || request.tables?.every((t) => t === '')) {
    problems.push('tables: the list is empty (leave --tables out to restore every table)');
  } else if (request.tables?.some((t) => t.trim() === '')) {
    problems.push(`tables: '${request.tables.join(',')}' has an empty entry`);
  }
  if ((request.recoverTo || request.start) && !capabilities.pointInTime) {
    problems.push(
      `${request.recoverTo ? 'to' : 'start'}: ${kind} backups do not recover to a point in time ('${job.name}' is ${kind})`,
    );
  }
  if (request.tablespaceMap && !capabilities.pointInTime)
    problems.push(`tablespace-map: ${kind} backups have no tablespaces ('${job.name}' is ${kind})`);
  for (const [old, to] of Object.entries(request.tablespaceMap ?? {})) {
    if (!old.startsWith('/') || !to.startsWith('/'))
      problems.push(`tablespace-map: '${old}=${to}' needs two absolute paths, OLD=NEW`);
  }
  if (request.archive && !request.recoverTo)
    problems.push('archive: only a point-in-time restore (--to) archives a new timeline');
  if (request.recoverTo && request.replace)
    problems.push('to: a point-in-time restore goes into a new --target; it cannot --replace');
  if (request.paths) {
    if (!capabilities.paths)
      problems.push(`path: ${kind} backups cannot be restored path by path ('${job.name}' is ${kind})`);
    if (request.paths.length === 0)
      problems.push('path: the list is empty (leave --path out to restore everything)');
    for (const [i, path] of request.paths.entries()) {
      if (!path.startsWith('/'))
        problems.push(`path[${i}]: '${path}' must be an absolute path, as in the plan`);
      else if (path.split('/').includes('..')) problems.push(`path[${i}]: '${path}' must not contain '..'`);
    }
  }
  if (request.inPlace) {
    if (!capabilities.inPlace) {
      problems.push(
        `in-place: ${kind} backups cannot be restored in place; restore '${job.name}' into a --target ${targetNoun}`,
      );
    }
    if (request.confirm !== job.name)
      problems.push(`confirm: restoring over the original locations needs --confirm ${job.name}`);
    if (request.target)
      problems.push('target: --in-place restores to the original locations; it takes no --target');
    if (request.replace) problems.push('in-place: --in-place and --replace are two modes: choose one');
  }
  if (request.intoLive) {
    if (!capabilities.liveTables) {
      problems.push(
        `into-live: ${kind} backups cannot be restored table by table into the live data; restore '${job.name}' into a --target ${targetNoun}`,
      );
    }
    if (!request.tables) problems.push('tables: --into-live restores chosen tables: name them with --tables');
    if (request.confirm !== job.name)
      problems.push(`confirm: restoring into the live database needs --confirm ${job.name}`);
    if (request.target)
      problems.push("target: --into-live restores into the job's own database; it takes no --target");
    if (request.replace || request.inPlace)
      problems.push(
        `into-live: --into-live and --${request.replace ? 'replace' : 'in-place'} are two modes: choose one`,
      );
    if (request.recoverTo) problems.push('to: a point-in-time restore goes into a new --target');
  }
  if (request.delete && !request.inPlace)
    problems.push(
      'delete: --delete removes what is not in the backup from the original locations: it needs --in-place',
    );
  if (request.tables && !capabilities.tables) {
    problems.push(`tables: ${kind} backups cannot be restored table by table ('${job.name}' is ${kind})`);
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
  const driver = sourceDriver(job.source);
  const started = Date.now();
  const manifest = await baseBackupFor(runtime, job, request);
  if (manifest.kind !== job.source.kind) {
    throw new RestoreError(
      `backup ${manifest.backupId} is a ${manifest.kind} backup but job '${job.name}' is ${job.source.kind}`,
    );
  }
  const ctx = sourceContext(runtime);
  const base = { job: job.name, backupId: manifest.backupId, kind: manifest.kind };
  await removeLeftovers(runtime, job, ctx);

  if (request.inPlace) {
    const details = detailsOf(manifest.source, job.source.kind);
    const roots = request.paths ?? ('paths' in details ? details.paths : []);
    const target = roots.join(', ') || '/';
    runtime.log(`restore ${job.name} ${manifest.backupId} in place over ${target}`);
    const stamp = runtime.clock.now().toISOString().replace(/[-:.]/g, '');
    const { sourceBytes, outcome } = await restoreInto(runtime, job, manifest, '/', undefined, ctx, {
      paths: request.paths,
      inPlace: { delete: request.delete === true, stamp },
    });
    const checks = await checkRestored(job, manifest, '/', undefined, ctx, {
      paths: request.paths,
      inPlace: { delete: request.delete === true, stamp },
    });
    return {
      ...base,
      mode: 'in-place',
      target,
      ...(outcome?.keptAs ? { keptAs: outcome.keptAs } : {}),
      sourceBytes,
      durationSeconds: secondsSince(started),
      ...checks,
      ...(outcome?.notes?.length ? { notes: outcome.notes } : {}),
    };
  }

  if (request.intoLive) return restoreIntoLive(runtime, job, manifest, request.tables ?? [], ctx, started);

  if (!request.replace) {
    const target = request.target ?? scratchTargetOf(runtime, job, 'restore');
    runtime.log(`restore ${job.name} ${manifest.backupId} into ${target}`);
    const agent = runtime.env[AGENT_ENV.command] ?? 'strongbox';
    const recovery = request.recoverTo && {
      target: request.recoverTo,
      restoreCommand: walFetchCommand(agent, runtime.planPath, job.name, runtime.copy),
      ...(request.archive ? { archiveCommand: walPushCommandLine(agent, runtime.planPath, job.name) } : {}),
    };
    const { sourceBytes, outcome } = await restoreInto(runtime, job, manifest, target, request.tables, ctx, {
      recovery,
      start: request.start,
      paths: request.paths,
      ...(request.tablespaceMap ? { tablespaceMap: request.tablespaceMap } : {}),
    });
    const checks = await checkRestored(job, manifest, target, request.tables, ctx, { paths: request.paths });
    return {
      ...base,
      mode: 'scratch',
      target,
      sourceBytes,
      durationSeconds: secondsSince(started),
      ...checks,
      ...(outcome?.notes?.length ? { notes: outcome.notes } : {}),
    };
  }

  // Replace: safety backup, restore beside, check, swap, keep the old one.
  const replace = driver.replace;
  if (!replace) throw new PlanError([`replace: ${job.source.kind} jobs cannot be replaced in place`]);
  const live = replace.liveTarget(job.source);
  // Every precondition before the safety backup: a refused replace changes nothing and can be retried.
  await replace.preflight(job.source, { live, details: detailsOf(manifest.source, job.source.kind), ctx });
  // Marked as a safety backup: never what "latest" picks, so a retry restores the backup asked for.
  const safety = await runBackup(runtime, job, { purpose: 'safety' });
  runtime.log(`safety backup ${safety.backupId} of '${live}' taken`);
  const beside = scratchTargetOf(runtime, job, 'restore');
  const { sourceBytes } = await restoreInto(runtime, job, manifest, beside, undefined, ctx);
  const checks = await checkRestored(job, manifest, beside, undefined, ctx);
  if (checks.findings.some((f) => f.severity === 'critical')) {
    await driver.discard(job.source, beside, ctx);
    throw new RestoreError(
      `the restored copy of ${manifest.backupId} failed its checks; '${live}' was left as it was: ${checks.findings
        .map((f) => f.message)
        .join('; ')}`,
    );
  }
  const { keptAs } = await replace.swap(job.source, { live, beside, ctx });
  runtime.log(`swapped: '${live}' is now the restored copy; the previous one is kept as '${keptAs}'`);
  return {
    ...base,
    mode: 'replace',
    target: live,
    keptAs,
    safetyBackupId: safety.backupId,
    sourceBytes,
    durationSeconds: secondsSince(started),
    ...checks,
  };
}

/**
 * Restores chosen tables into the job's live database: every precondition first (driver `liveTables`
 * preflight: a refusal changes nothing and takes no backup), then a safety backup of exactly the live
 * tables it replaces (marked `safety`: never what "latest" picks), then the restore in one transaction
 * that checks the row counts before it commits, then the same checks as every restore.
 */
async function restoreIntoLive(
  runtime: Runtime,
  job: Job,
  manifest: Manifest,
  tables: string[],
  ctx: SourceContext,
  started: number,
): Promise<RestoreResult> {
  const live = sourceDriver(job.source).liveTables;
  if (!live)
    throw new PlanError([`into-live: ${job.source.kind} jobs cannot restore tables into the live data`]);
  const database = live.liveTarget(job.source);
  const details = detailsOf(manifest.source, job.source.kind);
  const { tables: replaced } = await live.preflight(job.source, { tables, details, ctx });
  const safety =
    replaced.length > 0 ? await runBackup(runtime, job, { purpose: 'safety', tables: replaced }) : undefined;
  runtime.log(
    safety
      ? `safety backup ${safety.backupId} of ${replaced.join(', ')} in '${database}' taken`
      : `no safety backup: none of ${tables.join(', ')} exists in '${database}'`,
  );
  runtime.log(`restore ${job.name} ${manifest.backupId} tables ${tables.join(', ')} into '${database}'`);
  const { sourceBytes } = await restoreInto(runtime, job, manifest, database, tables, ctx, {}, true);
  const checks = await checkRestored(job, manifest, database, tables, ctx);
  return {
    job: job.name,
    backupId: manifest.backupId,
    kind: manifest.kind,
    mode: 'into-live',
    target: database,
    ...(safety ? { safetyBackupId: safety.backupId } : {}),
    sourceBytes,
    durationSeconds: secondsSince(started),
    ...checks,
    notes: [
      `replaced ${tables.join(', ')} in '${database}' in one transaction${replaced.length > 0 ? ` (before: ${replaced.join(', ')})` : ''}`,
    ],
  };
}

/**
 * The backup a restore starts from: the one asked for, else for a point-in-time restore the newest
 * that ended before the target (core/recovery `chooseBaseBackup`), else the newest complete one.
 * @throws NotFoundError when there is none; RestoreError when no backup ended before the target.
 */
async function baseBackupFor(runtime: Runtime, job: Job, request: RestoreRequest): Promise<Manifest> {
  if (request.backupId || !request.recoverTo) return findBackup(runtime.vault, job.name, request.backupId);
  const manifests = await listManifests(runtime.vault, job.name);
  const candidates = manifests.flatMap((m) =>
    'stopLsn' in m.source
      ? [{ backupId: m.backupId, finishedAt: m.finishedAt, stopLsn: m.source.stopLsn, m }]
      : [],
  );
  const chosen = chooseBaseBackup(candidates, request.recoverTo);
  if (!chosen) {
    throw new RestoreError(
      `job '${job.name}' has no base backup that ended before the recovery target (${candidates.length} base backups in ${runtime.vault.url})`,
    );
  }
  return chosen.m;
}

/**
 * Drops what killed restores of the job left (driver `leftovers`: postgres scratch databases still
 * marked as being restored into by a process that is gone). Best effort: a failure is logged, and the
 * restore goes on (`prune` tries again).
 */
async function removeLeftovers(runtime: Runtime, job: Job, ctx: SourceContext): Promise<void> {
  const driver = sourceDriver(job.source);
  if (!driver.leftovers) return;
  try {
    for (const line of await driver.leftovers(job.source, ctx, {})) runtime.log(line);
  } catch (error) {
    runtime.log(`what killed restores left could not be checked: ${describeError(error)}`);
  }
}

/** The context a source driver runs in for this runtime. */
export function sourceContext(runtime: Runtime, signal?: AbortSignal): SourceContext {
  return { env: runtime.env, secrets: runtime.secrets, log: runtime.log, ...(signal ? { signal } : {}) };
}

/**
 * Streams a backup into a new target. The driver refuses a target that exists and removes the target it
 * created when restoring fails; if the data then fails its final checks, the copy is removed here.
 */
async function restoreInto(
  runtime: Runtime,
  job: Job,
  manifest: Manifest,
  target: string,
  tables: string[] | undefined,
  ctx: SourceContext,
  extra: Pick<RestoreTarget, 'recovery' | 'start' | 'paths' | 'inPlace' | 'tablespaceMap'> = {},
  /** Into the live target through the driver's `liveTables` (never discarded). */
  intoLive = false,
): Promise<{ sourceBytes: number; outcome?: RestoreOutcome }> {
  const driver = sourceDriver(job.source);
  const controller = new AbortController();
  const onAbort = () => controller.abort(runtime.signal.reason);
  if (runtime.signal.aborted) onAbort();
  runtime.signal.addEventListener('abort', onAbort, { once: true });
  let restored = false;
  try {
    const reader = await openBackup(runtime, manifest, controller.signal);
    try {
      const details = detailsOf(manifest.source, job.source.kind);
      const signalled = { ...ctx, signal: controller.signal };
      const outcome =
        intoLive && driver.liveTables
          ? await driver.liveTables.restore(job.source, reader, {
              tables: tables ?? [],
              details,
              ctx: signalled,
            })
          : await driver.restore(job.source, reader, { target, tables, details, ...extra, ctx: signalled });
      // In place and into the live data, the target is the original: never something to discard.
      restored = !extra.inPlace && !intoLive;
      const { sourceBytes } = await reader.finish();
      return { sourceBytes, ...(outcome ? { outcome } : {}) };
    } catch (error) {
      // Stop every object still being read, with the cause.
      controller.abort(error);
      await reader.finish().catch(() => {});
      throw error;
    }
  } catch (error) {
    if (restored) await driver.discard(job.source, target, ctx);
    throw error;
  } finally {
    runtime.signal.removeEventListener('abort', onAbort);
  }
}

/** The driver's checks of a restored target, with the job and backup filled in. */
export async function checkRestored(
  job: Job,
  manifest: Manifest,
  target: string,
  tables: string[] | undefined,
  ctx: SourceContext,
  extra: Pick<RestoreTarget, 'paths' | 'inPlace'> = {},
): Promise<{ checks: TargetCheck[]; findings: Finding[] }> {
  const driver = sourceDriver(job.source);
  const details = detailsOf(manifest.source, job.source.kind);
  const checks = attribute(
    await driver.check(job.source, details, { target, tables, ...extra, ctx }),
    manifest,
  );
  return { checks, findings: checks.flatMap((c) => c.findings) };
}

/** Fills in the job and backup of the findings a driver returned. */
export function attribute(
  checks: readonly TargetCheck[],
  manifest: Pick<Manifest, 'job' | 'backupId'>,
): TargetCheck[] {
  return checks.map((c) => ({
    ...c,
    findings: c.findings.map((f) => ({ ...f, job: manifest.job, backupId: manifest.backupId })),
  }));
}

function secondsSince(startedMs: number): number {
  return (Date.now() - startedMs) / 1000;
}
