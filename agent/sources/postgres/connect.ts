/**
 * Reaching a PostgreSQL server from the agent: node-postgres connections for catalog queries and the
 * environment and flags for the client tools (pg_dump, pg_restore, psql). The password travels in
 * node-postgres' connection config and in the tools' PGPASSWORD environment variable only, never in argv.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { SourceError } from '#core/errors';
import type { PostgresSourceConfig } from '#core/sources/index';
import type { SourceContext } from '../context';

/** Where a connection goes: the plan's postgres source fields. */
export type PostgresTarget = Pick<
  PostgresSourceConfig,
  'host' | 'port' | 'user' | 'passwordEnv' | 'passwordParameter' | 'binDir'
>;

/** Seconds a connection attempt may take (node-postgres and libpq's PGCONNECT_TIMEOUT). */
export const CONNECT_TIMEOUT_SECONDS = 30;
/** Name the agent's sessions show in pg_stat_activity. */
export const APPLICATION_NAME = 'strongbox';

/** Paths of the client tools to run. */
export interface PostgresTools {
  pgDump: string;
  pgRestore: string;
  psql: string;
  /** The directory they came from; undefined when they are taken from PATH. */
  binDir?: string;
}

/**
 * Chooses the client tools for a server of major version `serverMajor`: `binDir` when configured, else the
 * newest `/usr/lib/postgresql/<n>/bin` (Debian's layout) when `n` ≥ the server's major (pg_dump refuses
 * newer servers), else the plain names, found on PATH.
 * @example locatePostgresTools(undefined, 15) // { pgDump: '/usr/lib/postgresql/15/bin/pg_dump', … }
 */
export function locatePostgresTools(
  binDir: string | undefined,
  serverMajor: number,
  versionsRoot = '/usr/lib/postgresql',
): PostgresTools {
  const inDir = (dir: string): PostgresTools => ({
    pgDump: join(dir, 'pg_dump'),
    pgRestore: join(dir, 'pg_restore'),
    psql: join(dir, 'psql'),
    binDir: dir,
  });
  if (binDir) return inDir(binDir);
  const majors = existsSync(versionsRoot)
    ? readdirSync(versionsRoot)
        .filter((name) => /^\d+$/.test(name) && existsSync(join(versionsRoot, name, 'bin', 'pg_dump')))
        .map(Number)
        .sort((a, b) => b - a)
    : [];
  const newest = majors[0];
  if (newest !== undefined && newest >= serverMajor) return inDir(join(versionsRoot, String(newest), 'bin'));
  return { pgDump: 'pg_dump', pgRestore: 'pg_restore', psql: 'psql' };
}

/** Human form of where a connection goes, for messages: `app on 10.0.0.5:5432 as backup`. */
export function describeTarget(config: PostgresTarget, database: string): string {
  return `database ${database} on ${config.host}:${config.port} as ${config.user}`;
}

/**
 * Opens a node-postgres connection (with `replication`: a physical replication connection, for
 * BASE_BACKUP). The client's asynchronous errors (a dropped connection) are caught
 * and surface on the next query; aborting `ctx.signal` closes the connection.
 * @throws SourceError naming host, port, user and database when the connection fails.
 */
export async function connectPostgres(
  config: PostgresTarget,
  database: string,
  password: string | undefined,
  ctx: SourceContext,
  options: { replication?: boolean } = {},
): Promise<pg.Client> {
  const client = new pg.Client({
    host: config.host,
    port: config.port,
    user: config.user,
    password,
    database,
    application_name: APPLICATION_NAME,
    connectionTimeoutMillis: CONNECT_TIMEOUT_SECONDS * 1000,
    // A physical replication connection (BASE_BACKUP), as pg_basebackup opens.
    ...(options.replication ? { replication: true } : {}),
  });
  // Without a listener a lost connection would crash the agent: the error reaches the next query instead.
  client.on('error', () => {});
  const onAbort = () => void client.end().catch(() => {});
  try {
    ctx.signal?.throwIfAborted();
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw new SourceError(`cannot connect to ${describeTarget(config, database)}: ${messageOf(error)}`, {
      cause: error,
    });
  }
  if (ctx.signal) {
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    client.once('end', () => ctx.signal?.removeEventListener('abort', onAbort));
  }
  return client;
}

/**
 * Connects to a maintenance database of the server (`postgres`, else `template1`) for CREATE, DROP and
 * ALTER DATABASE, which cannot run in the database they change.
 */
export async function connectMaintenance(
  config: PostgresTarget,
  password: string | undefined,
  ctx: SourceContext,
): Promise<pg.Client> {
  try {
    return await connectPostgres(config, 'postgres', password, ctx);
  } catch (error) {
    if ((error as { cause?: { code?: string } }).cause?.code !== '3D000') throw error;
    return connectPostgres(config, 'template1', password, ctx);
  }
}

/** Major version of the connected server (`server_version_num` 150018 → 15). */
export async function serverMajorOf(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  return Math.floor(Number(rows[0]?.v) / 10_000);
}

/** Connection flags for libpq tools: host, port, user, and never a password prompt. */
export function connectionArgs(config: PostgresTarget): string[] {
  return ['-h', config.host, '-p', String(config.port), '-U', config.user, '-w'];
}

/**
 * The environment of a libpq tool: the caller's, plus PGPASSWORD when there is a password (so it is
 * never in argv), a connect timeout and the application name.
 */
export function toolEnv(
  env: Record<string, string | undefined>,
  password: string | undefined,
): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {
    ...env,
    PGCONNECT_TIMEOUT: String(CONNECT_TIMEOUT_SECONDS),
    PGAPPNAME: APPLICATION_NAME,
  };
  if (password !== undefined) out.PGPASSWORD = password;
  return out;
}

/** The message of anything thrown. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The SQLSTATE of a node-postgres error, if it is one. */
export function sqlStateOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
