/**
 * What a database needs beyond its own archive: the cluster-wide roles that own its objects or appear in
 * its privileges (with their memberships), and its database-level state — owner, comment, ACL and
 * `ALTER DATABASE … SET` / `ALTER ROLE … IN DATABASE … SET` settings. A `pg_dump -Fc` archive restored
 * without `--create` carries neither, so a backup records them in the manifest's details and a restore
 * checks, creates and applies them around pg_restore. The tablespaces it uses are recorded too (a
 * restore needs them on the target, or `noTablespaces`). Role passwords are never in the manifest: with
 * the plan's `rolePasswords` their hashes are a separate object of the backup, encrypted like its data.
 */
import type { Readable } from 'node:stream';
import type pg from 'pg';
import { RestoreError, SourceError } from '#core/errors';
import type { RestoreInput } from '#core/ports';
import type { DatabaseState, PostgresRole, PostgresTablespace } from '#core/sources/postgres';
import { DATA_OBJECT } from '../kit';
import { sqlStateOf } from './connect';
import { quoteIdent, quoteLiteral } from './names';

/**
 * The roles the current database needs: every role pg_shdepend records as owning something in it, named
 * in an ACL or a policy of it, the database's owner and grantees, roles with settings in it, the bootstrap
 * superuser when it owns objects in user schemas (pinned roles have no pg_shdepend rows), and every role
 * those are members of. Each with its attributes and memberships; `owns` marks the owners.
 */
export async function readNeededRoles(client: pg.Client): Promise<PostgresRole[]> {
  const { rows } = await client.query<{
    name: string;
    owns: boolean;
    superuser: boolean;
    inherit: boolean;
    createrole: boolean;
    createdb: boolean;
    login: boolean;
    replication: boolean;
    bypassrls: boolean;
    connlimit: number;
    validuntil: string | null;
    defaultacl: boolean;
    memberof: { role: string; admin: boolean }[];
  }>(
    `WITH RECURSIVE db AS (SELECT oid, datdba, datacl FROM pg_catalog.pg_database WHERE datname = current_database()),
     direct(oid, owns) AS (
       SELECT d.refobjid, d.deptype = 'o' FROM pg_catalog.pg_shdepend d, db
        WHERE d.refclassid = 'pg_catalog.pg_authid'::regclass AND d.dbid = db.oid
       UNION ALL SELECT datdba, true FROM db
       UNION ALL SELECT a.grantee, false FROM db, aclexplode(db.datacl) a WHERE a.grantee <> 0
       UNION ALL SELECT s.setrole, false FROM pg_catalog.pg_db_role_setting s, db
        WHERE s.setdatabase = db.oid AND s.setrole <> 0
       UNION ALL SELECT 10, true WHERE EXISTS (
         SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relowner = 10 AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_')
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspowner = 10
          AND n.nspname NOT IN ('information_schema', 'public') AND n.nspname !~ '^pg_')
     ),
     needed(oid) AS (
       SELECT oid FROM direct
       UNION SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN needed ON m.member = needed.oid
     )
     SELECT r.rolname AS name, coalesce(bool_or(d.owns), false) AS owns,
            r.rolsuper AS superuser, r.rolinherit AS inherit, r.rolcreaterole AS createrole,
            r.rolcreatedb AS createdb, r.rolcanlogin AS login, r.rolreplication AS replication,
            r.rolbypassrls AS bypassrls, r.rolconnlimit AS connlimit, r.rolvaliduntil::text AS validuntil,
            EXISTS (SELECT 1 FROM pg_catalog.pg_default_acl a WHERE a.defaclrole = r.oid) AS defaultacl,
            coalesce((SELECT json_agg(json_build_object('role', g.rolname, 'admin', m.admin_option)
                                      ORDER BY g.rolname)
                        FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
                       WHERE m.member = r.oid), '[]') AS memberof
       FROM (SELECT DISTINCT oid FROM needed) n
       JOIN pg_catalog.pg_roles r ON r.oid = n.oid
       LEFT JOIN direct d ON d.oid = r.oid
      WHERE r.rolname !~ '^pg_'
      GROUP BY r.oid, r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
               r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil
      ORDER BY r.rolname`,
  );
  return rows.map((r) => ({
    name: r.name,
    owns: r.owns,
    superuser: r.superuser,
    inherit: r.inherit,
    createRole: r.createrole,
    createDb: r.createdb,
    login: r.login,
    replication: r.replication,
    bypassRls: r.bypassrls,
    connectionLimit: r.connlimit,
    validUntil: r.validuntil,
    defaultPrivileges: r.defaultacl,
    memberOf: r.memberof,
  }));
}

