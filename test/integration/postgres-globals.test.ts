/**
 * The cluster globals a postgres backup records beyond its archive, against real clusters: the
 * tablespaces its database uses (a real tablespace in a directory owned by the server's user) restored
 * onto a fresh cluster without them, and role password hashes (the plan's `rolePasswords`), stored only
 * as an encrypted object of the backup and given to the roles a restore creates.
 */
import { chown, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { openBackup } from '#agent/read-backup';
import type { Runtime } from '#agent/runtime';
import type { SourceContext } from '#agent/sources/context';
import { doctorPostgres } from '#agent/sources/postgres/doctor';
import { postgresDriver, restorePostgres } from '#agent/sources/postgres/index';
import { type Manifest, parseManifest } from '#core/manifest';
import { findJob } from '#core/plan';
import type { PostgresDetails, PostgresSourceConfig } from '#core/sources/index';
import { dumpWithDriver, type PgServer, postgresSourceOf, startPostgres } from '#test/support/postgres';
import { testRuntime } from '#test/support/runtime';

let source: PgServer;
let fresh: PgServer;
/** Where the source's tablespace `fast` lives. */
let fastDir: string;
let archive: Buffer;
let details: PostgresDetails;

const SITE = `
  CREATE ROLE app LOGIN PASSWORD 'app-secret-1';
  CREATE ROLE app_ro NOLOGIN;
  CREATE ROLE reporter LOGIN PASSWORD 'reporter-secret-2' IN ROLE app_ro;
  CREATE ROLE strongbox LOGIN CREATEDB CREATEROLE IN ROLE pg_read_all_data;
  GRANT app TO strongbox;`;

const SCHEMA = `
  SET ROLE app;
  CREATE TABLE events (id int PRIMARY KEY USING INDEX TABLESPACE fast, note text) TABLESPACE fast;
  CREATE TABLE plain (id int PRIMARY KEY);
  CREATE INDEX events_note ON events (note) TABLESPACE fast;
  INSERT INTO events SELECT g, 'e' || g FROM generate_series(1, 50) g;
  INSERT INTO plain SELECT generate_series(1, 7);
  GRANT SELECT ON events TO app_ro;
  GRANT SELECT ON plain TO reporter;`;

function configFor(server: PgServer, user: string, extra: Partial<PostgresSourceConfig> = {}) {
  return postgresSourceOf(server, 'shop', user, extra);
}

function logger(): { ctx: SourceContext; lines: string[] } {
  const lines: string[] = [];
  return { ctx: { env: { PATH: process.env.PATH }, log: (line) => lines.push(line) }, lines };
}

/** A new empty directory beside the cluster's data directory, owned by the server's user. */
async function serverDir(server: PgServer, name: string): Promise<string> {
  const dir = join(dirname(server.dataDir), name);
  await mkdir(dir, { mode: 0o700 });
  const owner = await stat(server.dataDir);
  await chown(dir, owner.uid, owner.gid);
  return dir;
}

function databasesOf(server: PgServer): Promise<string> {
  return server.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database");
}

function rolesOf(server: PgServer): Promise<string> {
  return server.psql(
    `SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname !~ '^pg_'`,
  );
}

/** relation:tablespace of every relation of the application (the database default shown as -). */
function placementOf(server: PgServer, database: string): Promise<string> {
  return server.psql(
    `SELECT string_agg(c.relname || ':' || coalesce(t.spcname, '-'), ',' ORDER BY c.relname)
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE n.nspname = 'public'`,
    database,
  );
}

function contentOf(server: PgServer, database: string): Promise<string> {
  return server.psql(
    `SELECT (SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM events t) || ' ' ||
            (SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM plain t)`,
    database,
  );
}

function hashOf(server: PgServer, role: string): Promise<string> {
  return server.psql(`SELECT coalesce(rolpassword, '-') FROM pg_authid WHERE rolname = '${role}'`);
}

/** Every file below `dir` that contains `needle` (the raw bytes, as grep -r would find them). */
async function filesContaining(dir: string, needle: string): Promise<string[]> {
  const hits: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    if ((await readFile(path)).includes(needle)) hits.push(path);
  }
  return hits;
}

beforeAll(async () => {
  [source, fresh] = await Promise.all([startPostgres(), startPostgres()]);
  await source.psql(SITE);
  fastDir = await serverDir(source, 'ts-fast');
  await source.psql(`CREATE TABLESPACE fast OWNER app LOCATION '${fastDir}'`);
  await source.psql('CREATE DATABASE shop OWNER app');
  await source.psql(SCHEMA, 'shop');
  await fresh.psql('CREATE ROLE strongbox LOGIN CREATEDB CREATEROLE');
  ({ archive, details } = await dumpWithDriver(configFor(source, 'strongbox')));
}, 120_000);

afterAll(async () => {
  await Promise.all([source?.stop(), fresh?.stop()]);
});

