/**
 * The logical PostgreSQL source against real clusters: backups streamed straight into restores, selective
 * restores, refusals that leave existing data untouched, failures that leave nothing behind, snapshot
 * consistency under concurrent writes, the replace swap, and passwords kept out of argv.
 */
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePassword, type SourceContext } from '#agent/sources/context';
import {
  backupPostgres,
  checkPostgres,
  databaseExists,
  dropDatabase,
  restorePostgres,
  runSqlChecks,
  swapDatabases,
} from '#agent/sources/postgres/index';
import { IntegrityError, PlanError, RestoreError, SourceError } from '#core/errors';
import type { SourceBackup } from '#core/ports';
import type { PostgresSourceConfig } from '#core/sources/index';
import { type PgServer, postgresSourceOf, startPostgres } from '#test/support/postgres';
import { streamOf } from '#test/support/sources';
import { fillDemoDatabase } from '../../scripts/lib/postgres-cluster';

const ctx: SourceContext = { env: { PATH: process.env.PATH } };
let pg: PgServer;

/** The source as the superuser, its tools found on PATH or in the usual directory (no binDir). */
function configFor(server: PgServer, database: string, extra: Partial<PostgresSourceConfig> = {}) {
  const { binDir: _found, ...config } = postgresSourceOf(server, database, server.user);
  return { ...config, ...extra } satisfies PostgresSourceConfig;
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Table names of a database, `schema.table`, sorted. */
async function tablesOf(database: string): Promise<string[]> {
  const out = await pg.psql(
    `SELECT schemaname || '.' || tablename FROM pg_tables
      WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
    database,
  );
  return out === '' ? [] : out.split('\n');
}

/** Row count and an order-independent checksum of a table's content. */
function fingerprint(table: string, database: string): Promise<string> {
  return pg.psql(
    `SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')
                   FROM ${table} t`,
    database,
  );
}

/**
 * A directory of wrappers around the real client tools: each runs `prelude` (shell) and then the tool.
 * Remove it with rm when done.
 */
async function wrapTools(realBinDir: string, prelude: (tool: string) => string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'strongbox-pg-wrap-'));
  for (const tool of ['pg_dump', 'pg_restore', 'psql']) {
    await writeFile(join(dir, tool), `#!/bin/sh\n${prelude(tool)}\nexec '${join(realBinDir, tool)}' "$@"\n`);
    await chmod(join(dir, tool), 0o755);
  }
  return dir;
}

beforeAll(async () => {
  pg = await startPostgres({ databases: ['shop', 'multi', 'busy', 'taken'] });
  await fillDemoDatabase(pg, 'shop', { scale: 0.01 });
  await pg.psql(
    `CREATE SCHEMA sales;
     CREATE TABLE public.orders (id int PRIMARY KEY, note text);
     CREATE TABLE public.refunds (id int PRIMARY KEY, amount int);
     CREATE TABLE sales.orders (id int PRIMARY KEY, region text);
     CREATE TABLE sales.refunds (id int PRIMARY KEY, reason text);
     INSERT INTO public.orders SELECT g, md5(g::text) FROM generate_series(1, 10) g;
     INSERT INTO public.refunds SELECT g, g * 3 FROM generate_series(1, 7) g;
     INSERT INTO sales.orders SELECT g, 'r' || g FROM generate_series(1, 13) g;
     INSERT INTO sales.refunds SELECT g, 'why ' || g FROM generate_series(1, 5) g;`,
    'multi',
  );
  await pg.psql(`CREATE TABLE marker (note text); INSERT INTO marker VALUES ('precious');`, 'taken');
});

afterAll(async () => {
  await pg?.stop();
});

describe('backupPostgres → restorePostgres', () => {
  it('restores a whole database with the same rows and content, and the manifest details match', async () => {
    const config = configFor(pg, 'shop');
    const backup = await backupPostgres(config, ctx);
    const [result] = await Promise.all([
      backup.done,
      restorePostgres(config, streamOf(backup), { targetDatabase: 'shop_copy', ctx }),
    ]);

    const details = result.details;
    if (details.kind !== 'postgres') throw new Error('expected postgres details');
    expect(details.database).toBe('shop');
    expect(details.serverVersion).toMatch(/^\d+\.\d+/);
    expect(details.databaseBytes).toBeGreaterThan(1_000_000);
    expect(result.tools.pg_dump).toMatch(/^\d+\.\d+/);
    expect(details.tables.map((t) => `${t.schema}.${t.name}`)).toEqual([
      'public.attachments',
      'public.customers',
      'public.events',
      'public.order_items',
      'public.orders',
    ]);
    for (const table of details.tables) {
      const name = `${table.schema}.${table.name}`;
      expect(Number(await pg.psql(`SELECT count(*) FROM ${name}`, 'shop'))).toBe(table.rows);
      expect(await fingerprint(name, 'shop_copy')).toBe(await fingerprint(name, 'shop'));
    }
    expect((await checkPostgres(config, 'shop_copy', details, ctx)).flatMap((c) => c.findings)).toEqual([]);
  });

  it('leaves excluded tables out of the dump and out of the counts', async () => {
    const config = configFor(pg, 'shop', { excludeTables: ['events', 'public.attach*'] });
    const backup = await backupPostgres(config, ctx);
    const [result] = await Promise.all([
      backup.done,
      restorePostgres(config, streamOf(backup), { targetDatabase: 'shop_partial', ctx }),
    ]);

    if (result.details.kind !== 'postgres') throw new Error('expected postgres details');
    expect(result.details.excludedTables).toEqual(['events', 'public.attach*']);
    expect(result.details.tables.map((t) => t.name)).toEqual(['customers', 'order_items', 'orders']);
    expect(await tablesOf('shop_partial')).toEqual([
      'public.customers',
      'public.order_items',
      'public.orders',
    ]);
  });

  it('restores only the selected tables, schema-qualified or not', async () => {
    const config = configFor(pg, 'multi');
    const dump = await backupPostgres(config, ctx);
    const [result, archive] = await Promise.all([dump.done, collect(streamOf(dump))]);
    if (result.details.kind !== 'postgres') throw new Error('expected postgres details');

    await restorePostgres(config, Readable.from([archive]), {
      targetDatabase: 'multi_sel',
      tables: ['sales.orders', 'public.refunds'],
      ctx,
    });
    expect(await tablesOf('multi_sel')).toEqual(['public.refunds', 'sales.orders']);
    expect(await fingerprint('sales.orders', 'multi_sel')).toBe(await fingerprint('sales.orders', 'multi'));
    expect(
      (
        await checkPostgres(config, 'multi_sel', result.details, ctx, ['sales.orders', 'public.refunds'])
      ).flatMap((c) => c.findings),
    ).toEqual([]);

    await restorePostgres(config, Readable.from([archive]), {
      targetDatabase: 'multi_one',
      tables: ['orders'],
      ctx,
    });
    expect(await tablesOf('multi_one')).toEqual(['public.orders']);
  });

  it('fails a selective restore of a table the backup does not have, leaving no database', async () => {
    const config = configFor(pg, 'multi');
    const backup = await backupPostgres(config, ctx);
    // The whole archive first: a restore that stops after the table of contents otherwise races the backup
    // still writing into it, and whether the backup then completes depends on how much the pipes buffered.
    const [, archive] = await Promise.all([backup.done, collect(streamOf(backup))]);
    const restoring = restorePostgres(config, Readable.from([archive]), {
      targetDatabase: 'multi_missing',
      tables: ['nosuch'],
      ctx,
    });
    await expect(restoring).rejects.toThrow(/nosuch is not in the backup/);
    expect(await databaseExists(config, 'multi_missing', ctx)).toBe(false);
  });

  it('refuses to restore into an existing database and leaves it untouched', async () => {
    const config = configFor(pg, 'multi');
    const backup = await backupPostgres(config, ctx);
    const restoring = restorePostgres(config, streamOf(backup), { targetDatabase: 'taken', ctx });

    await expect(restoring).rejects.toBeInstanceOf(RestoreError);
    await expect(restoring).rejects.toThrow(/taken .*already exists/);
    await expect(backup.done).rejects.toBeInstanceOf(SourceError);
    expect(await pg.psql('SELECT note FROM marker', 'taken')).toBe('precious');
    expect(await tablesOf('taken')).toEqual(['public.marker']);
  });

  it('drops the target and rethrows the input error when the input fails midway', async () => {
    const config = configFor(pg, 'shop');
    const backup = await backupPostgres(config, ctx);
    const [, archive] = await Promise.all([backup.done, collect(streamOf(backup))]);
    const broken = new IntegrityError('chunk 7 failed authentication');
    const input = Readable.from(
      (async function* () {
        yield archive.subarray(0, archive.length / 2);
        await new Promise((resolve) => setTimeout(resolve, 200));
        throw broken;
      })(),
    );

    const restoring = restorePostgres(config, input, { targetDatabase: 'shop_broken', ctx });

    await expect(restoring).rejects.toBe(broken);
    expect(await databaseExists(config, 'shop_broken', ctx)).toBe(false);
  });

  it('fails on a truncated archive and leaves no database behind', async () => {
    const config = configFor(pg, 'shop');
    const backup = await backupPostgres(config, ctx);
    const [, archive] = await Promise.all([backup.done, collect(streamOf(backup))]);

    const restoring = restorePostgres(config, Readable.from([archive.subarray(0, archive.length - 5000)]), {
      targetDatabase: 'shop_truncated',
      ctx,
    });

    await expect(restoring).rejects.toBeInstanceOf(RestoreError);
    await expect(restoring).rejects.toThrow(/pg_restore/);
    expect(await databaseExists(config, 'shop_truncated', ctx)).toBe(false);
  });

  it('counts rows exactly in the dump snapshot while another session inserts', async () => {
    await pg.psql(
      `CREATE TABLE ticks (id bigserial PRIMARY KEY, payload text);
       INSERT INTO ticks (payload) SELECT md5(g::text) FROM generate_series(1, 20000) g;`,
      'busy',
    );
    // pg_dump starts a second late and a session holds the table locked while the backup starts, then
    // commits 500 rows: pg_dump starts after that commit and the counts wait for the lock, yet both must
    // see the table as it was when the snapshot was exported.
    const slowBin = await wrapTools(pg.binDir, () => '[ "$1" = "--version" ] || sleep 1');
    try {
      const config = configFor(pg, 'busy', { binDir: slowBin });
      const locker = new Client({ host: pg.host, port: pg.port, user: pg.user, database: 'busy' });
      await locker.connect();
      let backup: SourceBackup;
      try {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE ticks IN ACCESS EXCLUSIVE MODE');
        backup = await backupPostgres(config, ctx);
        await locker.query(`INSERT INTO ticks (payload) SELECT 'late' FROM generate_series(1, 500)`);
        await locker.query('COMMIT');
      } finally {
        await locker.end();
      }
      const writer = (async () => {
        for (let i = 0; i < 20; i++)
          await pg.psql(`INSERT INTO ticks (payload) VALUES ('during ${i}')`, 'busy');
      })();
      const [result] = await Promise.all([
        backup.done,
        restorePostgres(config, streamOf(backup), { targetDatabase: 'busy_copy', ctx }),
        writer,
      ]);

      if (result.details.kind !== 'postgres') throw new Error('expected postgres details');
      expect(result.details.tables).toEqual([{ schema: 'public', name: 'ticks', rows: 20000 }]);
      expect(await pg.psql('SELECT count(*) FROM ticks', 'busy_copy')).toBe('20000');
      expect(await pg.psql('SELECT count(*) FROM ticks', 'busy')).toBe('20520');
    } finally {
      await rm(slowBin, { recursive: true, force: true });
    }
  });

  it('counts rows from the archive exactly as count(*) does: escaped newlines, large objects, inheritance', async () => {
    await pg.psql('CREATE DATABASE tricky', 'postgres');
    await pg.psql(
      `CREATE TABLE notes (id int, body text, raw bytea);
       INSERT INTO notes VALUES (1, E'two\\nlines', '\\x0a0a0a'), (2, E'\\\\.', NULL), (3, '', ''), (4, NULL, NULL);
       INSERT INTO notes SELECT g, repeat(E'x\\n', g % 7), decode(repeat('0a', g % 5), 'hex') FROM generate_series(5, 3000) g;
       CREATE TABLE empty (id int);
       CREATE TABLE events (id int, at text);
       CREATE TABLE events_2024 () INHERITS (events);
       INSERT INTO events VALUES (1, 'a'), (2, 'b'), (3, 'c');
       INSERT INTO events_2024 VALUES (4, 'd'), (5, 'e');
       CREATE TABLE measures (day int, v int) PARTITION BY RANGE (day);
       CREATE TABLE measures_low PARTITION OF measures FOR VALUES FROM (0) TO (10);
       CREATE TABLE measures_high PARTITION OF measures FOR VALUES FROM (10) TO (100);
       INSERT INTO measures SELECT g, g FROM generate_series(0, 99) g;
       SELECT lo_from_bytea(0, decode(repeat('0a', 5000), 'hex'));`,
      'tricky',
    );
    const logged: string[] = [];
    const backup = await backupPostgres(configFor(pg, 'tricky'), {
      ...ctx,
      log: (line) => logged.push(line),
    });
    const [result] = await Promise.all([backup.done, collect(streamOf(backup))]);
    if (result.details.kind !== 'postgres') throw new Error('expected postgres details');
    const expected = [];
    for (const t of result.details.tables) {
      expected.push({
        ...t,
        rows: Number(await pg.psql(`SELECT count(*) FROM ${t.schema}.${t.name}`, 'tricky')),
      });
    }
    expect(result.details.tables.map((t) => t.name)).toEqual([
      'empty',
      'events',
      'events_2024',
      'measures_high',
      'measures_low',
      'notes',
    ]);
    expect(result.details.tables).toEqual(expected);
    // events' count(*) includes its child's rows: 3 own + 2.
    expect(result.details.tables.find((t) => t.name === 'events')?.rows).toBe(5);
    expect(logged.filter((line) => /count\(\*\)/.test(line))).toEqual([]);
  });

  it('counts with count(*) when the archive cannot be read, and says so', async () => {
    // A pg_dump that compresses its data (-Z1 after -Z0): the archive's blocks are no COPY text.
    const zBin = await wrapTools(pg.binDir, (tool) =>
      tool === 'pg_dump' ? `[ "$1" = "-Fc" ] && exec '${join(pg.binDir, 'pg_dump')}' "$@" -Z1` : '',
    );
    try {
      await pg.psql('CREATE DATABASE unread', 'postgres');
      await pg.psql(
        `CREATE TABLE notes (id int, body text);
         INSERT INTO notes SELECT g, E'a\\nb' FROM generate_series(1, 3000) g;
         CREATE TABLE events (id int);
         CREATE TABLE events_2024 () INHERITS (events);
         INSERT INTO events VALUES (1), (2), (3);
         INSERT INTO events_2024 VALUES (4), (5);`,
        'unread',
      );
      const logged: string[] = [];
      const config = configFor(pg, 'unread', { binDir: zBin });
      const backup = await backupPostgres(config, { ...ctx, log: (line) => logged.push(line) });
      const [result] = await Promise.all([backup.done, collect(streamOf(backup))]);
      if (result.details.kind !== 'postgres') throw new Error('expected postgres details');
      expect(result.details.tables.find((t) => t.name === 'notes')?.rows).toBe(3000);
      expect(result.details.tables.find((t) => t.name === 'events')?.rows).toBe(5);
      expect(logged).toEqual([
        expect.stringMatching(
          /row counts of .* are taken with count\(\*\): the archive could not be read \(the archive data is compressed\)/,
        ),
      ]);
    } finally {
      await rm(zBin, { recursive: true, force: true });
    }
  });

  it('fails the backup of a database that does not exist', async () => {
    await expect(backupPostgres(configFor(pg, 'nosuchdb'), ctx)).rejects.toThrow(
      /cannot connect to database nosuchdb on 127\.0\.0\.1:\d+ as postgres/,
    );
  });
});

describe('a failing pg_dump', () => {
  let binDir: string;

  beforeAll(async () => {
    binDir = await mkdtemp(join(tmpdir(), 'strongbox-fake-pg-'));
  });
  afterAll(async () => {
    await rm(binDir, { recursive: true, force: true });
  });

  it.each([
    [
      'exits non-zero after writing part of an archive',
      'printf PGDMP; echo "pg_dump: error: disk on fire" >&2; exit 3',
      /disk on fire/,
    ],
    ['exits 0 without writing anything', 'exit 0', /pg_dump wrote nothing/],
  ])('rejects done and errors the stream when it %s', async (_case, body, message) => {
    await writeFile(
      join(binDir, 'pg_dump'),
      `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 15.0"; exit 0; fi\n${body}\n`,
    );
    await chmod(join(binDir, 'pg_dump'), 0o755);
    const backup = await backupPostgres(configFor(pg, 'multi', { binDir }), ctx);

    await expect(collect(streamOf(backup))).rejects.toThrow(message);
    await expect(backup.done).rejects.toBeInstanceOf(SourceError);
    await expect(backup.done).rejects.toThrow(message);
  });
});

describe('swapDatabases', () => {
  it('swaps the restored copy in and keeps the old database under its new name', async () => {
    await pg.psql('CREATE DATABASE app; CREATE DATABASE app_restore;');
    await pg.psql(`CREATE TABLE v (value text); INSERT INTO v VALUES ('old');`, 'app');
    await pg.psql(`CREATE TABLE v (value text); INSERT INTO v VALUES ('new');`, 'app_restore');
    const config = configFor(pg, 'app');
    // A session left open on the live database must not block the swap.
    const idle = pg.psql('SELECT pg_sleep(30)', 'app').catch((error: unknown) => error);

    await new Promise((resolve) => setTimeout(resolve, 300));
    const { keptAs } = await swapDatabases(config, {
      live: 'app',
      beside: 'app_restore',
      ctx,
      now: new Date('2024-12-06T02:00:00Z'),
    });

    expect(keptAs).toBe('app_pre_20241206_020000');
    expect(await pg.psql('SELECT value FROM v', 'app')).toBe('new');
    expect(await pg.psql('SELECT value FROM v', keptAs)).toBe('old');
    expect(await databaseExists(config, 'app_restore', ctx)).toBe(false);
    expect(await idle).toBeInstanceOf(Error);
  });

  it('keeps the old database under the next free name when a swap of the same second kept one already', async () => {
    await pg.psql(
      'CREATE DATABASE twice; CREATE DATABASE twice_restore; CREATE DATABASE twice_pre_20241206_020000;',
    );
    await pg.psql(`CREATE TABLE v (value text); INSERT INTO v VALUES ('old');`, 'twice');
    const config = configFor(pg, 'twice');

    const { keptAs } = await swapDatabases(config, {
      live: 'twice',
      beside: 'twice_restore',
      ctx,
      now: new Date('2024-12-06T02:00:00Z'),
    });

    expect(keptAs).toBe('twice_pre2_20241206_020000');
    expect(await pg.psql('SELECT value FROM v', keptAs)).toBe('old');
    expect(await databaseExists(config, 'twice_pre_20241206_020000', ctx)).toBe(true);
  });

  it('refuses when the restored copy is missing and leaves the live database as it was', async () => {
    await pg.psql('CREATE DATABASE solo');
    const config = configFor(pg, 'solo');

    await expect(swapDatabases(config, { live: 'solo', beside: 'solo_restore', ctx })).rejects.toThrow(
      /solo_restore .*does not exist/,
    );
    expect(await databaseExists(config, 'solo', ctx)).toBe(true);
  });
});

describe('drill checks and scratch targets', () => {
  it('reports missing tables, wrong row counts and tables the manifest does not list', async () => {
    const config = configFor(pg, 'multi');
    const details = {
      kind: 'postgres' as const,
      database: 'multi',
      serverVersion: '15',
      databaseBytes: 1,
      excludedTables: [],
      tables: [
        { schema: 'public', name: 'orders', rows: 10 },
        { schema: 'public', name: 'refunds', rows: 8 },
        { schema: 'public', name: 'gone', rows: 1 },
      ],
    };

    const checks = await checkPostgres(config, 'multi', details, ctx);
    expect(checks.map((c) => [c.check, c.passed])).toEqual([['row-counts', false]]);
    const findings = checks.flatMap((c) => c.findings);

    expect(findings.map((f) => [f.check, f.severity])).toEqual([
      ['row-count', 'critical'],
      ['table-missing', 'critical'],
      ['table-unexpected', 'critical'],
      ['table-unexpected', 'critical'],
    ]);
    expect(findings[0]?.message).toMatch(/public\.refunds .* has 7 rows, the backup recorded 8/);
    expect(findings[2]?.message).toMatch(/table sales\.orders in restored database multi has no row count/);
    expect(findings[3]?.message).toMatch(/table sales\.refunds/);
    // A selective check looks at the chosen tables only.
    const chosen = await checkPostgres(config, 'multi', details, ctx, ['public.orders']);
    expect(chosen.flatMap((c) => c.findings)).toEqual([]);
  });

  it('runs SQL checks read-only and compares the first value as text', async () => {
    const config = configFor(pg, 'multi');
    const checks = await runSqlChecks(
      config,
      'multi',
      [
        { name: 'orders', query: 'SELECT count(*) FROM public.orders', expect: '10' },
        { name: 'flag', query: 'SELECT true', expect: 'true' },
        { name: 'flag-short', query: 'SELECT false', expect: 'f' },
        { name: 'flag-wrong', query: 'SELECT false', expect: 'true' },
        { name: 'wrong', query: 'SELECT 41 + 0', expect: '42' },
        { name: 'broken', query: 'SELECT * FROM nowhere', expect: '1' },
        { name: 'writes', query: 'DELETE FROM public.orders RETURNING 1', expect: '1' },
      ],
      ctx,
    );

    expect(checks.map((c) => [c.check, c.passed])).toEqual([
      ['sql:orders', true],
      ['sql:flag', true],
      ['sql:flag-short', true],
      ['sql:flag-wrong', false],
      ['sql:wrong', false],
      ['sql:broken', false],
      ['sql:writes', false],
    ]);
    const findings = checks.flatMap((c) => c.findings);
    expect(findings.map((f) => f.message)).toEqual([
      expect.stringMatching(/check 'flag-wrong' .* returned 'f', expected 'true'/),
      expect.stringMatching(/check 'wrong' .* returned '41', expected '42'/),
      expect.stringMatching(/check 'broken' failed .*nowhere/),
      expect.stringMatching(/check 'writes' failed .*read-only/),
    ]);
    expect(await pg.psql('SELECT count(*) FROM public.orders', 'multi')).toBe('10');
  });

  it('drops a scratch database even with a session open on it', async () => {
    await pg.psql('CREATE DATABASE scratch');
    const config = configFor(pg, 'scratch');
    const idle = pg.psql('SELECT pg_sleep(30)', 'scratch').catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 300));

    await dropDatabase(config, 'scratch', ctx);

    expect(await databaseExists(config, 'scratch', ctx)).toBe(false);
    expect(await idle).toBeInstanceOf(Error);
  });
});

