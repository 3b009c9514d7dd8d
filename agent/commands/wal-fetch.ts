/** `strongbox wal-fetch %f %p`: CLI glue over agent/wal for PostgreSQL's restore_command. */
import type { Runtime } from '#agent/runtime';
import { fetchWal } from '#agent/wal';
import { NotFoundError } from '#core/errors';
import type { Outcome } from './outcome';

/**
 * Exit status of `wal-fetch` for a file that exists but cannot be restored (it fails authentication, the
 * vault is unreachable): above 125, which PostgreSQL treats as fatal and stops recovery, instead of
 * taking it for the end of the archive and promoting early.
 */
export const WAL_FETCH_FATAL_EXIT = 126;

/** Restores one WAL file; exit 1 when it is not archived (normal: recovery probes for files). */
export async function walFetchCommand(
  runtime: Runtime,
  options: { job: string; name: string; path: string; parallel?: number },
): Promise<Outcome> {
  try {
    await fetchWal(runtime, options.job, options.name, options.path, { parallel: options.parallel });
    return {
      exitCode: 0,
      json: { job: options.job, name: options.name, found: true },
      text: `restored ${options.name}`,
    };
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    return {
      exitCode: 1,
      json: { job: options.job, name: options.name, found: false },
      text: `${options.name} is not archived`,
    };
  }
}
