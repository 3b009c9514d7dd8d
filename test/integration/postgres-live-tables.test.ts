/**
 * `restore --tables … --into-live` (seed mARB 2.0's partial restore) as a real site runs it: the
 * application role `app` owns the tables, the job connects as `strongbox`, a non-superuser with
 * pg_read_all_data and membership in `app`. Preconditions are checked before the safety backup; the
 * safety backup holds exactly the replaced tables and is never "latest"; the restore runs in one
 * transaction, so a failure midway (a constraint, the agent interrupted) leaves the live tables as they
 * were; the rest of the database is untouched.
 */
import { rm } from 'node:fs/promises';
import { Client } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { parseRestoreOptions } from '#agent/commands/restore';
import { runRestore, validateRestoreRequest } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { findBackup, listBackups, readManifest } from '#core/catalog';
import { RestoreError } from '#core/errors';
import { type Job, validatePlan } from '#core/plan';
import type { PgServer } from '#test/support/postgres';
import { startPostgres } from '#test/support/postgres';
import { shopJobRuntime } from '#test/support/runtime';

let pg: PgServer;
const dirs: string[] = [];

/** The shop job's runtime as `user`, removed after the tests. */
const runtimeAs = (user: string) => shopJobRuntime(pg, user, dirs);

const SCHEMA = `
  SET ROLE app;
  CREATE TYPE claim_state AS ENUM ('open', 'paid', 'denied');
  CREATE TABLE patients (id int PRIMARY KEY, name text NOT NULL);
  CREATE TABLE claims (id serial PRIMARY KEY, patient_id int NOT NULL REFERENCES patients,
                       state claim_state NOT NULL DEFAULT 'open', amount numeric(10, 2) CHECK (amount >= 0),
                       touched int NOT NULL DEFAULT 0);
  CREATE INDEX claims_state_idx ON claims (state);
  CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.touched := NEW.touched + 1; RETURN NEW; END $$;
  CREATE TRIGGER claims_touch BEFORE UPDATE ON claims FOR EACH ROW EXECUTE FUNCTION touch();
  CREATE TABLE remittances (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                            claim_id int NOT NULL REFERENCES claims, paid numeric(10, 2));
  CREATE TABLE episodes (id int, started date NOT NULL, note text) PARTITION BY RANGE (started);
  CREATE TABLE episodes_2023 PARTITION OF episodes FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
  CREATE TABLE episodes_2024 PARTITION OF episodes FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
  CREATE VIEW patient_names AS SELECT name FROM patients;
  INSERT INTO patients SELECT g, 'p' || g FROM generate_series(1, 20) g;
  INSERT INTO claims (patient_id, state, amount)
    SELECT 1 + g % 20, (ARRAY['open','paid','denied'])[1 + g % 3]::claim_state, g FROM generate_series(1, 200) g;
  INSERT INTO remittances (claim_id, paid) SELECT g, g FROM generate_series(1, 100) g;
  INSERT INTO episodes SELECT g, DATE '2023-06-01' + g * 3, 'e' || g FROM generate_series(1, 150) g;
  GRANT SELECT ON claims TO reporter;
  RESET ROLE;`;

/** Content of the restorable tables, for comparison. */
function contentOf(): Promise<string> {
  return pg.psql(
    `SELECT (SELECT count(*) || ':' || md5(string_agg(t::text, '|' ORDER BY t.id)) FROM claims t) || ' ' ||
            (SELECT count(*) || ':' || md5(string_agg(t::text, '|' ORDER BY t.id)) FROM remittances t) || ' ' ||
            (SELECT count(*) || ':' || md5(string_agg(t::text, '|' ORDER BY t.id)) FROM episodes t)`,
    'shop',
  );
}

/** What the restore must never change: patients, the view over it, the enum and the function. */
function untouched(): Promise<string> {
  return pg.psql(
    `SELECT (SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM patients t) || ' ' ||
            (SELECT string_agg(name, ',' ORDER BY name) FROM patient_names WHERE name LIKE 'changed%') || ' ' ||
            'claim_state'::regtype::oid || ' ' || 'touch()'::regprocedure::oid || ' ' ||
            'patient_names'::regclass::oid || ' ' || pg_get_viewdef('patient_names'::regclass)`,
    'shop',
  );
}