describe('parallel post-data', () => {
  const many = 'many_tables';
  /** Indexes, constraints by type, triggers and views of a database, one line each, sorted. */
  const schemaOf = (database: string) =>
    pg.psql(
      `SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = 'public'
       UNION ALL SELECT 'constraint ' || contype::text || ' ' || conname FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace
       UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
       UNION ALL SELECT 'matview ' || matviewname || ' ' || ispopulated FROM pg_matviews
       ORDER BY 1`,
      database,
    );
  beforeAll(async () => {
    await pg.psql(`CREATE DATABASE ${many}`);
    await pg.psql(
      `CREATE TABLE parent (id int PRIMARY KEY);
       INSERT INTO parent SELECT generate_series(1, 50);
       CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
       DO $$ BEGIN FOR i IN 1..40 LOOP
         EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, p int REFERENCES parent, v text UNIQUE, n int CHECK (n >= 0))', i);
         EXECUTE format('INSERT INTO t%s SELECT g, 1 + g %% 50, md5(g::text), g FROM generate_series(1, %s) g', i, i * 25);
         EXECUTE format('CREATE INDEX ON t%s (n)', i);
         EXECUTE format('CREATE TRIGGER touch_t%s BEFORE UPDATE ON t%s FOR EACH ROW EXECUTE FUNCTION touch()', i, i);
       END LOOP; END $$;
       CREATE MATERIALIZED VIEW big_ones AS SELECT id FROM t40 WHERE n > 500;`,
      many,
    );
  });

  it('builds every index, constraint, trigger and view of 40 tables with parallel jobs, and counts rows in parallel', async () => {
    const config = configFor(pg, many, { restoreJobs: 3 });
    const backup = await backupPostgres(config, ctx);
    const [result] = await Promise.all([
      backup.done,
      restorePostgres(config, streamOf(backup), { targetDatabase: `${many}_copy`, jobs: 3, ctx }),
    ]);
    if (result.details.kind !== 'postgres') throw new Error('expected postgres details');

    expect(await schemaOf(`${many}_copy`)).toBe(await schemaOf(many));
    expect((await schemaOf(many)).split('\n').length).toBeGreaterThan(200);
    expect(await fingerprint('big_ones', `${many}_copy`)).toBe(await fingerprint('big_ones', many));
    const checks = await checkPostgres(config, `${many}_copy`, result.details, ctx);
    expect(checks.flatMap((c) => c.findings)).toEqual([]);
    expect(checks[0]?.detail).toBe('41 tables match the row counts the backup recorded');
    await pg.psql('DELETE FROM t7 WHERE id > 100; DROP TABLE t31', `${many}_copy`);
    const wrong = await checkPostgres(config, `${many}_copy`, result.details, ctx);
    expect(wrong.flatMap((c) => c.findings.map((f) => f.message))).toEqual([
      `table public.t31 is missing from restored database ${many}_copy`,
      `table public.t7 in restored database ${many}_copy has 100 rows, the backup recorded 175`,
    ]);
  });

  it('drops the database when post-data fails, and leaves no TOC file behind (it never held the data)', async () => {
    const config = configFor(pg, many);
    const backup = await backupPostgres(config, ctx);
    const [, archive] = await Promise.all([backup.done, collect(streamOf(backup))]);
    const log = join(tmpdir(), `strongbox-postdata-${process.pid}.log`);
    const binDir = await wrapTools(
      pg.binDir,
      () =>
        `case "$*" in *--section=post-data*) for a; do f="$a"; done; stat -c '%s %a' "$f" > '${log}'; echo 'post-data broke' >&2; exit 3;; esac`,
    );
    const scratch = await mkdtemp(join(tmpdir(), 'strongbox-tmpdir-'));
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = scratch;
    try {
      const restoring = restorePostgres({ ...config, binDir }, Readable.from([archive]), {
        targetDatabase: `${many}_broken`,
        ctx,
      });
      await expect(restoring).rejects.toThrow(
        /pg_restore into database many_tables_broken .*post-data broke/s,
      );
      expect(await databaseExists(config, `${many}_broken`, ctx)).toBe(false);
      const [bytes, mode] = (await readFile(log, 'utf8')).trim().split(' ');
      expect(Number(bytes)).toBeLessThan(archive.length / 4);
      expect(mode).toBe('600');
      expect(await readdir(scratch)).toEqual([]);
    } finally {
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
      await rm(scratch, { recursive: true, force: true });
      await rm(binDir, { recursive: true, force: true });
      await rm(log, { force: true });
    }
  });
});

