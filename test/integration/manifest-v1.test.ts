/**
 * Backups written by release 0.1.0 (manifest version 1, one data object; test/fixtures/vault-v1) still
 * list, verify and restore with this agent, through the real CLI: a PostgreSQL backup into a new database
 * of a fresh cluster, and a files backup into a new directory.
 */
import { chmod, cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { strongbox } from '#test/support/cli';
import { type PgServer, startPostgres } from '#test/support/postgres';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'vault-v1');

let pg: PgServer;
let dir: string;
let plan: string;

beforeAll(async () => {
  pg = await startPostgres();
  dir = await mkdtemp(join(tmpdir(), 'strongbox-v1-'));
  await cp(join(FIXTURE, 'vault'), join(dir, 'vault'), { recursive: true });
  await cp(join(FIXTURE, 'master.key'), join(dir, 'master.key'));
  await chmod(join(dir, 'master.key'), 0o600);
  plan = join(dir, 'plan.yaml');
  await writeFile(
    plan,
    `version: 1
vault: { url: "file://${dir}/vault" }
key: { type: local, path: master.key }
jobs:
  - name: app-db
    source: { kind: postgres, database: app, host: 127.0.0.1, port: ${pg.port}, user: postgres }
  - name: app-config
    source: { kind: files, paths: [/tmp/v1make/tree/etc/app] }
`,
  );
});

afterAll(async () => {
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a vault of manifest v1 backups', () => {
  it('lists both backups as complete', async () => {
    const list = await strongbox(['list', '--plan', plan, '--json']);
    expect(list.code).toBe(0);
    expect(
      list.json.backups.map((b: { job: string; backupId: string; complete: boolean }) => [
        b.job,
        b.backupId,
        b.complete,
      ]),
    ).toEqual([
      ['app-db', '20261120T020000Z-0a1b2c', true],
      ['app-config', '20261120T020500Z-3d4e5f', true],
    ]);
  });

  it('reads each back in full with verify --deep (their age aside, nothing is found)', async () => {
    for (const [job, backupId] of [
      ['app-db', '20261120T020000Z-0a1b2c'],
      ['app-config', '20261120T020500Z-3d4e5f'],
    ] as const) {
      const verify = await strongbox(['verify', '--plan', plan, '--job', job, '--deep', '--json']);
      expect(verify.json.jobs[0].deep).toMatchObject({ backupId });
      const problems = verify.json.findings.filter((f: { check: string }) => f.check !== 'backup-age');
      expect(problems).toEqual([]);
    }
  });

  it('restores the PostgreSQL backup into a new database on a fresh server, rows checked', async () => {
    const restore = await strongbox([
      'restore',
      '--plan',
      plan,
      '--job',
      'app-db',
      '--target',
      'app_from_v1',
      '--json',
    ]);
    expect(restore.code).toBe(0);
    expect(restore.json.findings).toEqual([]);
    expect(await pg.psql('SELECT count(*) FROM customers', 'app_from_v1')).toBe('250');
    expect(await pg.psql('SELECT count(*), sum(total) FROM orders', 'app_from_v1')).toBe('1000|750750.00');
  });

  it('restores the files backup into a new directory, modes kept', async () => {
    const target = join(dir, 'config-from-v1');
    const restore = await strongbox(['restore', '--plan', plan, '--job', 'app-config', '--target', target]);
    expect(restore.code).toBe(0);
    const root = join(target, 'tmp', 'v1make', 'tree', 'etc', 'app');
    expect(await readFile(join(root, 'app.yaml'), 'utf8')).toBe('listen: 8080\nworkers: 4\n');
    expect(await readFile(join(root, 'conf.d', 'db.yaml'), 'utf8')).toBe('host: db\nport: 5432\n');
    expect((await stat(join(root, 'run.sh'))).mode & 0o777).toBe(0o755);
  });
});