/** The current database's owner, comment, ACL and settings, as the catalogs hold them. */
export async function readDatabaseState(client: pg.Client): Promise<DatabaseState> {
  const { rows } = await client.query<{
    owner: string;
    comment: string | null;
    acl: string[] | null;
    settings: { role: string | null; setting: string }[];
  }>(
    `SELECT pg_catalog.pg_get_userbyid(d.datdba) AS owner,
            pg_catalog.shobj_description(d.oid, 'pg_database') AS comment,
            d.datacl::text[] AS acl,
            coalesce((SELECT json_agg(json_build_object('role', r.rolname, 'setting', c.setting)
                                      ORDER BY r.rolname NULLS FIRST, c.n)
                        FROM pg_catalog.pg_db_role_setting s
                        LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole
                        CROSS JOIN LATERAL unnest(s.setconfig) WITH ORDINALITY AS c(setting, n)
                       WHERE s.setdatabase = d.oid), '[]') AS settings
       FROM pg_catalog.pg_database d WHERE d.datname = current_database()`,
  );
  const row = rows[0];
  if (!row) throw new RestoreError('the current database is missing from pg_database');
  return { owner: row.owner, comment: row.comment, acl: row.acl, settings: row.settings };
}

/**
 * The tablespaces the current database uses other than pg_default: its own default tablespace and every
 * tablespace a relation of it (table, index, materialized view, partitioned table) is placed in, with
 * owner and location as on this server.
 */
export async function readTablespaces(client: pg.Client): Promise<PostgresTablespace[]> {
  const { rows } = await client.query<PostgresTablespace>(
    `WITH db AS (SELECT dattablespace FROM pg_catalog.pg_database WHERE datname = current_database())
     SELECT t.spcname AS name, pg_catalog.pg_get_userbyid(t.spcowner) AS owner,
            pg_catalog.pg_tablespace_location(t.oid) AS location,
            t.oid = (SELECT dattablespace FROM db) AS "databaseDefault"
       FROM pg_catalog.pg_tablespace t
      WHERE t.spcname NOT IN ('pg_default', 'pg_global')
        AND (t.oid = (SELECT dattablespace FROM db)
             OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                         WHERE c.reltablespace = t.oid AND c.relpersistence <> 't'))
      ORDER BY t.spcname`,
  );
  return rows;
}

/**
 * Checks, before anything is created, that the target server has every tablespace the backup recorded
 * and that the restoring role may create objects in each (CREATE on it, or superuser): pg_restore would
 * otherwise stop midway with "tablespace … does not exist". With `noTablespaces` nothing is needed
 * (pg_restore --no-tablespaces puts everything in the target's default tablespace).
 * @returns the recorded default tablespace of the database when the target has it (the target database
 *   is created in it), otherwise undefined.
 * @throws RestoreError naming each missing tablespace with its source location and the two fixes, or
 *   the tablespace the role may not create in.
 */
export async function checkTablespaces(
  admin: pg.Client,
  tablespaces: readonly PostgresTablespace[],
  options: { where: string; noTablespaces: boolean },
): Promise<string | undefined> {
  if (options.noTablespaces || tablespaces.length === 0) return undefined;
  const { rows } = await admin.query<{ name: string; creates: boolean }>(
    `SELECT spcname AS name, pg_catalog.has_tablespace_privilege(oid, 'CREATE') AS creates
       FROM pg_catalog.pg_tablespace WHERE spcname = ANY($1::text[])`,
    [tablespaces.map((t) => t.name)],
  );
  const found = new Map(rows.map((r) => [r.name, r.creates]));
  const missing = tablespaces.filter((t) => !found.has(t.name));
  const problems: string[] = [];
  if (missing.length > 0) {
    problems.push(
      `the backup uses tablespace${missing.length === 1 ? '' : 's'} the server does not have: ` +
        missing.map((t) => `${t.name} (on the source: ${t.location}, owner ${t.owner})`).join(', ') +
        `; create ${missing.length === 1 ? 'it' : 'them'} first (${missing
          .map((t) => `CREATE TABLESPACE ${quoteIdent(t.name)} OWNER ${quoteIdent(t.owner)} LOCATION '<dir>'`)
          .join(
            '; ',
          )}, the directory empty and owned by the server's user), or set noTablespaces: true on the job's source to restore everything into the default tablespace`,
    );
  }
  const denied = tablespaces.filter((t) => found.get(t.name) === false).map((t) => t.name);
  if (denied.length > 0) {
    problems.push(
      `the restoring role may not create objects in tablespace ${denied.join(', ')} (${denied
        .map((n) => `GRANT CREATE ON TABLESPACE ${quoteIdent(n)} TO <role>`)
        .join('; ')}, or noTablespaces: true)`,
    );
  }
  if (problems.length > 0) {
    throw new RestoreError(`cannot restore ${options.where}: ${problems.join('; ')}`);
  }
  return tablespaces.find((t) => t.databaseDefault)?.name;
}