describe('passwords', () => {
  const secret = 'S3cret-pässword-42';
  let locked: PgServer;
  let binDir: string;
  let argvLog: string;

  beforeAll(async () => {
    locked = await startPostgres({ databases: ['vault'], password: secret });
    await locked.psql(`CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 5);`, 'vault');
    // Wrappers record each tool's argv and whether PGPASSWORD was set, then run the real tool.
    argvLog = join(tmpdir(), `strongbox-argv-${process.pid}.log`);
    binDir = await wrapTools(
      locked.binDir,
      (tool) => `echo "${tool} $* PGPASSWORD=\${PGPASSWORD:+set}" >> '${argvLog}'`,
    );
  });
  afterAll(async () => {
    await locked?.stop();
    if (binDir) await rm(binDir, { recursive: true, force: true });
    if (argvLog) await rm(argvLog, { force: true });
  });

  it('reaches pg_dump and pg_restore through PGPASSWORD, never argv', async () => {
    const config = configFor(locked, 'vault', { passwordEnv: 'VAULT_DB_PASSWORD', binDir });
    const withPassword: SourceContext = { env: { PATH: process.env.PATH, VAULT_DB_PASSWORD: secret } };

    const backup = await backupPostgres(config, withPassword);
    const [result] = await Promise.all([
      backup.done,
      restorePostgres(config, streamOf(backup), { targetDatabase: 'vault_copy', ctx: withPassword }),
    ]);

    if (result.details.kind !== 'postgres') throw new Error('expected postgres details');
    expect(result.details.tables).toEqual([{ schema: 'public', name: 't', rows: 5 }]);
    expect(await locked.psql('SELECT count(*) FROM t', 'vault_copy')).toBe('5');
    const log = await readFile(argvLog, 'utf8');
    expect(log).toMatch(/^pg_dump -Fc -Z0 --snapshot=\S+ .*PGPASSWORD=set$/m);
    expect(log).toMatch(/^pg_restore --section=pre-data --section=data --exit-on-error .*PGPASSWORD=set$/m);
    expect(log).toMatch(/^pg_restore --section=post-data --jobs \d+ --exit-on-error .*PGPASSWORD=set$/m);
    expect(log).not.toContain(secret);
  });

  it('fails to connect without the password, and the error does not carry it', async () => {
    const config = configFor(locked, 'vault', { passwordEnv: 'VAULT_DB_PASSWORD' });
    const wrong: SourceContext = { env: { PATH: process.env.PATH, VAULT_DB_PASSWORD: 'not-it' } };

    const attempt = backupPostgres(config, wrong);

    await expect(attempt).rejects.toBeInstanceOf(SourceError);
    await expect(attempt).rejects.toThrow(/password authentication failed/);
    await expect(attempt).rejects.not.toThrow(/not-it/);
  });

  it('names the environment variable that is not set', async () => {
    await expect(resolvePassword({ passwordEnv: 'NOPE_PASSWORD' }, ctx)).rejects.toBeInstanceOf(PlanError);
    await expect(resolvePassword({ passwordEnv: 'NOPE_PASSWORD' }, ctx)).rejects.toThrow(/NOPE_PASSWORD/);
  });
});
