/**
 * Selective restores that give usable tables: a partitioned table comes with its partitions, a table
 * with its enum type, identity and serial sequences (with their values), primary key, constraints,
 * indexes, triggers, policies and privileges — and without a foreign key to a table not restored. Run as
 * `strongbox`, a non-superuser member of the owning role `app`; the application uses the tables after.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateRestoreRequest } from '#agent/restore';
import type { SourceContext } from '#agent/sources/context';
import { checkPostgres, restorePostgres } from '#agent/sources/postgres/index';
import { PlanError, RestoreError } from '#core/errors';
import { validatePlan } from '#core/plan';
import type { PostgresDetails, PostgresSourceConfig } from '#core/sources/index';
import { dumpWithDriver, type PgServer, postgresSourceOf, startPostgres } from '#test/support/postgres';

const run = promisify(execFile);
const ctx: SourceContext = { env: { PATH: process.env.PATH } };
let pg: PgServer;
let archive: Buffer;
let details: PostgresDetails;
let config: PostgresSourceConfig;

async function asApp(database: string, sql: string): Promise<string> {
  const client = new Client({ host: pg.host, port: pg.port, user: 'app', database });
  await client.connect();
  try {
    const { rows } = await client.query<Record<string, unknown>>(sql);
    return rows[0] ? String(Object.values(rows[0])[0]) : '';
  } finally {
    await client.end();
  }
}

/** `pg_dump -s` of some tables, owners and ACLs included, without the header. */
async function schemaOf(database: string, ...tables: string[]): Promise<string> {
  const { stdout } = await run(join(pg.binDir, 'pg_dump'), [
    '-s',
    '-h',
    pg.socketDir,
    '-p',
    String(pg.port),
    '-U',
    'postgres',
    ...tables.flatMap((t) => ['-t', t]),
    database,
  ]);
  return stdout.replace(/^-- Dumped (from|by) .*$/gm, '').replace(/^\\(un)?restrict .*$/gm, '');
}

function databases(): Promise<string> {
  return pg.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database");
}

beforeAll(async () => {
  pg = await startPostgres();
  await pg.psql(
    `CREATE ROLE app LOGIN; CREATE ROLE app_ro NOLOGIN;
     CREATE ROLE strongbox LOGIN CREATEDB IN ROLE pg_read_all_data; GRANT app TO strongbox;
     CREATE DATABASE shop OWNER app;`,
  );
  await pg.psql(
    `SET ROLE app;
     CREATE SCHEMA sales;
     CREATE TYPE sales.state AS ENUM ('open', 'paid');
     CREATE TABLE sales.customers (id int PRIMARY KEY, name text);
     CREATE TABLE sales.orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ref serial UNIQUE,
       customer int REFERENCES sales.customers, state sales.state NOT NULL DEFAULT 'open',
       total numeric CHECK (total >= 0), touched timestamptz);
     CREATE INDEX orders_state ON sales.orders (state);
     CREATE FUNCTION sales.touch() RETURNS trigger LANGUAGE plpgsql AS
       $$BEGIN NEW.touched := '2001-02-03 04:05:06+00'; RETURN NEW; END$$;
     CREATE TRIGGER orders_touch BEFORE INSERT ON sales.orders FOR EACH ROW EXECUTE FUNCTION sales.touch();
     GRANT USAGE ON SCHEMA sales TO app_ro; GRANT SELECT ON sales.orders TO app_ro;
     CREATE TABLE sales.events (id bigint GENERATED ALWAYS AS IDENTITY, at date NOT NULL, state sales.state,
       PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
     CREATE TABLE sales.events_2025 PARTITION OF sales.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
     CREATE TABLE sales.events_2026 PARTITION OF sales.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
     CREATE INDEX events_state ON sales.events (state);
     INSERT INTO sales.customers SELECT g, 'c' || g FROM generate_series(1, 20) g;
     INSERT INTO sales.orders (customer, state, total) SELECT 1 + g % 20, 'paid', g FROM generate_series(1, 40) g;
     INSERT INTO sales.events (at, state) SELECT date '2025-06-01' + g * 2, 'open' FROM generate_series(1, 200) g;`,
    'shop',
  );
  config = postgresSourceOf(pg, 'shop', 'strongbox');
  ({ archive, details } = await dumpWithDriver(config, ctx));
}, 120_000);

