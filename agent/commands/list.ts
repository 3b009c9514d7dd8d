/** `strongbox list`: the backups of each job, complete or not, newest last. */

import { formatBytes, formatTable } from '#agent/format';
import type { Runtime } from '#agent/runtime';
import { listBackups } from '#core/catalog';
import { selectJobs } from '#core/plan';
import type { Outcome } from './outcome';

/** Lists backups from the vault listing alone (no manifest reads, no archive retrievals). */
export async function listCommand(runtime: Runtime, options: { jobs?: readonly string[] }): Promise<Outcome> {
  const jobs = selectJobs(runtime.plan, options.jobs);
  const rows: string[][] = [];
  const json: unknown[] = [];
  for (const job of jobs) {
    for (const backup of await listBackups(runtime.vault, job.name)) {
      const bytes = backup.objects.reduce((sum, o) => sum + o.sizeBytes, 0);
      const classes = [...new Set(backup.objects.map((o) => o.storageClass))].join(',');
      const status = backup.complete ? 'complete' : 'INCOMPLETE';
      rows.push([job.name, backup.backupId, status, formatBytes(bytes), classes]);
      json.push({
        job: job.name,
        backupId: backup.backupId,
        startedAt: backup.startedAt.toISOString(),
        complete: backup.complete,
        storedBytes: bytes,
        storageClasses: classes.split(','),
      });
    }
  }
  return {
    exitCode: 0,
    json: { backups: json },
    text: rows.length ? formatTable([['JOB', 'BACKUP', 'STATUS', 'STORED', 'CLASS'], ...rows]) : 'no backups',
  };
}
