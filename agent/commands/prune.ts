/**
 * `strongbox prune`: applies the plan's retention (core selectRetained, the same rule the S3 lifecycle
 * enforces in the cloud) to a vault, and removes incomplete backups and unfinished writes (partial files,
 * incomplete multipart uploads) older than the job's timeout. A
 * backup is deleted manifest first, so it stops being complete before its data goes. Each of the plan's
 * copies is pruned the same way with its own retention ({@link pruneVaults}).
 */

import { openCopyRuntime } from '#agent/copy';
import { formatTable } from '#agent/format';
import { lockOptionsOf, withJobLocks } from '#agent/job-lock';
import { sourceContext } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import { listBackups, listWal, readManifest } from '#core/catalog';
import { describeError } from '#core/errors';
import { jobPrefix, manifestKey, walKey } from '#core/layout';
import type { Manifest } from '#core/manifest';
import { retentionOf, selectJobs } from '#core/plan';
import { expiredWal } from '#core/recovery-window';
import { selectRetained } from '#core/retention';
import { capabilitiesOf } from '#core/sources/index';
import type { Outcome } from './outcome';

export interface PruneOptions {
  /** Jobs to act on (default: every job of the plan). */
  jobs?: readonly string[];
  dryRun?: boolean;
}

/**
 * Deletes what retention no longer keeps; with dryRun only reports it. A prune that deletes holds the
 * locks of its jobs (agent/job-lock): it never runs beside a backup of the same job.
 * @throws JobLockedError when one of the jobs is running; nothing was deleted then.
 */
export async function pruneCommand(runtime: Runtime, options: PruneOptions): Promise<Outcome> {
  if (options.dryRun) return pruneJobs(runtime, options);
  const jobs = selectJobs(runtime.plan, options.jobs).map((job) => job.name);
  return withJobLocks({ ...lockOptionsOf(runtime, 'prune'), jobs }, () => pruneJobs(runtime, options));
}

