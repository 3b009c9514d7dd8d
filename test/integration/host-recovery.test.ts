/**
 * Whole-host recovery through the real CLI: `drill --all --host` and `restore --all --host` over a plan
 * whose host runs a PostgreSQL, a Redis and a files job (listed out of order, ordered by
 * `recoveryOrder`) beside a job of another host: every step in recovery order with its duration and the
 * total, the first failure stopping the rest unless `--keep-going`, and bad flags refused clearly.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentHostRecoverySchema } from '#core/agent-output';
import { strongbox, writeFileVaultPlan } from '#test/support/cli';
import { type PgServer, startPostgres } from '#test/support/postgres';
import { type RedisServer, startRedis } from '#test/support/redis';

let work: string;
let pg: PgServer;
let redis: RedisServer;
let plan: string;
const restoredDatabases: string[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strongbox-host-recovery-'));
  pg = await startPostgres({ databases: ['app'] });
  await pg.psql(
    `CREATE TABLE orders (id int PRIMARY KEY, total numeric);
     INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 300) g;`,
    'app',
  );
  redis = await startRedis();
  await redis.cli(['DEBUG', 'POPULATE', '200', 'session', '32']);
  await mkdir(join(work, 'volumes', 'uploads'), { recursive: true });
  await writeFile(join(work, 'volumes', 'uploads', 'a.png'), Buffer.alloc(10_000, 1));
  await mkdir(join(work, 'other'), { recursive: true });
  await writeFile(join(work, 'other', 'x.txt'), 'other host');
  plan = await writeFileVaultPlan(
    work,
    `  - name: volumes
    host: db1
    recoveryOrder: 30
    source: { kind: files, paths: [${join(work, 'volumes')}] }
  - name: other-files
    host: web1
    recoveryOrder: 1
    source: { kind: files, paths: [${join(work, 'other')}] }
  - name: sessions
    host: db1
    recoveryOrder: 20
    source: { kind: redis, host: 127.0.0.1, port: ${redis.port}, method: replication }
  - name: appdb
    host: db1
    recoveryOrder: 10
    source: { kind: postgres, database: app, host: 127.0.0.1, port: ${pg.port}, user: postgres }
    drill: { rto: 10m }`,
    {
      hostsYaml: `  db1: { instanceIds: [i-0123456789abcdef0] }
  web1: { instanceIds: [i-0fedcba9876543210] }`,
    },
  );
  const backup = await strongbox(['backup', '--plan', plan, '--quiet']);
  expect(backup.code, backup.stderr).toBe(0);
});

afterAll(async () => {
  for (const db of restoredDatabases) await pg?.psql(`DROP DATABASE IF EXISTS ${db}`).catch(() => {});
  await redis?.stop();
  await pg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('drill --all --host', () => {
  it("drills the host's jobs in recovery order, each checked and timed, with the total", async () => {
    const text = await strongbox(['drill', '--all', '--host', 'db1', '--plan', plan, '--quiet']);
    const run = await strongbox(['drill', '--all', '--host', 'db1', '--plan', plan, '--json', '--quiet']);

    expect(run.code, run.stderr).toBe(0);
    const report = agentHostRecoverySchema.parse(run.json);
    expect(report.mode).toBe('drill');
    expect(report.ok).toBe(true);
    expect(report.steps.map((s) => [s.step, s.job, s.kind, s.status])).toEqual([
      [1, 'appdb', 'postgres', 'ok'],
      [2, 'sessions', 'redis', 'ok'],
      [3, 'volumes', 'files', 'ok'],
    ]);
    for (const step of report.steps) {
      expect(step.durationSeconds).toBeGreaterThan(0);
      expect(step.checks.length).toBeGreaterThan(0);
      expect(step.checks.every((c) => c.passed)).toBe(true);
    }
    const sum = report.steps.reduce((total, s) => total + (s.durationSeconds ?? 0), 0);
    // Durations are reported in milliseconds as seconds: their float sum may exceed the total by an ulp.
    expect(report.totalSeconds).toBeGreaterThanOrEqual(sum - 0.001);
    expect(report.steps.find((s) => s.job === 'appdb')?.checks.map((c) => c.check)).toContain('rto');

    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^drill of host db1: 3 job\(s\) in recovery order/);
    expect(text.stdout).toMatch(/1\s+appdb\s+postgres\s+ok\s+\d+\.\ds\s+\d{8}T/);
    expect(text.stdout).toMatch(/total \d+\.\ds \(the measured recovery time of host db1\): 3 ok/);
  });
});

describe('restore --all --host', () => {
  it('refuses up front, naming every job whose original place holds data, and restores nothing', async () => {
    const databases = await pg.psql('SELECT count(*) FROM pg_database');
    const run = await strongbox(['restore', '--all', '--host', 'db1', '--plan', plan, '--quiet']);

    expect(run.code).toBe(2);
    expect(run.lastError).toMatch(/nothing was restored: 3 job\(s\) cannot go back to their original place/);
    expect(run.lastError).toMatch(
      /appdb: database 'app' exists on 127\.0\.0\.1:\d+ \(--replace restores over it\)/,
    );
    expect(run.lastError).toMatch(/sessions: .*needs source\.replace/);
    expect(run.lastError).toContain(`volumes: ${join(work, 'volumes')} exists`);
    expect(await pg.psql('SELECT count(*) FROM pg_database')).toBe(databases);
    expect(await pg.psql('SELECT count(*) FROM orders', 'app')).toBe('300');
  });

  it('restores a lost host into its original places, in order; then refuses them, --replace only for postgres', async () => {
    const fresh = join(work, 'fresh');
    await mkdir(join(fresh, 'volumes', 'media'), { recursive: true });
    await writeFile(join(fresh, 'volumes', 'media', 'b.bin'), Buffer.alloc(5_000, 7));
    await pg.psql('CREATE DATABASE shop');
    await pg.psql(
      'CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 42);',
      'shop',
    );
    const freshPlan = await writeFileVaultPlan(
      fresh,
      `  - name: shopdb
    host: db2
    recoveryOrder: 1
    source: { kind: postgres, database: shop, host: 127.0.0.1, port: ${pg.port}, user: postgres }
  - name: media
    host: db2
    recoveryOrder: 2
    source: { kind: files, paths: [${join(fresh, 'volumes')}] }`,
      { hostsYaml: '  db2: { instanceIds: [i-0123456789abcdef1] }' },
    );
    expect((await strongbox(['backup', '--plan', freshPlan, '--quiet'])).code).toBe(0);
    // The host is lost: its database and its volume are gone.
    await pg.psql('DROP DATABASE shop');
    await rm(join(fresh, 'volumes'), { recursive: true, force: true });

    const run = await strongbox([
      'restore',
      '--all',
      '--host',
      'db2',
      '--plan',
      freshPlan,
      '--json',
      '--quiet',
    ]);

    expect(run.code, run.stderr).toBe(0);
    const report = agentHostRecoverySchema.parse(run.json);
    expect(report.steps.map((s) => [s.job, s.status, s.target])).toEqual([
      ['shopdb', 'ok', 'shop'],
      ['media', 'ok', join(fresh, 'volumes')],
    ]);
    expect(await pg.psql('SELECT count(*) FROM items', 'shop')).toBe('42');
    expect(await readFile(join(fresh, 'volumes', 'media', 'b.bin'))).toEqual(Buffer.alloc(5_000, 7));

    const again = await strongbox(['restore', '--all', '--host', 'db2', '--plan', freshPlan, '--quiet']);
    const unconfirmed = await strongbox([
      'restore',
      '--all',
      '--host',
      'db2',
      '--replace',
      '--plan',
      freshPlan,
    ]);
    const replacing = await strongbox([
      ...['restore', '--all', '--host', 'db2', '--replace', '--confirm', 'db2'],
      ...['--plan', freshPlan, '--quiet'],
    ]);

    expect(again.code).toBe(2);
    expect(again.lastError).toMatch(
      /2 job\(s\) cannot go back.*shopdb: database 'shop' exists.*media: .*volumes exists/,
    );
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.lastError).toMatch(/--confirm db2/);
    expect(replacing.code).toBe(2);
    expect(replacing.lastError).toMatch(/nothing was restored: 1 job\(s\).*media: .*volumes exists$/);
    expect(await pg.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'shop%'")).toBe('1');
    await pg.psql('DROP DATABASE shop');
  });

  it('stops at the first failed step and reports the rest as skipped; --keep-going runs them', async () => {
    // The Redis backup's data object is damaged in the vault: its restore fails authentication.
    const dir = join(work, 'vault', 'backups', 'sessions');
    const [backupId] = await readdir(dir);
    const objectDir = join(dir, backupId as string);
    const data = (await readdir(objectDir)).find((name) => name.startsWith('dump.rdb')) as string;
    const original = await readFile(join(objectDir, data));
    const damaged = Buffer.from(original);
    const middle = Math.floor(damaged.length / 2);
    damaged[middle] = (damaged[middle] as number) ^ 0xff;
    await writeFile(join(objectDir, data), damaged);
    try {
      const stopped = await strongbox([
        'drill',
        '--all',
        '--host',
        'db1',
        '--plan',
        plan,
        '--json',
        '--quiet',
      ]);
      const kept = await strongbox([
        'drill',
        '--all',
        '--host',
        'db1',
        '--keep-going',
        '--plan',
        plan,
        '--json',
        '--quiet',
      ]);
      const text = await strongbox(['drill', '--all', '--host', 'db1', '--plan', plan, '--quiet']);

      expect(stopped.code).toBe(2);
      expect(stopped.lastError).toMatch(/^strongbox: error: .*drill of host db1: step 2 \(sessions\) failed/);
      const report = agentHostRecoverySchema.parse(stopped.json);
      expect(report.ok).toBe(false);
      expect(report.steps.map((s) => [s.job, s.status])).toEqual([
        ['appdb', 'ok'],
        ['sessions', 'failed'],
        ['volumes', 'skipped'],
      ]);
      expect(report.steps[1]?.error).toMatch(/authentic|integrity|chunk/i);
      expect(report.steps[2]?.durationSeconds).toBeUndefined();

      expect(kept.code).toBe(2);
      const all = agentHostRecoverySchema.parse(kept.json);
      expect(all.steps.map((s) => s.status)).toEqual(['ok', 'failed', 'ok']);
      for (const step of [...report.steps, ...all.steps]) {
        if (step.job === 'appdb' && step.target) restoredDatabases.push(step.target);
        else if (step.target) await rm(step.target, { recursive: true, force: true });
      }

      expect(text.code).toBe(2);
      expect(text.stdout).toMatch(/2\s+sessions\s+redis\s+failed/);
      expect(text.stdout).toMatch(/3\s+volumes\s+files\s+skipped\s+-/);
      expect(text.stdout).toMatch(/stopped at the first failure \(--keep-going runs the rest\)/);
    } finally {
      await writeFile(join(objectDir, data), original);
    }
  });

  it.each([
    [['restore', '--all'], /--all needs --host <name>/],
    [['restore', '--host', 'db1'], /--host needs --all/],
    [['restore', '--all', '--host', 'nosuch'], /'nosuch' is not one of hosts \(db1, web1\)/],
    [['restore', '--all', '--host', 'db1', '--job', 'appdb'], /takes no --job/],
    [['drill', '--all', '--host', 'db1', '--options', '{}'], /takes no --options/],
    [['restore'], /--job <name>' not specified/],
  ])('refuses %j clearly', async (args, message) => {
    const run = await strongbox([...args, '--plan', plan]);

    expect(run.code).toBe(2);
    expect(run.lastError).toMatch(/^strongbox: error: /);
    expect(run.lastError).toMatch(message);
  });
});
