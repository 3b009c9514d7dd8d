/**
 * Database-level operations around a restore: does a database exist, drop a scratch target the caller
 * created, and swap a restored copy in place of the live database (keeping the old one).
 */
import type pg from 'pg';
import { RestoreError, SourceError } from '#core/errors';
import type { PostgresDetails } from '#core/sources/postgres';
import { resolvePassword, type SourceContext } from '../context';
import {
  connectMaintenance,
  describeTarget,
  messageOf,
  type PostgresTarget,
  serverMajorOf,
  sqlStateOf,
} from './connect';
import { checkTablespaces, prepareRoles } from './globals';
import { quoteIdent, stampedDatabaseName } from './names';
import { checkFreeSpace } from './space';

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
 * @throws RestoreError when either database is missing, no kept name is free or a rename fails; the
 *   databases then keep their names.
 */
export async function swapDatabases(
  config: PostgresTarget,
  options: SwapOptions,
): Promise<{ keptAs: string }> {
  const { live, beside, ctx } = options;
  const now = options.now ?? new Date();
  if (live === beside) throw new RestoreError(`cannot swap database ${live} with itself`);
  const admin = await connectMaintenance(config, await resolvePassword(config, ctx), ctx);
  try {
    for (const name of [live, beside]) {
      if (!(await existsWith(admin, name))) {
        throw new RestoreError(`cannot swap: ${describeTarget(config, name)} does not exist`);
      }
    }
    // A replace retried within the same second finds its first kept name taken: take the next one,
    // never a database that exists.
    let keptAs = stampedDatabaseName(live, 'pre', now);
    for (let n = 2; await existsWith(admin, keptAs); n++) {
      if (n > 9) {
        throw new RestoreError(
          `cannot swap: ${describeTarget(config, keptAs)} and the names before it already exist (they would keep ${live})`,
        );
      }
      keptAs = stampedDatabaseName(live, `pre${n}`, now);
    }
    for (let attempt = 1; ; attempt++) {
      const sessions = await sessionsOf(admin, [live, beside]);
      if (sessions.length > 0) ctx.log?.(`ending ${describeSessions(sessions)}`);
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

/** Options of {@link preflightReplace}. */
export interface ReplacePreflightOptions {
  live: string;
  /** The manifest's details of the backup that will be restored beside. */
  details?: Pick<PostgresDetails, 'roles' | 'databaseState' | 'tablespaces'> & { databaseBytes?: number };
  /** Restore without owners (the plan's noOwner). */
  noOwner?: boolean;
  /** Restore into the default tablespace (the plan's noTablespaces). */
  noTablespaces?: boolean;
  ctx: SourceContext;
}

/**
 * Everything `restore --replace` will need, checked before it takes its safety backup, so a refused
 * replace changes nothing and can simply be retried: the live database exists; the job's role may rename
 * it (a member of its owner) and create the copy (CREATEDB); the copy can get its tablespaces, owners,
 * privileges and roles (see checkTablespaces, and prepareRoles in a dry run); and the job's role may end every session now on the live
 * database (superuser sessions need a superuser, other roles' sessions membership in them or in
 * pg_signal_backend). The sessions it will end are named in the log.
 * @throws RestoreError naming each missing privilege; SourceError when the server cannot be reached.
 */
export async function preflightReplace(
  config: PostgresTarget,
  options: ReplacePreflightOptions,
): Promise<void> {
  const { live, ctx } = options;
  const admin = await connectMaintenance(config, await resolvePassword(config, ctx), ctx);
  try {
    const { rows } = await admin.query<{
      me: string;
      superuser: boolean;
      owner: string;
      owns: boolean;
      signal: boolean;
    }>(
      `SELECT current_user AS me, r.rolsuper AS superuser, pg_catalog.pg_get_userbyid(d.datdba) AS owner,
              pg_catalog.pg_has_role(current_user, d.datdba, 'MEMBER') AS owns,
              pg_catalog.pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS signal
         FROM pg_catalog.pg_database d, pg_catalog.pg_roles r
        WHERE d.datname = $1 AND r.rolname = current_user`,
      [live],
    );
    const me = rows[0];
    if (!me) {
      throw new RestoreError(
        `cannot replace ${describeTarget(config, live)}: it does not exist (restore into a --target instead)`,
      );
    }
    const problems: string[] = [];
    if (!me.superuser && !me.owns) {
      problems.push(
        `${me.me} cannot rename ${live} (owned by ${me.owner}): it is not a member of ${me.owner} (GRANT ${quoteIdent(me.owner)} TO ${quoteIdent(me.me)})`,
      );
    }
    try {
      await checkTablespaces(admin, options.details?.tablespaces ?? [], {
        where: `the copy of ${live}`,
        noTablespaces: options.noTablespaces === true,
      });
      await prepareRoles(admin, options.details?.roles ?? [], {
        owners: !options.noOwner,
        where: `the copy of ${live}`,
        ...(options.details?.databaseState ? { state: options.details.databaseState } : {}),
        dryRun: true,
      });
    } catch (error) {
      if (!(error instanceof RestoreError)) throw error;
      problems.push(error.message);
    }
    try {
      const note = await checkFreeSpace(admin, config, options.details?.databaseBytes, `the copy of ${live}`);
      if (note) ctx.log?.(note);
    } catch (error) {
      if (!(error instanceof RestoreError)) throw error;
      problems.push(error.message);
    }
    const sessions = await sessionsOf(admin, [live]);
    const blocked = me.superuser ? [] : sessions.filter((s) => s.superuser || (!s.mine && !me.signal));
    if (blocked.length > 0) {
      problems.push(
        `${me.me} cannot end ${describeSessions(blocked)} (superuser sessions need a superuser; other roles' sessions need membership in them or in pg_signal_backend)`,
      );
    }
    if (problems.length > 0) {
      throw new RestoreError(
        `cannot replace ${describeTarget(config, live)}; nothing was changed: ${problems.join('; ')}`,
      );
    }
    if (sessions.length > 0) ctx.log?.(`the swap will end ${describeSessions(sessions)}`);
  } finally {
    await admin.end().catch(() => {});
  }
}

/** A session on a database, as pg_stat_activity shows it. */
interface Session {
  pid: number;
  database: string;
  user: string;
  application: string;
  client: string | null;
  superuser: boolean;
  /** The current role may end it as a member of its role. */
  mine: boolean;
}

/** Every other session on the databases, oldest first. */
async function sessionsOf(admin: pg.Client, names: readonly string[]): Promise<Session[]> {
  const { rows } = await admin.query<Session>(
    `SELECT a.pid, a.datname AS database, coalesce(a.usename, '?') AS user,
            coalesce(a.application_name, '') AS application, a.client_addr::text AS client,
            coalesce(r.rolsuper, false) AS superuser,
            coalesce(pg_catalog.pg_has_role(current_user, a.usesysid, 'USAGE'), false) AS mine
       FROM pg_catalog.pg_stat_activity a LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.usesysid
      WHERE a.datname = ANY($1::text[]) AND a.pid <> pg_backend_pid()
      ORDER BY a.backend_start`,
    [names],
  );
  return rows;
}

/** `2 sessions on app: pid 4711 app from 10.0.0.5 (psql), pid 4712 …`. */
function describeSessions(sessions: readonly Session[]): string {
  const one = (s: Session) =>
    `pid ${s.pid} ${s.user} on ${s.database}${s.client ? ` from ${s.client}` : ' (local)'}${s.application ? ` (${s.application})` : ''}`;
  return `${sessions.length} session${sessions.length === 1 ? '' : 's'}: ${sessions.map(one).join(', ')}`;
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
