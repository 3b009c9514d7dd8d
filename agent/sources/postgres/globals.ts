/**
 * What a database needs beyond its own archive: the cluster-wide roles that own its objects or appear in
 * its privileges (with their memberships), and its database-level state — owner, comment, ACL and
 * `ALTER DATABASE … SET` / `ALTER ROLE … IN DATABASE … SET` settings. A `pg_dump -Fc` archive restored
 * without `--create` carries neither, so a backup records them in the manifest's details and a restore
 * checks, creates and applies them around pg_restore. Role passwords are never recorded.
 */
import type pg from 'pg';
import { RestoreError } from '#core/errors';
import type { DatabaseState, PostgresRole } from '#core/sources/postgres';
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

/** What {@link prepareRoles} found and did. */
export interface RolePreparation {
  /** Roles it created (they were missing on the server), in creation order; none in a dry run. */
  created: string[];
  /** Roles that were missing on the server. */
  missing: string[];
}

/**
 * Makes sure a restore can create its target and give every object its recorded owner and privileges,
 * before anything is created: the restoring role needs CREATEDB, and must be superuser or a member of
 * each owning role (PostgreSQL's rule for
 * `ALTER … OWNER TO`), and every needed role must exist. Missing roles are created (attributes and
 * memberships as recorded, never a password) when the restoring role has CREATEROLE; membership in an
 * owner it just created is granted to it, so it can set that owner. `owners: false` (`noOwner`) checks
 * only the roles named in privileges. `dryRun` checks and reports what it would create, changing nothing.
 * @throws RestoreError naming the role and the missing privilege, before any change, when the restoring
 *   role lacks CREATEROLE for a missing role or membership in an existing owner.
 */
export async function prepareRoles(
  admin: pg.Client,
  roles: readonly PostgresRole[],
  options: { owners: boolean; where: string; state?: DatabaseState; dryRun?: boolean },
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
  if (options.dryRun) return { created: [], missing: missing.map((r) => r.name) };
  const created: string[] = [];
  for (const role of missing) {
    await admin.query(`CREATE ROLE ${quoteIdent(role.name)} ${roleAttributes(role)}`);
    created.push(role.name);
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
  return { created, missing: missing.map((r) => r.name) };
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