afterAll(async () => {
  await pg?.stop();
});

describe('selective restore', () => {
  it('restores a partitioned and an enum-typed table ready for the application, nothing else', async () => {
    await restorePostgres(config, Readable.from([archive]), {
      targetDatabase: 'shop_sel',
      tables: ['sales.orders', 'sales.events'],
      details,
      ctx,
    });

    const tables = await pg.psql(
      "SELECT string_agg(tablename || ':' || tableowner, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'sales'",
      'shop_sel',
    );
    expect(tables).toBe('events:app,events_2025:app,events_2026:app,orders:app');
    // Identical definitions, owners and privileges — except the foreign key to the table not restored.
    expect(await schemaOf('shop_sel', 'sales.events*')).toBe(await schemaOf('shop', 'sales.events*'));
    const withoutFk = (await schemaOf('shop', 'sales.orders')).replace(
      /\n--\n-- Name: orders orders_customer_fkey;.*?\n\n\n/s,
      '\n',
    );
    expect(await schemaOf('shop_sel', 'sales.orders')).toBe(withoutFk);
    const checks = await checkPostgres(config, 'shop_sel', details, ctx, ['sales.orders', 'sales.events']);
    expect(checks[0]?.detail).toMatch(/^3 tables match/);
    expect(checks.flatMap((c) => c.findings)).toEqual([]);
    // The application works: identity, serial, enum default, trigger, partition routing, unique, check.
    expect(await asApp('shop_sel', 'INSERT INTO sales.orders (total) VALUES (5) RETURNING id')).toBe('41');
    expect(
      await asApp(
        'shop_sel',
        "SELECT ref::text || ',' || state::text || ',' || (touched = '2001-02-03 04:05:06+00')::text FROM sales.orders WHERE id = 41",
      ),
    ).toBe('41,open,true');
    expect(
      await asApp(
        'shop_sel',
        "INSERT INTO sales.events (at, state) VALUES ('2026-12-31', 'paid') RETURNING id",
      ),
    ).toBe('201');
    await expect(asApp('shop_sel', 'INSERT INTO sales.orders (total) VALUES (-1)')).rejects.toThrow(/check/);
  });

  it('refuses a table the backup does not have, leaving no database', async () => {
    const before = await databases();
    const attempt = restorePostgres(config, Readable.from([archive]), {
      targetDatabase: 'shop_missing',
      tables: ['sales.orders', 'sales.nope'],
      details,
      ctx,
    });
    await expect(attempt).rejects.toBeInstanceOf(RestoreError);
    await expect(attempt).rejects.toThrow(/sales\.nope is not in the backup/);
    expect(await databases()).toBe(before);
  });

  it('refuses an empty or malformed table list and a target name PostgreSQL would truncate', async () => {
    const before = await databases();
    const plan = validatePlan({
      version: 1,
      vault: { url: 'file:///tmp/strongbox-unused' },
      key: { type: 'local', path: '/tmp/strongbox-unused.key' },
      jobs: [{ name: 'shop', source: { kind: 'postgres', database: 'shop' } }],
    });
    const job = plan.jobs[0];
    if (!job) throw new Error('no job');
    expect(() => validateRestoreRequest(job, { tables: [] })).toThrow(/tables: the list is empty/);
    expect(() => validateRestoreRequest(job, { tables: [''] })).toThrow(/tables: the list is empty/);
    expect(() => validateRestoreRequest(job, { tables: ['a', '', 'b'] })).toThrow(/empty entry/);
    await expect(
      restorePostgres(config, Readable.from([archive]), { targetDatabase: 'x', tables: [], details, ctx }),
    ).rejects.toBeInstanceOf(PlanError);
    await expect(
      restorePostgres(config, Readable.from([archive]), {
        targetDatabase: 'x',
        tables: ['a..b'],
        details,
        ctx,
      }),
    ).rejects.toBeInstanceOf(PlanError);
    const long = `shop_${'é'.repeat(30)}`;
    await expect(
      restorePostgres(config, Readable.from([archive]), { targetDatabase: long, details, ctx }),
    ).rejects.toThrow(/65 bytes; PostgreSQL keeps 63/);
    expect(await databases()).toBe(before);
  });
});