/** Owners, ACL, constraints, indexes and triggers of the restored tables. */
function structureOf(): Promise<string> {
  return pg.psql(
    `SELECT string_agg(c.relname || '=' || pg_get_userbyid(c.relowner) || coalesce(c.relacl::text, ''), ' ' ORDER BY c.relname)
       || ' | ' || (SELECT string_agg(conname || ':' || pg_get_constraintdef(oid), ' ' ORDER BY conname)
                      FROM pg_constraint WHERE conrelid IN ('claims'::regclass, 'remittances'::regclass))
       || ' | ' || (SELECT string_agg(indexrelid::regclass::text, ' ' ORDER BY indexrelid::regclass::text) FROM pg_index
                     WHERE indrelid IN ('claims'::regclass, 'remittances'::regclass))
       || ' | ' || (SELECT string_agg(tgname, ' ') FROM pg_trigger WHERE tgrelid = 'claims'::regclass AND NOT tgisinternal)
       FROM pg_class c WHERE c.relname IN ('claims', 'remittances', 'episodes', 'episodes_2023', 'episodes_2024',
                                           'claims_id_seq', 'remittances_id_seq')`,
    'shop',
  );
}

/** Changes after the backup: to the tables restored, and to patients (which must stay). */
async function damage(): Promise<void> {
  await pg.psql(
    `DELETE FROM remittances WHERE id > 50; DELETE FROM claims WHERE id > 150 AND id NOT IN (SELECT claim_id FROM remittances);
     INSERT INTO episodes VALUES (999, '2024-12-01', 'after');
     UPDATE patients SET name = 'changed' || id WHERE id <= 3;`,
    'shop',
  );
}

let wanted: string;
let before: { content: string; structure: string };

beforeAll(async () => {
  pg = await startPostgres();
  await pg.psql(
    `CREATE ROLE app LOGIN;
     CREATE ROLE reporter LOGIN;
     CREATE ROLE strongbox LOGIN IN ROLE pg_read_all_data;
     GRANT app TO strongbox;
     CREATE ROLE weak LOGIN IN ROLE pg_read_all_data;
     CREATE DATABASE shop OWNER app;`,
  );
  await pg.psql(SCHEMA, 'shop');
  shared = await runtimeAs('strongbox');
  wanted = (await runBackup(shared.runtime, shared.job)).backupId;
  before = { content: await contentOf(), structure: await structureOf() };
}, 60_000);

