/**
 * `restore --replace` of a PostgreSQL job as a real site runs it: the database is owned by the
 * application role `app`, and the job connects as `strongbox`, a non-superuser with pg_read_all_data,
 * CREATEDB and membership in `app`. Every precondition is checked before the safety backup, the safety
 * backup is never what "latest" picks, and the sessions the swap ends are named first.
 */
import { rm } from 'node:fs/promises';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { runRestore } from '#agent/restore';
import { listBackups, readManifest } from '#core/catalog';
import { RestoreError } from '#core/errors';
import type { PgServer } from '#test/support/postgres';
import { startPostgres } from '#test/support/postgres';
import { shopJobRuntime } from '#test/support/runtime';

let pg: PgServer;
const dirs: string[] = [];

/** The shop job's runtime as `user`, removed after the tests. */
const runtimeAs = (user: string) => shopJobRuntime(pg, user, dirs);

function databases(): Promise<string> {
  return pg.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database");
}

async function session(user: string): Promise<{ client: Client; pid: string }> {
  const client = new Client({ host: pg.host, port: pg.port, user, database: 'shop' });
  client.on('error', () => {});
  await client.connect();
  const { rows } = await client.query<{ pid: string }>('SELECT pg_backend_pid()::text AS pid');
  return { client, pid: rows[0]?.pid ?? '' };
}

beforeAll(async () => {
  pg = await startPostgres();
  await pg.psql(
    `CREATE ROLE app LOGIN;
     CREATE ROLE strongbox LOGIN CREATEDB IN ROLE pg_read_all_data;
     GRANT app TO strongbox;
     CREATE ROLE weak LOGIN CREATEDB IN ROLE pg_read_all_data;
     CREATE DATABASE shop OWNER app;`,
  );
  await pg.psql(
    `SET ROLE app;
     CREATE TABLE orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);
     INSERT INTO orders (note) SELECT 'o' || g FROM generate_series(1, 50) g;`,
    'shop',
  );
}, 60_000);

afterAll(async () => {
  await pg?.stop();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('restore --replace', () => {
  it('refuses before the safety backup, naming every missing right, and changes nothing', async () => {
    const { runtime, job } = await runtimeAs('weak');
    await runBackup(runtime, job);
    const before = { backups: (await listBackups(runtime.vault, 'shop')).length, dbs: await databases() };

    const attempt = runRestore(runtime, job, { replace: true, confirm: 'shop' });

    await expect(attempt).rejects.toBeInstanceOf(RestoreError);
    await expect(attempt).rejects.toThrow(/nothing was changed: .*weak cannot rename shop \(owned by app\)/);
    await expect(attempt).rejects.toThrow(/weak cannot set the owner app/);
    expect((await listBackups(runtime.vault, 'shop')).length).toBe(before.backups);
    expect(await databases()).toBe(before.dbs);
  });

  it('refuses before the safety backup when a session it may not end is open', async () => {
    const { runtime, job } = await runtimeAs('strongbox');
    await runBackup(runtime, job);
    const count = (await listBackups(runtime.vault, 'shop')).length;
    const admin = await session('postgres');
    try {
      const attempt = runRestore(runtime, job, { replace: true, confirm: 'shop' });
      await expect(attempt).rejects.toThrow(
        new RegExp(`strongbox cannot end 1 session: pid ${admin.pid} postgres on shop`),
      );
      expect((await listBackups(runtime.vault, 'shop')).length).toBe(count);
    } finally {
      await admin.client.end();
    }
  });

  it('names the sessions it ends, and a retry never restores the safety backup', async () => {
    const { runtime, job, lines } = await runtimeAs('strongbox');
    const wanted = await runBackup(runtime, job);
    await pg.psql("INSERT INTO orders (note) VALUES ('after the backup')", 'shop');
    const app = await session('app');

    const first = await runRestore(runtime, job, { replace: true, confirm: 'shop' });

    expect(first.backupId).toBe(wanted.backupId);
    expect(first.findings).toEqual([]);
    const named = lines.findIndex((l) => l.includes(`pid ${app.pid} app on shop`));
    expect(named).toBeGreaterThanOrEqual(0);
    expect(named).toBeLessThan(lines.findIndex((l) => l.startsWith('swapped')));
    await expect(app.client.query('SELECT 1')).rejects.toThrow();
    const safety = await readManifest(runtime.vault, 'shop', first.safetyBackupId ?? '');
    expect(safety.purpose).toBe('safety');
    expect(await pg.psql('SELECT count(*) FROM orders', 'shop')).toBe('50');
    expect(await pg.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop'")).toBe(
      'app',
    );

    // The newest backup is now the safety backup (51 rows): "latest" must still mean the backup asked for.
    const retry = await runRestore(runtime, job, { replace: true, confirm: 'shop' });
    expect(retry.backupId).toBe(wanted.backupId);
    const scratch = await runRestore(runtime, job, {});
    expect(scratch.backupId).toBe(wanted.backupId);
    expect(await pg.psql('SELECT count(*) FROM orders', scratch.target)).toBe('50');
    expect(await pg.psql(`SELECT tableowner FROM pg_tables WHERE tablename = 'orders'`, scratch.target)).toBe(
      'app',
    );
  }, 120_000);
});
