/**
 * Restores that leave a working application, against real clusters built like real sites: an
 * application role owns its schema and tables, a reporting role reads through a group, the database has
 * its own settings, comment and ACL, and backups and restores run as `strongbox`, a non-superuser with
 * pg_read_all_data, CREATEDB and membership in the owner. A second, fresh cluster has none of those roles.
 * The schema covers identity columns, enums, domains, inheritance, RLS policies, views, a materialized
 * view, an extension, a publication, a large object, default privileges and database settings; a
 * restore must give the same `pg_dump -s` (owners and ACLs included) and the same content.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SourceContext } from '#agent/sources/context';
import { doctorPostgres } from '#agent/sources/postgres/doctor';
import { restorePostgres } from '#agent/sources/postgres/index';
import { RestoreError } from '#core/errors';
import type { PostgresDetails, PostgresSourceConfig } from '#core/sources/index';
import { dumpWithDriver, type PgServer, postgresSourceOf, startPostgres } from '#test/support/postgres';

const run = promisify(execFile);
let source: PgServer;
let fresh: PgServer;
/** The archive and details of one backup of `shop`, taken as strongbox. */
let archive: Buffer;
let details: PostgresDetails;

const SITE_ROLES = `
  CREATE ROLE app LOGIN;
  CREATE ROLE app_ro NOLOGIN;
  CREATE ROLE reporter LOGIN IN ROLE app_ro CONNECTION LIMIT 5;
  CREATE ROLE strongbox LOGIN CREATEDB CREATEROLE IN ROLE pg_read_all_data;
  GRANT app TO strongbox;
  CREATE ROLE outsider LOGIN CREATEDB;
  CREATE ROLE nocreatedb LOGIN IN ROLE app;
  CREATE ROLE helper LOGIN CREATEDB CREATEROLE IN ROLE app;`;

const SITE_SCHEMA = `
  SET ROLE app;
  CREATE SCHEMA sales;
  CREATE TYPE sales.state AS ENUM ('open', 'paid', 'shipped');
  CREATE TABLE sales.orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, state sales.state NOT NULL,
                             total numeric(10, 2) CHECK (total >= 0));
  CREATE TABLE sales.audit (id bigserial PRIMARY KEY, order_id int REFERENCES sales.orders, note text);
  CREATE INDEX ON sales.audit (order_id);
  CREATE VIEW sales.open_orders AS SELECT * FROM sales.orders WHERE state = 'open';
  ALTER TABLE sales.orders ENABLE ROW LEVEL SECURITY;
  CREATE POLICY reporter_sees_paid ON sales.orders FOR SELECT TO app_ro USING (state <> 'open');
  GRANT USAGE ON SCHEMA sales TO app_ro;
  GRANT SELECT ON sales.orders, sales.open_orders TO app_ro;
  ALTER DEFAULT PRIVILEGES IN SCHEMA sales GRANT SELECT ON TABLES TO app_ro;
  INSERT INTO sales.orders (state, total) SELECT (ARRAY['open','paid','shipped'])[1 + g % 3]::sales.state, g
    FROM generate_series(1, 300) g;
  INSERT INTO sales.audit (order_id, note) SELECT g, 'n' || g FROM generate_series(1, 300) g;
  CREATE DOMAIN sales.money_amount AS numeric(10, 2) CHECK (VALUE >= 0);
  CREATE TABLE sales.archive (id int PRIMARY KEY, amount sales.money_amount);
  CREATE TABLE sales.archive_2020 (year int DEFAULT 2020) INHERITS (sales.archive);
  INSERT INTO sales.archive_2020 (id, amount) VALUES (1, 9.5), (2, 3);
  CREATE MATERIALIZED VIEW sales.totals AS SELECT state, sum(total) AS total FROM sales.orders GROUP BY state;
  CREATE EXTENSION pgcrypto SCHEMA sales;
  CREATE PUBLICATION shop_orders FOR TABLE sales.orders;
  SELECT lo_from_bytea(0, 'large object bytes');
  RESET ROLE;
  COMMENT ON DATABASE shop IS 'the shop''s orders';
  ALTER DATABASE shop SET search_path = sales, public;
  ALTER DATABASE shop SET statement_timeout = '42s';
  ALTER ROLE reporter IN DATABASE shop SET work_mem = '8MB';
  REVOKE ALL ON DATABASE shop FROM PUBLIC;
  GRANT CONNECT ON DATABASE shop TO app_ro, strongbox, outsider, nocreatedb;
  GRANT CONNECT, TEMPORARY ON DATABASE shop TO app;`;

