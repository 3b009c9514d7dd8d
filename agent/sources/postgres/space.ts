/**
 * The free-space precondition of a PostgreSQL restore: the database's size when it was backed up (the
 * manifest's `databaseBytes`) against the free space of the target server's data directory, when that
 * directory is on this host and the restoring role may read where it is; otherwise the check is skipped
 * and says why. Checked before anything is created (and, for `--replace`, before the safety backup).
 */
import { statfs } from 'node:fs/promises';
import type pg from 'pg';
import { formatBytes } from '#agent/format';
import { RestoreError } from '#core/errors';
import type { PostgresTarget } from './connect';
import { messageOf } from './connect';

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '::1']);

/**
 * Checks that the target server's data directory has `neededBytes` free; `need` says in words what
 * that size is (default: the database's size when backed up).
 * @returns a note when the check could not be made (remote server, data_directory not readable), else
 *   undefined.
 * @throws RestoreError naming the sizes when the space is not there (nothing was changed).
 */
export async function checkFreeSpace(
  admin: pg.Client,
  config: Pick<PostgresTarget, 'host'>,
  neededBytes: number | undefined,
  where: string,
  need = 'the database was',
): Promise<string | undefined> {
  if (!neededBytes) return undefined;
  const host = config.host ?? '';
  if (!(host === '' || host.startsWith('/') || LOCAL_HOSTS.has(host))) {
    return `free space not checked: the server ${host} is not on this host`;
  }
  let dir: string;
  try {
    const { rows } = await admin.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir");
    dir = rows[0]?.dir ?? '';
  } catch (error) {
    return `free space not checked: the role may not read data_directory (${messageOf(error)}; pg_read_all_settings allows it)`;
  }
  let free: number;
  try {
    const fs = await statfs(dir);
    free = fs.bavail * fs.bsize;
  } catch (error) {
    return `free space not checked: ${dir} is not readable here (${messageOf(error)})`;
  }
  if (free < neededBytes) {
    throw new RestoreError(
      `not enough free space for ${where}: ${need} ${formatBytes(neededBytes)} when backed up, the server's data directory ${dir} has ${formatBytes(free)} free; nothing was changed`,
    );
  }
  return undefined;
}
