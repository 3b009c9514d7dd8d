/**
 * `strongbox prune`: applies the plan's retention (core selectRetained, the same rule the S3 lifecycle
 * enforces in the cloud) to a vault, and removes incomplete backups and unfinished writes (partial files,
 * incomplete multipart uploads) older than the job's timeout. A
 * backup is deleted manifest first, so it stops being complete before its data goes.
 */

import { formatTable } from '#agent/format';
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

/** Deletes what retention no longer keeps; with dryRun only reports it. */
export async function pruneCommand(runtime: Runtime, options: PruneOptions): Promise<Outcome> {
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
