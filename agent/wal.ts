/**
 * WAL archiving for jobs whose source recovers to a point in time: the job's {@link VaultWalArchive},
 * and what `wal-push` (archive_command) and `wal-fetch` (restore_command) do with one file.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import { VaultWalArchive } from '#agent/wal-archive';
import { IntegrityError, PlanError } from '#core/errors';
import { findJob, type Job } from '#core/plan';

/**
 * The WAL archive of a job.
 * @throws PlanError when the job is not in the plan or its source does not recover to a point in time.
 */
export function walArchiveOf(runtime: Runtime, jobName: string): { job: Job; archive: VaultWalArchive } {
  const job = findJob(runtime.plan, jobName);
  const { capabilities, kind } = sourceDriver(job.source).spec;
  if (!capabilities.pointInTime)
    throw new PlanError([`job '${job.name}' is a ${kind} job: only point-in-time jobs archive WAL`]);
  return {
    job,
    archive: new VaultWalArchive(runtime.vault, runtime.keys, job.name, {
      compression: job.compression.algorithm,
      level: job.compression.level,
    }),
  };
}

/**
 * Archives one WAL file from its path (`%p`, relative to the data directory PostgreSQL runs
 * archive_command in). Resolves once it is durably in the vault, or was already there with the same
 * content. @throws IntegrityError when it is there with other content; VaultError on an outage.
 */
export async function pushWal(runtime: Runtime, jobName: string, path: string): Promise<'stored' | 'exists'> {
  const { archive } = walArchiveOf(runtime, jobName);
  return archive.push(basename(path), () => createReadStream(path), { signal: runtime.signal });
}

/**
 * Restores one archived WAL file (`%f`) to `path` (`%p`): written beside it under a temporary name and
 * renamed once every chunk authenticated, so a failed fetch leaves nothing PostgreSQL could replay.
 * @throws NotFoundError when it is not archived; IntegrityError when it fails authentication.
 */
export async function fetchWal(runtime: Runtime, jobName: string, name: string, path: string): Promise<void> {
  const { archive } = walArchiveOf(runtime, jobName);
  const stream = await archive.fetch(name, { signal: runtime.signal });
  const temp = join(dirname(path), `.${basename(path)}.strongbox-partial`);
  try {
    await pipeline(stream, createWriteStream(temp, { mode: 0o600 }));
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    if (error instanceof IntegrityError)
      throw new IntegrityError(`WAL file ${name} cannot be restored: ${error.message}`, { cause: error });
    throw error;
  }
}