describe('tablespaces', () => {
  it('the backup records each tablespace the database uses, with owner and location as on the source', () => {
    expect(details.tablespaces).toEqual([
      { name: 'fast', owner: 'app', location: fastDir, databaseDefault: false },
    ]);
  });

  it('a server without them refuses up front, naming each with its location and the fixes; nothing is created', async () => {
    const [databases, roles] = [await databasesOf(fresh), await rolesOf(fresh)];
    const attempt = restorePostgres(configFor(fresh, 'strongbox'), Readable.from(archive), {
      targetDatabase: 'shop',
      details,
      ctx: logger().ctx,
    });
    await expect(attempt).rejects.toThrow(
      new RegExp(
        `tablespace the server does not have: fast \\(on the source: ${fastDir}, owner app\\); create it first \\(CREATE TABLESPACE "fast" OWNER "app" LOCATION '<dir>'.*or set noTablespaces: true`,
      ),
    );
    expect(await databasesOf(fresh)).toBe(databases);
    expect(await rolesOf(fresh)).toBe(roles);
  });

  it('with noTablespaces everything lands in the default tablespace, content intact', async () => {
    await restorePostgres(configFor(fresh, 'strongbox'), Readable.from(archive), {
      targetDatabase: 'shop_default',
      details,
      noTablespaces: true,
      ctx: logger().ctx,
    });
    expect(await placementOf(fresh, 'shop_default')).toBe(
      'events:-,events_note:-,events_pkey:-,plain:-,plain_pkey:-',
    );
    expect(await contentOf(fresh, 'shop_default')).toBe(await contentOf(source, 'shop'));
  });

  it('once the tablespace exists on the target (anywhere), objects go back into it', async () => {
    const other = await startPostgres();
    try {
      await other.psql('CREATE ROLE strongbox LOGIN CREATEDB CREATEROLE');
      const dir = await serverDir(other, 'elsewhere');
      await other.psql(`CREATE TABLESPACE fast LOCATION '${dir}'`);
      // Not yet allowed to create in it: refused up front, naming the grant.
      await expect(
        restorePostgres(configFor(other, 'strongbox'), Readable.from(archive), {
          targetDatabase: 'shop',
          details,
          ctx: logger().ctx,
        }),
      ).rejects.toThrow(/may not create objects in tablespace fast \(GRANT CREATE ON TABLESPACE "fast"/);
      expect(await databasesOf(other)).not.toMatch(/shop/);
      await other.psql('GRANT CREATE ON TABLESPACE fast TO strongbox');
      await restorePostgres(configFor(other, 'strongbox'), Readable.from(archive), {
        targetDatabase: 'shop',
        details,
        ctx: logger().ctx,
      });
      expect(await placementOf(other, 'shop')).toBe(await placementOf(source, 'shop'));
      expect(await placementOf(other, 'shop')).toMatch(/events:fast,events_note:fast,events_pkey:fast/);
      expect(await contentOf(other, 'shop')).toBe(await contentOf(source, 'shop'));
    } finally {
      await other.stop();
    }
  }, 60_000);

  it('a database whose default tablespace is recorded is created in it where the target has it', async () => {
    const dir = await serverDir(source, 'ts-bulk');
    await source.psql(
      `CREATE TABLESPACE bulk LOCATION '${dir}'; GRANT CREATE ON TABLESPACE bulk TO strongbox`,
    );
    await source.psql('CREATE DATABASE shop_bulk OWNER app TABLESPACE bulk');
    await source.psql('SET ROLE app; CREATE TABLE t AS SELECT 1 AS x', 'shop_bulk');
    const bulk = await dumpWithDriver(configFor(source, 'strongbox', { database: 'shop_bulk' }));
    expect(bulk.details.tablespaces).toEqual([
      { name: 'bulk', owner: 'postgres', location: dir, databaseDefault: true },
    ]);
    await restorePostgres(configFor(source, 'strongbox'), Readable.from(bulk.archive), {
      targetDatabase: 'shop_bulk_copy',
      details: bulk.details,
      ctx: logger().ctx,
    });
    expect(
      await source.psql(
        `SELECT t.spcname FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE datname = 'shop_bulk_copy'`,
      ),
    ).toBe('bulk');
  }, 60_000);
});

describe('role passwords (rolePasswords)', () => {
  /** Backs up `shop` through the agent into a file vault; the vault's directory and the manifest. */
  async function backupToVault(rolePasswords: boolean, user = 'strongbox') {
    const { runtime, dir } = await testRuntime({
      jobs: [
        {
          name: 'shop',
          source: { ...configFor(source, user), rolePasswords },
        },
      ],
    });
    const job = findJob(runtime.plan, 'shop');
    const result = await runBackup(runtime, job);
    const manifest = parseManifest(await readFile(join(dir, 'vault', result.manifestKey), 'utf8'), 'test');
    return { runtime, dir, job, manifest };
  }

  /** Restores the vault's backup onto `target` through the driver, as the agent does; the log lines. */
  async function restoreFromVault(runtime: Runtime, manifest: Manifest, target: PgServer) {
    const reader = await openBackup(runtime, manifest, runtime.signal);
    const { ctx, lines } = logger();
    await postgresDriver.restore(configFor(target, 'strongbox', { noTablespaces: true }), reader, {
      target: 'shop',
      details: manifest.source as PostgresDetails,
      ctx,
    });
    return lines;
  }

  it('refuses a backup whose role cannot read the hashes, naming the option', async () => {
    // app owns every object of shop (so it can dump it) but may not read pg_authid.
    await expect(backupToVault(true, 'app')).rejects.toThrow(
      /as app: rolePasswords is on, but reading the password hashes \(pg_catalog.pg_authid\) needs a superuser or membership in pg_read_all_data; grant pg_read_all_data to the backup role, or turn rolePasswords off/,
    );
  });

  it('doctor checks that the role can read the hashes when the plan asks for them', async () => {
    const subject = 'backup: password hashes (rolePasswords)';
    const off = await doctorPostgres(configFor(source, 'app'), logger().ctx);
    expect(off.map((c) => c.subject)).not.toContain(subject);
    const denied = await doctorPostgres(configFor(source, 'app', { rolePasswords: true }), logger().ctx);
    expect(denied.find((c) => c.subject === subject)).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/needs a superuser or membership in pg_read_all_data/),
    });
    const good = await doctorPostgres(configFor(source, 'strongbox', { rolePasswords: true }), logger().ctx);
    expect(good.find((c) => c.subject === subject)).toMatchObject({ ok: true });
    expect(JSON.stringify(good)).not.toMatch(/SCRAM/);
  });

  it('off: no hash anywhere in the vault, and created roles have no password', async () => {
    const hash = await hashOf(source, 'app');
    expect(hash).toMatch(/^SCRAM-SHA-256\$/);
    const { runtime, dir, manifest } = await backupToVault(false);
    expect(manifest.objects.map((o) => o.name)).toEqual(['data.zst.sbx']);
    expect(await filesContaining(dir, hash.split('$')[1] ?? hash)).toEqual([]);
    const target = await startPostgres();
    try {
      await target.psql('CREATE ROLE strongbox LOGIN CREATEDB CREATEROLE');
      const lines = await restoreFromVault(runtime, manifest, target);
      expect(lines.join('\n')).toMatch(/created roles app, app_ro, reporter \(.*without passwords\)/);
      expect(await hashOf(target, 'app')).toBe('-');
    } finally {
      await target.stop();
    }
  }, 90_000);

  it('on: hashes only inside the encrypted object; a fresh server gets them, existing roles are not altered', async () => {
    const [appHash, reporterHash] = [await hashOf(source, 'app'), await hashOf(source, 'reporter')];
    const { runtime, dir, manifest } = await backupToVault(true);
    expect(manifest.objects.map((o) => o.name)).toEqual(['data.zst.sbx', 'role-passwords.zst.sbx']);
    for (const hash of [appHash, reporterHash]) {
      expect(await filesContaining(dir, hash)).toEqual([]);
      for (const part of hash.split(/[$:]/).filter((p) => p.length >= 16)) {
        expect(await filesContaining(dir, part)).toEqual([]);
      }
    }
    expect(JSON.stringify(manifest)).not.toMatch(/SCRAM|md5[0-9a-f]{32}/i);
    // verify --deep reads both objects whole; its report counts the hashes, never shows them.
    const inspect = postgresDriver.inspect;
    if (!inspect) throw new Error('the postgres driver inspects archives');
    const [deep] = await inspect(
      configFor(source, 'strongbox'),
      manifest.source as PostgresDetails,
      await openBackup(runtime, manifest, runtime.signal),
      logger().ctx,
    );
    expect(deep).toMatchObject({ passed: true });
    expect(deep?.detail).toMatch(/the role-passwords object holds 2 password hashes$/);

    const target = await startPostgres();
    try {
      // reporter exists on the target with its own password: it must stay as it is.
      await target.psql(`CREATE ROLE strongbox LOGIN CREATEDB CREATEROLE;
                         CREATE ROLE reporter LOGIN PASSWORD 'target-own'`);
      const kept = await hashOf(target, 'reporter');
      const lines = await restoreFromVault(runtime, manifest, target);
      expect(lines.join('\n')).toMatch(
        /created roles app, app_ro \(.*with the recorded password hashes of app\)/,
      );
      expect(lines.join('\n')).not.toContain(appHash.split('$')[1] ?? appHash);
      expect(await hashOf(target, 'app')).toBe(appHash);
      expect(await hashOf(target, 'reporter')).toBe(kept);
      expect(await hashOf(target, 'app_ro')).toBe('-');
      expect(await contentOf(target, 'shop')).toBe(await contentOf(source, 'shop'));
    } finally {
      await target.stop();
    }
  }, 90_000);
});
