/**
 * `strongbox list`: the backups of each job, complete or not, newest last, with the warnings each
 * complete backup's manifest recorded (files that changed or vanished while read); with `--all` also the
 * unfinished writes interrupted backups left in the vault (partial files, incomplete multipart uploads)
 * that the next backup of the job or `prune` removes, and the targets killed restores left (postgres:
 * scratch databases still marked as being restored into) that `prune` and the next restore drop.
 */

import { formatBytes, formatTable } from '#agent/format';
import { sourceContext } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import { readCatalog } from '#core/catalog';
import { describeError } from '#core/errors';
import { jobPrefix } from '#core/layout';
import { selectJobs } from '#core/plan';
import type { Outcome } from './outcome';

/** Options of {@link listCommand}. */
export interface ListOptions {
  /** Jobs to list (default: every job of the plan). */
  jobs?: readonly string[];
  /** Also list unfinished writes of interrupted backups (a dry run of what `prune` removes). */
  all?: boolean;
}

/** The latest time a Date can hold: unfinished writes that began before it are all of them. */
const EVERY_WRITE = new Date(8.64e15);

/** Warnings of one backup printed under the table; the rest are counted. */
const WARNINGS_SHOWN = 3;

/**
 * Lists backups from the vault listing and their manifests (small objects in the vault's standard
 * class: no archive retrievals).
 */
export async function listCommand(runtime: Runtime, options: ListOptions): Promise<Outcome> {
  const jobs = selectJobs(runtime.plan, options.jobs);
  const rows: string[][] = [];
  const notes: string[] = [];
  const json: unknown[] = [];
  const unfinished: { job: string; key: string }[] = [];
  const leftovers: { job: string; line: string }[] = [];
  for (const job of jobs) {
    const catalog = await readCatalog(runtime.vault, job.name);
    const invalid = new Set(catalog.invalid.map((i) => i.backupId));
    for (const backup of catalog.backups) {
      const manifest = catalog.manifests.get(backup.backupId);
      const warnings = manifest?.warnings ?? [];
      const bytes = backup.objects.reduce((sum, o) => sum + o.sizeBytes, 0);
      const classes = [...new Set(backup.objects.map((o) => o.storageClass))].join(',');
      const status = !backup.complete
        ? 'INCOMPLETE'
        : invalid.has(backup.backupId)
          ? 'INVALID MANIFEST'
          : [
              'complete',
              ...(manifest?.purpose === 'safety' ? ['safety'] : []),
              ...(warnings.length ? [`${warnings.length} warning${warnings.length === 1 ? '' : 's'}`] : []),
            ].join(', ');
      rows.push([job.name, backup.backupId, status, formatBytes(bytes), classes]);
      for (const warning of warnings.slice(0, WARNINGS_SHOWN))
        notes.push(`${job.name} ${backup.backupId}: warning: ${warning}`);
      if (warnings.length > WARNINGS_SHOWN)
        notes.push(
          `${job.name} ${backup.backupId}: … and ${warnings.length - WARNINGS_SHOWN} more warnings (--json lists them)`,
        );
      json.push({
        job: job.name,
        backupId: backup.backupId,
        startedAt: backup.startedAt.toISOString(),
        complete: backup.complete,
        storedBytes: bytes,
        storageClasses: classes.split(','),
        ...(manifest?.purpose ? { purpose: manifest.purpose } : {}),
        ...(warnings.length ? { warnings } : {}),
      });
    }
    if (options.all) {
      // Every unfinished write, however recent: an interrupted backup's, or one still running (the job's
      // timeout decides which `prune` removes).
      const keys =
        (await runtime.vault.removeAbandoned?.(jobPrefix(job.name), EVERY_WRITE, { dryRun: true })) ?? [];
      for (const key of keys) unfinished.push({ job: job.name, key });
      // Targets killed restores left (postgres: marked scratch databases), from the source itself.
      const driver = sourceDriver(job.source);
      if (driver.leftovers) {
        try {
          for (const line of await driver.leftovers(job.source, sourceContext(runtime), { dryRun: true }))
            leftovers.push({ job: job.name, line });
        } catch (error) {
          leftovers.push({ job: job.name, line: `restore leftovers not checked: ${describeError(error)}` });
        }
      }
    }
  }
  const text = [
    rows.length ? formatTable([['JOB', 'BACKUP', 'STATUS', 'STORED', 'CLASS'], ...rows]) : 'no backups',
    ...notes,
    ...(options.all
      ? unfinished.length
        ? unfinished.map(
            (u) =>
              `${u.job}: unfinished write ${u.key} (an interrupted backup's, or one still running; the next backup or prune removes it past the job timeout)`,
          )
        : ['no unfinished writes']
      : []),
    ...leftovers.map((l) => `${l.job}: ${l.line}`),
  ];
  return {
    exitCode: 0,
    json: { backups: json, ...(options.all ? { unfinished, leftovers } : {}) },
    text: text.join('\n'),
  };
}