/** Name of the backup object that holds role password hashes (plan `rolePasswords`). */
export const ROLE_PASSWORDS_OBJECT = 'role-passwords';
/** Largest role-passwords object a restore reads (it is held in memory). */
const MAX_PASSWORDS_BYTES = 4 * 1024 * 1024;

/**
 * Opens a backup's pg_dump archive: the `data` object when the backup holds several (role-passwords
 * beside it), the only object otherwise (backups of every agent version).
 */
export function openArchive(input: RestoreInput): Promise<Readable> {
  return input.objects.length > 1 ? input.open(DATA_OBJECT) : input.only();
}

/**
 * The password hashes (pg_authid.rolpassword, SCRAM or md5, as stored) of `roles`, for the backup's
 * encrypted role-passwords object; roles without a password are left out.
 * @throws SourceError when the role cannot read pg_authid (superuser or pg_read_all_data), naming the option.
 */
export async function readPasswordHashes(
  client: pg.Client,
  roles: readonly PostgresRole[],
  where: string,
): Promise<Buffer> {
  try {
    const { rows } = await client.query<{ name: string; hash: string }>(
      `SELECT rolname AS name, rolpassword AS hash FROM pg_catalog.pg_authid
        WHERE rolname = ANY($1::text[]) AND rolpassword IS NOT NULL ORDER BY rolname`,
      [roles.map((r) => r.name)],
    );
    return Buffer.from(`${JSON.stringify({ version: 1, roles: rows })}\n`);
  } catch (error) {
    if (sqlStateOf(error) !== '42501') throw error;
    throw new SourceError(
      `${where}: rolePasswords is on, but reading the password hashes (pg_catalog.pg_authid) needs a superuser or membership in pg_read_all_data; grant pg_read_all_data to the backup role, or turn rolePasswords off`,
      { cause: error },
    );
  }
}

/**
 * Reads a backup's role-passwords object: role name to password hash.
 * @throws RestoreError when it is larger than 4 MiB or not what a backup writes.
 */
export async function parsePasswordHashes(stream: Readable): Promise<Map<string, string>> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of stream) {
    bytes += (chunk as Buffer).length;
    if (bytes > MAX_PASSWORDS_BYTES) {
      stream.destroy();
      throw new RestoreError(`the backup's ${ROLE_PASSWORDS_OBJECT} object is over 4 MiB`);
    }
    chunks.push(chunk as Buffer);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const roles = (parsed as { roles?: unknown } | undefined)?.roles;
  if (
    !Array.isArray(roles) ||
    !roles.every((r) => typeof r?.name === 'string' && typeof r?.hash === 'string')
  ) {
    throw new RestoreError(`the backup's ${ROLE_PASSWORDS_OBJECT} object is malformed`);
  }
  return new Map((roles as { name: string; hash: string }[]).map((r) => [r.name, r.hash]));
}

/** What {@link prepareRoles} found and did. */
export interface RolePreparation {
  /** Roles it created (they were missing on the server), in creation order; none in a dry run. */
  created: string[];
  /** Roles that were missing on the server. */
  missing: string[];
  /** Created roles that got their recorded password hash. */
  withPassword: string[];
}