function configFor(server: PgServer, user: string, extra: Partial<PostgresSourceConfig> = {}) {
  return postgresSourceOf(server, 'shop', user, extra);
}

function logger(): { ctx: SourceContext; lines: string[] } {
  const lines: string[] = [];
  return { ctx: { env: { PATH: process.env.PATH }, log: (line) => lines.push(line) }, lines };
}

/** `pg_dump -s` of a database as the superuser, owners and ACLs included, without its header. */
async function schemaOf(server: PgServer, database: string): Promise<string> {
  const { stdout } = await run(
    join(server.binDir, 'pg_dump'),
    ['-s', '-h', server.socketDir, '-p', String(server.port), '-U', 'postgres', database],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout.replace(/^-- Dumped (from|by) .*$/gm, '').replace(/^\\(un)?restrict .*$/gm, '');
}

/** Owner, comment, ACL and settings of a database, in a form that does not name the database. */
function databaseStateOf(server: PgServer, database: string): Promise<string> {
  return server.psql(
    `SELECT pg_get_userbyid(d.datdba) || ' | ' || coalesce(shobj_description(d.oid, 'pg_database'), '-')
            || ' | ' || coalesce(d.datacl::text, '-') || ' | ' ||
            coalesce((SELECT string_agg(coalesce(r.rolname, '*') || ':' || array_to_string(s.setconfig, ','),
                                        ';' ORDER BY r.rolname NULLS FIRST)
                        FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole
                       WHERE s.setdatabase = d.oid), '-')
       FROM pg_database d WHERE d.datname = '${database}'`,
  );
}

/** Content fingerprint of every table the application has. */
function contentOf(server: PgServer, database: string): Promise<string> {
  return server.psql(
    `SELECT (SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM sales.orders t) || ' ' ||
            (SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM sales.audit t) || ' ' ||
            (SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM sales.archive t) || ' ' ||
            (SELECT md5(string_agg(t::text, '|' ORDER BY t.state)) FROM sales.totals t) || ' ' ||
            (SELECT string_agg(convert_from(lo_get(oid), 'UTF8'), '|') FROM pg_largeobject_metadata)`,
    database,
  );
}

/** Runs SQL as a role over TCP (trust) and returns the first value. */
async function asRole(server: PgServer, user: string, database: string, sql: string): Promise<string> {
  const client = new Client({ host: server.host, port: server.port, user, database });
  await client.connect();
  try {
    const { rows } = await client.query<Record<string, unknown>>(sql);
    const first = rows[0];
    return first ? String(Object.values(first)[0]) : '';
  } finally {
    await client.end();
  }
}

function databasesOf(server: PgServer): Promise<string> {
  return server.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database");
}

function rolesOf(server: PgServer): Promise<string> {
  return server.psql(
    `SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname !~ '^pg_'`,
  );
}

beforeAll(async () => {
  [source, fresh] = await Promise.all([startPostgres(), startPostgres()]);
  await source.psql(SITE_ROLES);
  await source.psql('CREATE DATABASE shop OWNER app');
  await source.psql(SITE_SCHEMA, 'shop');
  await fresh.psql('CREATE ROLE strongbox LOGIN CREATEDB CREATEROLE; CREATE ROLE plain LOGIN CREATEDB');
  ({ archive, details } = await dumpWithDriver(configFor(source, 'strongbox')));
}, 120_000);

afterAll(async () => {
  await Promise.all([source?.stop(), fresh?.stop()]);
});

describe('backup records what the database needs beyond its archive', () => {
  it('lists the owning and granted roles with their groups, and the database state', () => {
    const roles = details.roles ?? [];
    expect(roles.map((r) => `${r.name}${r.owns ? '*' : ''}`)).toEqual([
      'app*',
      'app_ro',
      'nocreatedb',
      'outsider',
      'reporter',
      'strongbox',
    ]);
    expect(roles.find((r) => r.name === 'reporter')).toMatchObject({
      login: true,
      connectionLimit: 5,
      memberOf: [{ role: 'app_ro', admin: false }],
    });
    expect(details.databaseState).toMatchObject({
      owner: 'app',
      comment: "the shop's orders",
      settings: [
        { role: null, setting: 'search_path=sales, public' },
        { role: null, setting: 'statement_timeout=42s' },
        { role: 'reporter', setting: 'work_mem=8MB' },
      ],
    });
    expect(JSON.stringify(details)).not.toMatch(/password|SCRAM|md5[0-9a-f]{32}/i);
  });
});

describe('restore keeps owners, privileges and database state', () => {
  it('restores as the non-superuser backup role exactly as dumped, and the application works', async () => {
    const { ctx } = logger();
    await restorePostgres(configFor(source, 'strongbox'), Readable.from(archive), {
      targetDatabase: 'shop_copy',
      details,
      ctx,
    });

    expect(await schemaOf(source, 'shop_copy')).toBe(await schemaOf(source, 'shop'));
    expect(await databaseStateOf(source, 'shop_copy')).toBe(await databaseStateOf(source, 'shop'));
    expect(await contentOf(source, 'shop_copy')).toBe(await contentOf(source, 'shop'));
    expect(
      await asRole(
        source,
        'app',
        'shop_copy',
        "INSERT INTO orders (state, total) VALUES ('open', 1) RETURNING id",
      ),
    ).toBe('301');
    expect(await asRole(source, 'reporter', 'shop_copy', 'SELECT count(*) FROM orders')).toBe('200');
    expect(await asRole(source, 'reporter', 'shop_copy', 'SHOW work_mem')).toBe('8MB');
  });

  it('refuses before creating anything when the restoring role cannot set an owner, naming it', async () => {
    const before = await databasesOf(source);
    const attempt = restorePostgres(configFor(source, 'outsider'), Readable.from(archive), {
      targetDatabase: 'shop_outsider',
      details,
      ctx: logger().ctx,
    });
    await expect(attempt).rejects.toBeInstanceOf(RestoreError);
    await expect(attempt).rejects.toThrow(/outsider cannot set the owner app: it is not a member/);
    expect(await databasesOf(source)).toBe(before);
  });

  it('refuses before creating anything when the restoring role lacks CREATEDB', async () => {
    const before = await databasesOf(source);
    const attempt = restorePostgres(configFor(source, 'nocreatedb'), Readable.from(archive), {
      targetDatabase: 'shop_nocreatedb',
      details,
      ctx: logger().ctx,
    });
    await expect(attempt).rejects.toThrow(/nocreatedb lacks CREATEDB/);
    expect(await databasesOf(source)).toBe(before);
  });

  it('with noOwner: the restoring role owns everything, privileges stay', async () => {
    const refused = restorePostgres(configFor(source, 'outsider'), Readable.from(archive), {
      targetDatabase: 'shop_noowner',
      details,
      noOwner: true,
      ctx: logger().ctx,
    });
    await expect(refused).rejects.toThrow(/outsider cannot set the owner app: .*default privileges/);
    await restorePostgres(configFor(source, 'helper'), Readable.from(archive), {
      targetDatabase: 'shop_noowner',
      details,
      noOwner: true,
      ctx: logger().ctx,
    });
    expect(
      await source.psql(
        `SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',') FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'sales'`,
        'shop_noowner',
      ),
    ).toBe('helper');
    expect(
      await source.psql(`SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop_noowner'`),
    ).toBe('helper');
    expect(await asRole(source, 'reporter', 'shop_noowner', 'SELECT count(*) FROM orders')).toBe('200');
  });
});

describe('restore onto a fresh server without the roles', () => {
  it('refuses and leaves nothing when the restoring role cannot create the missing roles', async () => {
    const [databases, roles] = [await databasesOf(fresh), await rolesOf(fresh)];
    const attempt = restorePostgres(configFor(fresh, 'plain'), Readable.from(archive), {
      targetDatabase: 'shop',
      details,
      ctx: logger().ctx,
    });
    await expect(attempt).rejects.toThrow(/roles app, app_ro, .* do not exist and plain lacks CREATEROLE/);
    expect(await databasesOf(fresh)).toBe(databases);
    expect(await rolesOf(fresh)).toBe(roles);
  });

  it('creates the missing roles first, says which, and restores owners and state as dumped', async () => {
    const { ctx, lines } = logger();
    await restorePostgres(configFor(fresh, 'strongbox'), Readable.from(archive), {
      targetDatabase: 'shop',
      details,
      ctx,
    });
    expect(lines.join('\n')).toMatch(
      /created roles app, app_ro, nocreatedb, outsider, reporter \(missing on/,
    );
    expect(await schemaOf(fresh, 'shop')).toBe(await schemaOf(source, 'shop'));
    expect(await databaseStateOf(fresh, 'shop')).toBe(await databaseStateOf(source, 'shop'));
    expect(await contentOf(fresh, 'shop')).toBe(await contentOf(source, 'shop'));
    expect(
      await fresh.psql(`SELECT rolcanlogin || ',' || rolconnlimit FROM pg_roles WHERE rolname = 'reporter'`),
    ).toBe('true,5');
    expect(await asRole(fresh, 'reporter', 'shop', 'SELECT count(*) FROM orders')).toBe('200');
    expect(
      await asRole(fresh, 'app', 'shop', "INSERT INTO orders (state, total) VALUES ('paid', 2) RETURNING id"),
    ).toBe('301');
  });

  it('drops the roles it created when the restore then fails', async () => {
    const other = await startPostgres();
    try {
      await other.psql('CREATE ROLE strongbox LOGIN CREATEDB CREATEROLE');
      const roles = await rolesOf(other);
      const cut = Readable.from([archive.subarray(0, Math.floor(archive.length / 2))]);
      await expect(
        restorePostgres(configFor(other, 'strongbox'), cut, {
          targetDatabase: 'shop',
          details,
          ctx: logger().ctx,
        }),
      ).rejects.toBeInstanceOf(RestoreError);
      expect(await rolesOf(other)).toBe(roles);
      expect(await databasesOf(other)).not.toMatch(/shop/);
    } finally {
      await other.stop();
    }
  }, 60_000);
});

describe('doctor checks what backup, restore, drill and replace need', () => {
  it('passes for the backup role and names every missing privilege of another', async () => {
    const good = await doctorPostgres(configFor(source, 'strongbox'), logger().ctx);
    expect(good.filter((c) => !c.ok)).toEqual([]);
    expect(good.map((c) => c.subject)).toContain('backup: SELECT on every table of shop');

    const bad = await doctorPostgres(configFor(source, 'outsider'), logger().ctx);
    const failed = Object.fromEntries(bad.filter((c) => !c.ok).map((c) => [c.subject, c.detail]));
    expect(failed['backup: SELECT on every table of shop']).toMatch(
      /outsider cannot SELECT "sales"."archive", .*"sales"."audit", .*"sales"."orders", .*"sales"."totals": the backup would fail/,
    );
    expect(failed['restore, drill, replace: CREATEDB and the owners']).toMatch(
      /outsider cannot set the owner app/,
    );

    const excluded = await doctorPostgres(
      configFor(source, 'outsider', { excludeTables: ['sales.*'], noOwner: true }),
      logger().ctx,
    );
    expect(excluded.filter((c) => !c.ok)).toEqual([]);
    const noCreate = await doctorPostgres(configFor(source, 'nocreatedb'), logger().ctx);
    expect(noCreate.find((c) => c.subject.startsWith('restore'))?.detail).toMatch(
      /nocreatedb lacks CREATEDB/,
    );
  });
});
