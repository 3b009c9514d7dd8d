/**
 * What `strongbox doctor` checks for a postgres job: the database reachable with the configured
 * credentials; what a backup needs (SELECT on every table, view and sequence pg_dump will read); what a
 * restore, drill and replace need (CREATEDB, and membership in every role that owns objects of the
 * database, unless the plan sets noOwner); with rolePasswords, that the role can read the password hashes
 * (pg_authid); and pg_dump and pg_restore present and not older than the
 * server.
 */
import { toolVersion } from '#agent/pipeline/child';
import type { DoctorCheck } from '#core/ports';
import type { PostgresSourceConfig } from '#core/sources/index';
import { resolvePassword, type SourceContext } from '../context';
import { probe } from '../kit';
import { connectPostgres, locatePostgresTools, serverMajorOf } from './connect';
import { readNeededRoles, readPasswordHashes } from './globals';
import { quoteIdent, tablePatternRegex } from './names';

/** One line per check, in order: the database, backup privileges, restore privileges, pg_dump, pg_restore. */
export async function doctorPostgres(
  config: PostgresSourceConfig,
  ctx: SourceContext,
): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  let serverMajor: number | undefined;
  checks.push(
    await probe(`database ${config.database} on ${config.host}:${config.port}`, async () => {
      const password = await resolvePassword(config, ctx);
      const client = await connectPostgres(config, config.database, password, ctx);
      try {
        serverMajor = await serverMajorOf(client);
        const { rows } = await client.query<{ v: string; size: string }>(
          'SELECT version() AS v, pg_size_pretty(pg_database_size(current_database())) AS size',
        );
        return `reachable as ${config.user}, ${rows[0]?.v.split(',')[0]}, ${rows[0]?.size}`;
      } finally {
        await client.end().catch(() => {});
      }
    }),
  );
  if (serverMajor !== undefined) checks.push(...(await privilegeChecks(config, ctx)));
  const tools = locatePostgresTools(config.binDir, serverMajor ?? 0);
  for (const [name, path] of [
    ['pg_dump', tools.pgDump],
    ['pg_restore', tools.pgRestore],
  ] as const) {
    checks.push(
      await probe(name, async () => {
        const version = await toolVersion(path);
        const major = Number(/(\d+)(\.\d+)?/.exec(version)?.[1]);
        if (serverMajor !== undefined && major < serverMajor) {
          throw new Error(
            `${path} is ${version}, older than the server (${serverMajor}): install postgresql-client-${serverMajor}`,
          );
        }
        return `${path} (${version})`;
      }),
    );
  }
  return checks;
}

/** Relations pg_dump reads that the job's role cannot SELECT, excluding the plan's excludeTables. */
const UNREADABLE = `
  SELECT n.nspname AS schema, c.relname AS name
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relpersistence <> 't'
     AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
     AND NOT pg_catalog.has_table_privilege(c.oid, 'SELECT')
   ORDER BY 1, 2`;

/** The backup and restore privilege checks, on one connection. */
async function privilegeChecks(config: PostgresSourceConfig, ctx: SourceContext): Promise<DoctorCheck[]> {
  const password = await resolvePassword(config, ctx);
  const client = await connectPostgres(config, config.database, password, ctx);
  try {
    const backup = await probe(`backup: SELECT on every table of ${config.database}`, async () => {
      const { rows } = await client.query<{ schema: string; name: string }>(UNREADABLE);
      const excluded = (r: { schema: string; name: string }) =>
        config.excludeTables.some((pattern) => {
          const re = tablePatternRegex(pattern);
          return (
            new RegExp(re.name).test(r.name) &&
            (re.schema === undefined || new RegExp(re.schema).test(r.schema))
          );
        });
      const denied = rows
        .filter((r) => !excluded(r))
        .map((r) => `${quoteIdent(r.schema)}.${quoteIdent(r.name)}`);
      if (denied.length > 0) {
        const shown =
          denied.slice(0, 10).join(', ') + (denied.length > 10 ? `, and ${denied.length - 10} more` : '');
        throw new Error(
          `${config.user} cannot SELECT ${shown}: the backup would fail with "permission denied" (GRANT pg_read_all_data TO ${quoteIdent(config.user)}, or GRANT SELECT on them)`,
        );
      }
      return `${config.user} can read every table, view and sequence pg_dump reads`;
    });
    const restore = await probe('restore, drill, replace: CREATEDB and the owners', async () => {
      const { rows } = await client.query<{ superuser: boolean; createdb: boolean }>(
        `SELECT rolsuper AS superuser, rolcreatedb AS createdb FROM pg_catalog.pg_roles WHERE rolname = current_user`,
      );
      const me = rows[0];
      if (me?.superuser) return `${config.user} is a superuser`;
      const problems: string[] = [];
      if (!me?.createdb)
        problems.push(`${config.user} lacks CREATEDB (ALTER ROLE ${quoteIdent(config.user)} CREATEDB)`);
      if (!config.noOwner) {
        const owners = (await readNeededRoles(client)).filter((r) => r.owns).map((r) => r.name);
        const members = await client.query<{ name: string }>(
          `SELECT rolname AS name FROM pg_catalog.pg_roles
            WHERE rolname = ANY($1::text[]) AND NOT pg_catalog.pg_has_role(current_user, oid, 'MEMBER')`,
          [owners],
        );
        const missing = members.rows.map((r) => r.name);
        if (missing.length > 0) {
          problems.push(
            `${config.user} cannot set the owner ${missing.join(', ')} (GRANT ${missing.map(quoteIdent).join(', ')} TO ${quoteIdent(config.user)}, or noOwner: true in the plan)`,
          );
        }
      }
      if (problems.length > 0) throw new Error(problems.join('; '));
      return `${config.user} has CREATEDB${config.noOwner ? '' : ' and is a member of every owner'}`;
    });
    if (!config.rolePasswords) return [backup, restore];
    const hashes = await probe('backup: password hashes (rolePasswords)', async () => {
      await readPasswordHashes(
        client,
        await readNeededRoles(client),
        `database ${config.database} as ${config.user}`,
      );
      return `${config.user} can read the password hashes of the roles ${config.database} needs`;
    });
    return [backup, hashes, restore];
  } finally {
    await client.end().catch(() => {});
  }
}