afterAll(async () => {
  await pg?.stop();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Restores claims and remittances of the first backup into the live database. */
function restoreWanted(runtime: Runtime, job: Job): ReturnType<typeof runRestore> {
  return runRestore(runtime, job, {
    backupId: wanted,
    tables: ['claims', 'remittances'],
    intoLive: true,
    confirm: 'shop',
  });
}

/** The job's runtime as strongbox: its vault holds `wanted`. */
let shared: { runtime: Runtime; job: Job; lines: string[] } | undefined;
function jobRuntime(): { runtime: Runtime; job: Job; lines: string[] } {
  if (!shared) throw new Error('no runtime');
  shared.lines.length = 0;
  return shared;
}

describe('restore --into-live', () => {
  it('refuses before the safety backup, naming each problem, and changes nothing', async () => {
    const { runtime } = jobRuntime();
    // The same vault, the job connecting as weak (no membership in app, no CREATE on public).
    const { job: weakJob } = await runtimeAs('weak');
    await damage();
    const live = await contentOf();
    const count = (await listBackups(runtime.vault, 'shop')).length;

    const attempt = runRestore(runtime, weakJob, {
      tables: ['claims', 'remittances', 'public.nope'],
      intoLive: true,
      confirm: 'shop',
    });

    await expect(attempt).rejects.toBeInstanceOf(RestoreError);
    await expect(attempt).rejects.toThrow(/nothing was changed: table public\.nope is not in the backup/);
    await expect(attempt).rejects.toThrow(/weak cannot drop public\.claims \(owned by app\)/);
    await expect(attempt).rejects.toThrow(/weak may not create tables in schema public/);
    expect((await listBackups(runtime.vault, 'shop')).length).toBe(count);
    expect(await contentOf()).toBe(live);
  });

  it("refuses when another table's foreign key or a view depends on a table, and never drops it", async () => {
    const { runtime, job } = jobRuntime();
    await pg.psql(
      'SET ROLE app; CREATE VIEW episode_notes AS SELECT note FROM episodes; RESET ROLE;',
      'shop',
    );
    const count = (await listBackups(runtime.vault, 'shop')).length;
    const live = await contentOf();
    try {
      const attempt = runRestore(runtime, job, {
        tables: ['claims', 'episodes'],
        intoLive: true,
        confirm: 'shop',
      });
      await expect(attempt).rejects.toThrow(
        /foreign key remittances_claim_id_fkey of table remittances depends on claims/,
      );
      await expect(attempt).rejects.toThrow(/view episode_notes depends on episodes/);
      expect((await listBackups(runtime.vault, 'shop')).length).toBe(count);
      expect(await contentOf()).toBe(live);
      expect(
        await pg.psql(
          "SELECT count(*) FROM pg_constraint WHERE conname = 'remittances_claim_id_fkey'",
          'shop',
        ),
      ).toBe('1');
    } finally {
      await pg.psql('DROP VIEW episode_notes', 'shop');
    }
  });

  it('rolls everything back when the restore fails midway (a foreign key no longer satisfied)', async () => {
    const { runtime, job } = jobRuntime();
    // Patient 20 is referenced by claims in the backup; live, nothing references it any more.
    await pg.psql(
      'DELETE FROM remittances WHERE claim_id IN (SELECT id FROM claims WHERE patient_id = 20); DELETE FROM claims WHERE patient_id = 20; DELETE FROM patients WHERE id = 20',
      'shop',
    );
    const live = await contentOf();
    const structure = await structureOf();
    const rest = await untouched();
    try {
      const attempt = restoreWanted(runtime, job);
      await expect(attempt).rejects.toBeInstanceOf(RestoreError);
      await expect(attempt).rejects.toThrow(
        /the live tables were left as they were: .*claims_patient_id_fkey/s,
      );
      expect(await contentOf()).toBe(live);
      expect(await structureOf()).toBe(structure);
      expect(await untouched()).toBe(rest);
    } finally {
      await pg.psql("INSERT INTO patients VALUES (20, 'p20')", 'shop');
    }
  });

  it('rolls everything back when a restored row count differs from the manifest, checked before COMMIT', async () => {
    const { runtime, job } = jobRuntime();
    // A site's event trigger adds a row to every new remittances table: the restored copy has one too many.
    await pg.psql(
      `CREATE FUNCTION add_row() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
       BEGIN
         IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE object_identity = 'public.remittances') THEN
           INSERT INTO public.remittances (id, claim_id, paid) VALUES (-1, 1, 0);
         END IF;
       END $$;
       CREATE EVENT TRIGGER add_row ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION add_row();`,
      'shop',
    );
    const live = await contentOf();
    const structure = await structureOf();
    try {
      const attempt = restoreWanted(runtime, job);
      await expect(attempt).rejects.toThrow(
        /left as they were: .*row counts differ from the backup: public\.remittances has 101 rows, the backup recorded 100/s,
      );
      expect(await contentOf()).toBe(live);
      expect(await structureOf()).toBe(structure);
    } finally {
      await pg.psql('DROP EVENT TRIGGER add_row; DROP FUNCTION add_row()', 'shop');
    }
  });

  it('rolls everything back when the agent is interrupted inside the transaction', async () => {
    const { runtime, job } = jobRuntime();
    const live = await contentOf();
    const structure = await structureOf();
    // An application transaction on patients: the restore's foreign key to it has to wait for it.
    const app = new Client({ host: pg.host, port: pg.port, user: 'app', database: 'shop' });
    await app.connect();
    const controller = new AbortController();
    try {
      await app.query('BEGIN; UPDATE patients SET name = name WHERE id = 1');
      const attempt = restoreWanted({ ...runtime, signal: controller.signal }, job);
      attempt.catch(() => {});
      // Midway: the restore's session holds claims dropped and recreated, and waits for the lock.
      for (let i = 0; i < 200; i++) {
        const waiting = await pg.psql(
          "SELECT count(*) FROM pg_stat_activity WHERE datname = 'shop' AND usename = 'strongbox' AND wait_event_type = 'Lock'",
        );
        if (waiting === '1') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const held = await pg.psql(
        `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE a.usename = 'strongbox' AND l.mode = 'AccessExclusiveLock' AND l.granted AND l.locktype = 'relation'`,
      );
      expect(Number(held)).toBeGreaterThan(0);
      controller.abort(new Error('interrupted'));
      await expect(attempt).rejects.toThrow();
      await app.query('ROLLBACK');
      expect(await contentOf()).toBe(live);
      expect(await structureOf()).toBe(structure);
    } finally {
      await app.end();
    }
  });

  it('takes a safety backup of exactly those tables, restores them in one transaction and checks them', async () => {
    const { runtime, job, lines } = jobRuntime();
    const rest = await untouched();
    const damaged = await contentOf();
    expect(damaged).not.toBe(before.content);

    const result = await runRestore(runtime, job, {
      tables: ['claims', 'remittances', 'episodes'],
      intoLive: true,
      confirm: 'shop',
    });

    expect(result).toMatchObject({ mode: 'into-live', target: 'shop', findings: [] });
    expect(result.backupId).not.toBe(result.safetyBackupId);
    expect(await contentOf()).toBe(before.content);
    expect(await structureOf()).toBe(before.structure);
    expect(await untouched()).toBe(rest);
    expect(result.checks.find((c) => c.check === 'row-counts')?.passed).toBe(true);
    expect(lines.some((l) => l.startsWith(`safety backup ${result.safetyBackupId}`))).toBe(true);
    // The safety backup holds exactly the live tables replaced, and is never what "latest" picks.
    const safety = await readManifest(runtime.vault, 'shop', result.safetyBackupId ?? '');
    expect(safety.purpose).toBe('safety');
    if (safety.source.kind !== 'postgres') throw new Error('postgres expected');
    expect(safety.source.onlyTables).toEqual([
      'public.claims',
      'public.episodes',
      'public.episodes_2023',
      'public.episodes_2024',
      'public.remittances',
    ]);
    expect(safety.source.tables.map((t) => t.name)).toEqual([
      'claims',
      'episodes_2023',
      'episodes_2024',
      'remittances',
    ]);
    expect((await findBackup(runtime.vault, 'shop')).backupId).not.toBe(result.safetyBackupId);
    // The application works with what was restored: its own rows, sequences and trigger.
    const client = new Client({ host: pg.host, port: pg.port, user: 'app', database: 'shop' });
    await client.connect();
    try {
      await client.query('INSERT INTO claims (patient_id, amount) VALUES (1, 5)');
      await client.query('INSERT INTO remittances (claim_id, paid) VALUES (1, 1)');
      const { rows } = await client.query<{ touched: number }>(
        'UPDATE claims SET amount = 6 WHERE id = 1 RETURNING touched',
      );
      expect(rows[0]?.touched).toBe(1);
      await expect(client.query('INSERT INTO claims (patient_id, amount) VALUES (999, 1)')).rejects.toThrow(
        /claims_patient_id_fkey/,
      );
    } finally {
      await client.end();
    }
    // The safety backup brings the state before the restore back the same way.
    await pg.psql('DELETE FROM remittances WHERE id > 100; DELETE FROM claims WHERE id > 200', 'shop');
    const back = await runRestore(runtime, job, {
      backupId: result.safetyBackupId,
      tables: ['claims', 'remittances', 'episodes'],
      intoLive: true,
      confirm: 'shop',
    });
    expect(back.findings).toEqual([]);
    expect(await contentOf()).toBe(damaged);
  });
});

describe('restore --into-live options', () => {
  const plan = validatePlan({
    version: 1,
    vault: { url: 'file:///tmp/none' },
    key: { type: 'local', path: '/tmp/none.key' },
    jobs: [
      { name: 'shop', source: { kind: 'postgres', database: 'shop' } },
      { name: 'conf', source: { kind: 'files', paths: ['/etc/app'] } },
    ],
  });
  const [shop, conf] = plan.jobs as [Job, Job];

  it('is an explicit mode: chosen tables, the job name confirmed, no target, not with another mode', () => {
    expect(
      parseRestoreOptions({ job: 'shop', tables: 'claims', intoLive: true, confirm: 'shop' }),
    ).toMatchObject({
      tables: ['claims'],
      intoLive: true,
    });
    expect(
      parseRestoreOptions({ job: 'shop', options: '{"tables":["claims"],"intoLive":true}' }).intoLive,
    ).toBe(true);
    expect(() => validateRestoreRequest(shop, { intoLive: true, confirm: 'shop' })).toThrow(
      /tables: --into-live restores chosen tables/,
    );
    expect(() => validateRestoreRequest(shop, { tables: ['claims'], intoLive: true })).toThrow(
      /confirm: restoring into the live database needs --confirm shop/,
    );
    expect(() =>
      validateRestoreRequest(shop, { tables: ['claims'], intoLive: true, confirm: 'shop', target: 'x' }),
    ).toThrow(/takes no --target/);
    expect(() =>
      validateRestoreRequest(shop, { tables: ['claims'], intoLive: true, confirm: 'shop', replace: true }),
    ).toThrow(/two modes/);
    expect(() => validateRestoreRequest(conf, { intoLive: true, confirm: 'conf' })).toThrow(
      /files backups cannot be restored table by table into the live data/,
    );
    expect(() =>
      validateRestoreRequest(shop, { tables: ['claims'], intoLive: true, confirm: 'shop' }),
    ).not.toThrow();
  });
});