/**
 * Makes sure a restore can create its target and give every object its recorded owner and privileges,
 * before anything is created: the restoring role needs CREATEDB, and must be superuser or a member of
 * each owning role (PostgreSQL's rule for
 * `ALTER … OWNER TO`), and every needed role must exist. Missing roles are created (attributes and
 * memberships as recorded; the recorded password hash when `passwords` has one, otherwise none) when the
 * restoring role has CREATEROLE; existing roles are never altered. Membership in an
 * owner it just created is granted to it, so it can set that owner. `owners: false` (`noOwner`) checks
 * only the roles named in privileges. `dryRun` checks and reports what it would create, changing nothing.
 * @throws RestoreError naming the role and the missing privilege, before any change, when the restoring
 *   role lacks CREATEROLE for a missing role or membership in an existing owner.
 */
export async function prepareRoles(
  admin: pg.Client,
  roles: readonly PostgresRole[],
  options: {
    owners: boolean;
    where: string;
    state?: DatabaseState;
    dryRun?: boolean;
    /** Role name to password hash, from the backup's role-passwords object. */
    passwords?: ReadonlyMap<string, string>;
  },
): Promise<RolePreparation> {
  const { rows } = await admin.query<{
    me: string;
    superuser: boolean;
    createrole: boolean;
    createdb: boolean;
  }>(
    `SELECT current_user AS me, rolsuper AS superuser, rolcreaterole AS createrole, rolcreatedb AS createdb
       FROM pg_catalog.pg_roles WHERE rolname = current_user`,
  );
  const me = rows[0];
  if (!me) throw new RestoreError(`${options.where}: the restoring role is not in pg_roles`);
  const existing = await admin.query<{ name: string; member: boolean }>(
    `SELECT rolname AS name, pg_catalog.pg_has_role(current_user, oid, 'MEMBER') AS member
       FROM pg_catalog.pg_roles WHERE rolname = ANY($1::text[])`,
    [roles.map((r) => r.name)],
  );
  const found = new Map(existing.rows.map((r) => [r.name, r.member]));
  const missing = roles.filter((r) => !found.has(r.name));
  const problems: string[] = [];
  if (!me.superuser && !me.createdb) problems.push(`${me.me} lacks CREATEDB to create the target database`);
  if (missing.length > 0 && !me.superuser && !me.createrole) {
    problems.push(
      `role${missing.length === 1 ? '' : 's'} ${missing.map((r) => r.name).join(', ')} ` +
        `do${missing.length === 1 ? 'es' : ''} not exist and ${me.me} lacks CREATEROLE to create ${missing.length === 1 ? 'it' : 'them'}`,
    );
  }
  if (missing.some((r) => r.superuser || r.replication || r.bypassRls) && !me.superuser) {
    const special = missing.filter((r) => r.superuser || r.replication || r.bypassRls).map((r) => r.name);
    problems.push(`creating ${special.join(', ')} (SUPERUSER, REPLICATION or BYPASSRLS) needs a superuser`);
  }
  const roleSettings = (options.state?.settings ?? []).filter((s) => s.role !== null);
  if (roleSettings.length > 0 && !me.superuser && !me.createrole) {
    const which = roleSettings.map((s) => `${s.setting} for ${s.role}`).join(', ');
    problems.push(`${me.me} lacks CREATEROLE to restore the role settings in the database (${which})`);
  }
  if (!me.superuser) {
    // ALTER … OWNER TO and ALTER DEFAULT PRIVILEGES FOR ROLE both need membership in the role.
    const notMember = roles
      .filter((r) => (options.owners ? r.owns : r.defaultPrivileges) && found.get(r.name) === false)
      .map((r) => r.name);
    if (notMember.length > 0) {
      problems.push(
        `${me.me} cannot set the owner ${notMember.join(', ')}: it is not a member of ` +
          `${notMember.length === 1 ? 'that role' : 'those roles'} (GRANT ${notMember.map(quoteIdent).join(', ')} TO ${quoteIdent(me.me)}, ` +
          `${options.owners ? 'or restore with the plan option noOwner: true' : 'needed for their default privileges'})`,
      );
    }
  }
  if (problems.length > 0) {
    throw new RestoreError(
      `cannot restore ${options.where} with its owners and privileges: ${problems.join('; ')}`,
    );
  }
  if (options.dryRun) return { created: [], missing: missing.map((r) => r.name), withPassword: [] };
  const created: string[] = [];
  const withPassword: string[] = [];
  for (const role of missing) {
    const hash = options.passwords?.get(role.name);
    // The hash goes into the statement only (CREATE ROLE takes no parameters); no error message repeats it.
    await admin.query(
      `CREATE ROLE ${quoteIdent(role.name)} ${roleAttributes(role)}${hash === undefined ? '' : ` PASSWORD ${quoteLiteral(hash)}`}`,
    );
    created.push(role.name);
    if (hash !== undefined) withPassword.push(role.name);
  }
  const createdSet = new Set(created);
  for (const role of missing) {
    for (const group of role.memberOf) {
      // Groups it creates or finds, and the predefined roles (pg_read_all_data, …) every server has.
      if (!createdSet.has(group.role) && !found.has(group.role) && !group.role.startsWith('pg_')) continue;
      await admin.query(
        `GRANT ${quoteIdent(group.role)} TO ${quoteIdent(role.name)}${group.admin ? ' WITH ADMIN OPTION' : ''}`,
      );
    }
  }
  if (!me.superuser) {
    for (const role of missing.filter((r) => (options.owners ? r.owns : r.defaultPrivileges))) {
      await admin.query(`GRANT ${quoteIdent(role.name)} TO ${quoteIdent(me.me)}`);
    }
  }
  return { created, missing: missing.map((r) => r.name), withPassword };
}

