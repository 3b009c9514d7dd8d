/**
 * Database-level operations around a restore: does a database exist, drop a scratch target the caller
 * created, and swap a restored copy in place of the live database (keeping the old one).
 */
import type pg from 'pg';
import { RestoreError, SourceError } from '#core/errors';
import { resolvePassword, type SourceContext } from '../context';
import {
  connectMaintenance,
  describeTarget,
  messageOf,
  type PostgresTarget,
  serverMajorOf,
  sqlStateOf,
} from './connect';
import { quoteIdent, stampedDatabaseName } from './names';

/** Attempts of the swap when new sessions slip in between terminating them and renaming. */
const SWAP_ATTEMPTS = 3;

/** Options of {@link swapDatabases}. */
export interface SwapOptions {
  /** The database in use, renamed to `<live>_pre_<stamp>`. */
  live: string;
  /** The restored copy, renamed to `live`. */
  beside: string;
  ctx: SourceContext;
  /** Time in the kept name. @default now */
  now?: Date;
}

/** Whether a database exists on the server. @throws SourceError when the server cannot be reached. */
export async function databaseExists(
  config: PostgresTarget,
  name: string,
  ctx: SourceContext,
): Promise<boolean> {
  const admin = await connectMaintenance(config, await resolvePassword(config, ctx), ctx);
  try {
    return await existsWith(admin, name);
  } finally {
    await admin.end().catch(() => {});
  }
}

/**
 * Drops a database the caller created (a drill's scratch target): its sessions are terminated first.
 * A database that does not exist is not an error.
 * @throws SourceError when the drop fails.
 */
export async function dropDatabase(config: PostgresTarget, name: string, ctx: SourceContext): Promise<void> {
  const admin = await connectMaintenance(config, await resolvePassword(config, ctx), ctx);
  try {
    await dropDatabaseWith(admin, name);
  } catch (error) {
    throw new SourceError(`cannot drop ${describeTarget(config, name)}: ${messageOf(error)}`, {
      cause: error,
    });
  } finally {
    await admin.end().catch(() => {});
  }
}

/** Terminates the sessions of a database and drops it, on a maintenance connection. */
export async function dropDatabaseWith(admin: pg.Client, name: string): Promise<void> {
  await terminateSessions(admin, [name]);
  const force = (await serverMajorOf(admin)) >= 13 ? ' WITH (FORCE)' : '';
  await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}${force}`);
}

/**
 * The swap step of `restore --replace`: terminates every other session of both databases, then renames
 * `live` to `<live>_pre_<stamp>` and `beside` to `live` in one transaction (PostgreSQL allows ALTER
 * DATABASE … RENAME in a transaction block), so either both renames happen or neither does. Should a
 * server refuse the transaction block, the renames run one by one and a failure of the second renames
 * the first back. Nothing is ever dropped: the old data stays under the returned name.
 * @example const { keptAs } = await swapDatabases(job.source, { live: 'app', beside: 'app_restore_x', ctx })
 * @throws RestoreError when either database is missing, the kept name is taken or a rename fails; the
 *   databases then keep their names.
 */
export async function swapDatabases(
  config: PostgresTarget,
  options: SwapOptions,
): Promise<{ keptAs: string }> {
  const { live, beside, ctx } = options;
  const keptAs = stampedDatabaseName(live, 'pre', options.now ?? new Date());
  if (live === beside) throw new RestoreError(`cannot swap database ${live} with itself`);
  const admin = await connectMaintenance(config, await resolvePassword(config, ctx), ctx);
  try {
    for (const name of [live, beside]) {
      if (!(await existsWith(admin, name))) {
        throw new RestoreError(`cannot swap: ${describeTarget(config, name)} does not exist`);
      }
    }
    if (await existsWith(admin, keptAs)) {
      throw new RestoreError(
        `cannot swap: ${describeTarget(config, keptAs)} already exists (it would keep ${live})`,
      );
    }
    for (let attempt = 1; ; attempt++) {
      await terminateSessions(admin, [live, beside]);
      try {
        await renameBoth(admin, live, keptAs, beside);
        return { keptAs };
      } catch (error) {
        // 55006 object_in_use: a new session connected between terminate and rename.
        if (sqlStateOf(error) === '55006' && attempt < SWAP_ATTEMPTS) continue;
        if (error instanceof RestoreError) throw error;
        throw new RestoreError(
          `cannot swap ${live} and ${beside} on ${config.host}:${config.port} (both kept their names): ${messageOf(error)}`,
          { cause: error },
        );
      }
    }
  } finally {
    await admin.end().catch(() => {});
  }
}

/** live → keptAs and beside → live, atomically when the server allows it, else with compensation. */
async function renameBoth(admin: pg.Client, live: string, keptAs: string, beside: string): Promise<void> {
  const first = `ALTER DATABASE ${quoteIdent(live)} RENAME TO ${quoteIdent(keptAs)}`;
  const second = `ALTER DATABASE ${quoteIdent(beside)} RENAME TO ${quoteIdent(live)}`;
  await admin.query('BEGIN');
  try {
    await admin.query(first);
    await admin.query(second);
    await admin.query('COMMIT');
    return;
  } catch (error) {
    await admin.query('ROLLBACK').catch(() => {});
    // 25001 active_sql_transaction: "cannot run inside a transaction block" on a server that forbids it.
    if (sqlStateOf(error) !== '25001') throw error;
  }
  await admin.query(first);
  try {
    await admin.query(second);
  } catch (error) {
    try {
      await admin.query(`ALTER DATABASE ${quoteIdent(keptAs)} RENAME TO ${quoteIdent(live)}`);
    } catch (undoError) {
      throw new RestoreError(
        `renaming ${beside} to ${live} failed (${messageOf(error)}) and renaming ${keptAs} back to ${live} failed too (${messageOf(undoError)}): the live data is in ${keptAs}`,
        { cause: error },
      );
    }
    throw error;
  }
}

async function existsWith(admin: pg.Client, name: string): Promise<boolean> {
  const { rowCount } = await admin.query('SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1', [name]);
  return (rowCount ?? 0) > 0;
}

async function terminateSessions(admin: pg.Client, names: readonly string[]): Promise<void> {
  await admin.query(
    `SELECT pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
      WHERE datname = ANY($1::text[]) AND pid <> pg_backend_pid()`,
    [names],
  );
}
