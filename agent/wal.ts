/**
 * WAL archiving for jobs whose source recovers to a point in time: the job's {@link VaultWalArchive},
 * and what `wal-push` (archive_command) and `wal-fetch` (restore_command) do with one file.
 */
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import { VaultWalArchive } from '#agent/wal-archive';
import { DEFAULT_WAL_PARALLEL, fetchWithPrefetch, pushWithAhead } from '#agent/wal-spool';
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

/** How many files `wal-push` / `wal-fetch` move at once. */
export interface WalConcurrencyOptions {
  /** Files uploaded (wal-push) or downloaded (wal-fetch) at once, the one asked for included. @default 4 */
  parallel?: number;
}

/**
 * Archives one WAL file from its path (`%p`, relative to the data directory PostgreSQL runs
 * archive_command in), pushing ahead the next ready segments (agent/wal-spool). Resolves once it is
 * durably in the vault, or was already there with the same content.
 * @throws IntegrityError when it is there with other content; VaultError on an outage.
 */
export async function pushWal(
  runtime: Runtime,
  jobName: string,
  path: string,
  options: WalConcurrencyOptions = {},
): Promise<'stored' | 'exists'> {
  const { archive } = walArchiveOf(runtime, jobName);
  return pushWithAhead(archive, path, {
    job: jobName,
    parallel: options.parallel ?? DEFAULT_WAL_PARALLEL,
    signal: runtime.signal,
    log: runtime.log,
  });
}

/**
 * Restores one archived WAL file (`%f`) to `path` (`%p`), prefetching the next segments into the spool
 * (agent/wal-spool): written under a temporary name and renamed once every chunk authenticated, so a
 * failed fetch leaves nothing PostgreSQL could replay.
 * @throws NotFoundError when it is not archived; IntegrityError when it fails authentication.
 */
export async function fetchWal(
  runtime: Runtime,
  jobName: string,
  name: string,
  path: string,
  options: WalConcurrencyOptions = {},
): Promise<void> {
  const { archive } = walArchiveOf(runtime, jobName);
  try {
    await fetchWithPrefetch(archive, name, path, {
      job: jobName,
      prefetch: options.parallel ?? DEFAULT_WAL_PARALLEL,
      signal: runtime.signal,
      log: runtime.log,
    });
  } catch (error) {
    if (error instanceof IntegrityError)
      throw new IntegrityError(`WAL file ${name} cannot be restored: ${error.message}`, { cause: error });
    throw error;
  }
}