/** CREATE ROLE's options for a recorded role (no password). */
function roleAttributes(role: PostgresRole): string {
  const flag = (on: boolean, name: string) => (on ? name : `NO${name}`);
  const parts = [
    flag(role.superuser, 'SUPERUSER'),
    flag(role.inherit, 'INHERIT'),
    flag(role.createRole, 'CREATEROLE'),
    flag(role.createDb, 'CREATEDB'),
    flag(role.login, 'LOGIN'),
    flag(role.replication, 'REPLICATION'),
    flag(role.bypassRls, 'BYPASSRLS'),
    `CONNECTION LIMIT ${Math.trunc(role.connectionLimit)}`,
  ];
  if (role.validUntil) parts.push(`VALID UNTIL ${quoteLiteral(role.validUntil)}`);
  return parts.join(' ');
}

/**
 * Gives `target` the recorded database-level state other than its owner (set before pg_restore, see
 * restore.ts): comment, ACL (the
 * default PUBLIC privileges revoked first when the source had an explicit ACL) and settings. A setting's
 * value goes through `set_config` and `SET … FROM CURRENT`, so the server parses it exactly as it printed
 * it (lists such as search_path included).
 * @throws the server's error when a statement fails (the caller drops the target).
 */
export async function applyDatabaseState(
  admin: pg.Client,
  target: string,
  state: DatabaseState,
  options: { owners: boolean },
): Promise<void> {
  const db = quoteIdent(target);
  if (state.comment !== null)
    await admin.query(`COMMENT ON DATABASE ${db} IS ${quoteLiteral(state.comment)}`);
  if (state.acl !== null) {
    await admin.query(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    const { rows } = await admin.query<{ grantee: string | null; privilege: string; grantable: boolean }>(
      `SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(a.grantee) END AS grantee,
              a.privilege_type AS privilege, a.is_grantable AS grantable
         FROM aclexplode($1::text[]::aclitem[]) a`,
      [state.acl],
    );
    for (const row of rows) {
      const who = row.grantee === null ? 'PUBLIC' : quoteIdent(row.grantee);
      if (row.grantee === state.owner && options.owners) continue; // the owner's own rights are implicit
      await admin.query(
        `GRANT ${row.privilege} ON DATABASE ${db} TO ${who}${row.grantable ? ' WITH GRANT OPTION' : ''}`,
      );
    }
  }
  for (const { role, setting } of state.settings) {
    const eq = setting.indexOf('=');
    const name = setting.slice(0, eq);
    const value = setting.slice(eq + 1);
    const scope = role === null ? `DATABASE ${db}` : `ROLE ${quoteIdent(role)} IN DATABASE ${db}`;
    await admin.query('BEGIN');
    try {
      await admin.query('SELECT pg_catalog.set_config($1, $2, true)', [name, value]);
      await admin.query(`ALTER ${scope} SET ${quoteIdent(name)} FROM CURRENT`);
      await admin.query('COMMIT');
    } catch (error) {
      await admin.query('ROLLBACK').catch(() => {});
      // 55P02 cant_change_runtime_param (a backend-start setting a session cannot change): as a literal.
      if (sqlStateOf(error) !== '55P02') throw error;
      await admin.query(`ALTER ${scope} SET ${quoteIdent(name)} = ${quoteLiteral(value)}`);
    }
  }
}
