/** `strongbox wal-push %p`: CLI glue over agent/wal for PostgreSQL's archive_command. */
import type { Runtime } from '#agent/runtime';
import { pushWal } from '#agent/wal';
import type { Outcome } from './outcome';

/**
 * Archives one WAL file; exit 0 only once it is durably in the vault (PostgreSQL then recycles it). Any
 * failure exits non-zero, so PostgreSQL keeps the file and retries.
 */
export async function walPushCommand(
  runtime: Runtime,
  options: { job: string; path: string; parallel?: number },
): Promise<Outcome> {
  const result = await pushWal(runtime, options.job, options.path, { parallel: options.parallel });
  return walPushOutcome(options.job, options.path, result);
}

/** What `wal-push` prints for a file that is durably archived (by this call or the resident pusher). */
export function walPushOutcome(job: string, path: string, result: 'stored' | 'exists'): Outcome {
  return {
    exitCode: 0,
    json: { job, path, result },
    text: result === 'stored' ? `archived ${path}` : `${path} was already archived with the same content`,
  };
}