async function pruneJobs(runtime: Runtime, options: PruneOptions): Promise<Outcome> {
  const jobs = selectJobs(runtime.plan, options.jobs);
  const now = runtime.clock.now();
  const decisions: { job: string; backupId: string; action: 'keep' | 'delete'; reason: string }[] = [];
  const abandoned: { job: string; key: string }[] = [];
  const wal: { job: string; keptFrom?: string; deleted: number }[] = [];
  const leftovers: { job: string; line: string }[] = [];
  for (const job of jobs) {
    // Targets killed restores left (postgres: databases still marked as being restored into).
    const driver = sourceDriver(job.source);
    if (driver.leftovers) {
      try {
        for (const line of await driver.leftovers(job.source, sourceContext(runtime), {
          dryRun: options.dryRun,
        }))
          leftovers.push({ job: job.name, line });
      } catch (error) {
        leftovers.push({ job: job.name, line: `restore leftovers not checked: ${describeError(error)}` });
      }
    }
    // Unfinished writes of interrupted backups (partial files, incomplete multipart uploads).
    const olderThan = new Date(now.getTime() - job.timeout * 1000);
    for (const key of (await runtime.vault.removeAbandoned?.(jobPrefix(job.name), olderThan, {
      dryRun: options.dryRun,
    })) ?? []) {
      abandoned.push({ job: job.name, key });
    }
    const backups = await listBackups(runtime.vault, job.name);
    const candidates = [];
    const manifests: Manifest[] = [];
    for (const backup of backups) {
      if (backup.complete) {
        const manifest = await readManifest(runtime.vault, job.name, backup.backupId);
        manifests.push(manifest);
        candidates.push({
          backupId: backup.backupId,
          tier: manifest.tier,
          startedAt: new Date(manifest.startedAt),
          backup,
        });
      } else if (now.getTime() - backup.startedAt.getTime() > job.timeout * 1000) {
        decisions.push({
          job: job.name,
          backupId: backup.backupId,
          action: 'delete',
          reason: 'incomplete, past the job timeout',
        });
        if (!options.dryRun) await runtime.vault.delete(backup.objects.map((o) => o.key));
      }
    }
    for (const decision of selectRetained(candidates, retentionOf(runtime.plan, job), now)) {
      const { backupId, backup } = decision.backup;
      decisions.push({
        job: job.name,
        backupId,
        action: decision.keep ? 'keep' : 'delete',
        reason: decision.reason,
      });
      if (!decision.keep && !options.dryRun) {
        const manifest = manifestKey(job.name, backupId);
        await runtime.vault.delete([manifest]);
        await runtime.vault.delete(backup.objects.map((o) => o.key).filter((key) => key !== manifest));
      }
    }
    // Point-in-time jobs: WAL is kept for the window, back to the newest base backup before its start.
    if (capabilitiesOf(job.source.kind).pointInTime) {
      const windowStart = new Date(now.getTime() - retentionOf(runtime.plan, job).pointInTime * 86_400_000);
      const files = await listWal(runtime.vault, job.name);
      const { anchorBackupId, expire } = expiredWal(
        manifests,
        files.map((f) => f.name),
        windowStart,
      );
      wal.push({ job: job.name, keptFrom: anchorBackupId, deleted: expire.length });
      if (!options.dryRun && expire.length > 0)
        await runtime.vault.delete(expire.map((name) => walKey(job.name, name.slice(0, 8), name)));
    }
  }
  const deleted = decisions.filter((d) => d.action === 'delete').length;
  const verb = options.dryRun ? 'would delete' : 'deleted';
  return {
    exitCode: 0,
    json: { dryRun: Boolean(options.dryRun), decisions, abandoned, wal, leftovers },
    text: [
      formatTable([
        ['JOB', 'BACKUP', 'ACTION', 'REASON'],
        ...decisions.map((d) => [d.job, d.backupId, d.action, d.reason]),
      ]),
      `${verb} ${deleted} backup${deleted === 1 ? '' : 's'}`,
      ...abandoned.map((a) => `${verb} unfinished write ${a.key}`),
      ...leftovers.map((l) => `${l.job}: ${l.line}`),
      ...wal.map(
        (w) =>
          `${w.job}: ${verb} ${w.deleted} WAL file${w.deleted === 1 ? '' : 's'}${w.keptFrom ? ` older than base backup ${w.keptFrom}, the newest before the point-in-time window` : ' (no base backup before the point-in-time window: all WAL kept)'}`,
      ),
    ].join('\n'),
  };
}

/** Options of {@link pruneVaults}. */
export interface PruneVaultsOptions extends PruneOptions {
  /** Prune only this copy. */
  from?: string;
}

/**
 * `strongbox prune`: the primary vault with the plan's retention, then each copy with its own
 * (agent/copy `copyPlanView`); with `from`, only that copy. Without copies, exactly
 * {@link pruneCommand} on the primary.
 * @example await pruneVaults(runtime, { from: 'offsite', dryRun: true })
 */
export async function pruneVaults(runtime: Runtime, options: PruneVaultsOptions): Promise<Outcome> {
  if (options.from !== undefined) return pruneCommand(await openCopyRuntime(runtime, options.from), options);
  const primary = await pruneCommand(runtime, options);
  if (runtime.plan.copies.length === 0) return primary;
  const copies: { copy: string; url: string; outcome: Outcome }[] = [];
  for (const copy of runtime.plan.copies) {
    const target = await openCopyRuntime(runtime, copy.name);
    copies.push({ copy: copy.name, url: target.vault.url, outcome: await pruneCommand(target, options) });
  }
  return {
    exitCode: 0,
    json: {
      ...(primary.json as object),
      copies: copies.map((c) => ({ copy: c.copy, ...(c.outcome.json as object) })),
    },
    text: [primary.text, ...copies.map((c) => `\ncopy ${c.copy} (${c.url}):\n${c.outcome.text}`)].join('\n'),
  };
}
