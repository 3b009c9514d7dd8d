/**
 * A PostgreSQL restore killed with SIGKILL (which cannot clean up) leaves its scratch database: it is
 * marked as being restored into until the restore completes, so `list --all` names it, `prune --dry-run`
 * says it would drop it, `prune` drops it, and the next restore of the job drops it too and succeeds. A
 * database without the mark is never touched. Real PostgreSQL, the real CLI, a non-superuser role.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { strongbox } from '#test/support/cli';
import { type PgServer, startPostgres } from '#test/support/postgres';
import { fillDemoDatabase } from '../../scripts/lib/postgres-cluster';

const root = join(import.meta.dirname, '..', '..');
let pg: PgServer;
let dir: string;
let plan: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-pg-leftovers-'));
  await mkdir(join(dir, 'tmp'));
  pg = await startPostgres({ databases: ['shop'] });
  await fillDemoDatabase(pg, 'shop', { scale: 0.05 });
  await pg.psql('CREATE ROLE strongbox LOGIN CREATEDB IN ROLE pg_read_all_data; CREATE DATABASE keep_me;');
  await pg.psql("COMMENT ON DATABASE keep_me IS 'not ours'");
  plan = join(dir, 'plan.yaml');
  await writeFile(
    plan,
    `version: 1
vault: { url: "file://${join(dir, 'vault')}" }
key: { type: local, path: master.key }
jobs:
  - name: shop
    source: { kind: postgres, database: shop, host: 127.0.0.1, port: ${pg.port}, user: strongbox, noOwner: true }
`,
  );
  expect((await strongbox(['keygen', join(dir, 'master.key')])).code).toBe(0);
  const backup = await strongbox(['backup', '--plan', plan, '--job', 'shop']);
  expect(backup.code, backup.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const marked = async () =>
  (
    await pg.psql(
      "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE 'strongbox: restore in progress%'",
    )
  ).trim();

/**
 * Starts `strongbox restore` into `target` and kills it with SIGKILL once its database is marked. Its
 * temp dir is the test's: the TOC it keeps there while it runs (strongbox-toc-*) cannot be removed by a
 * process SIGKILL stops, and goes with the test's directory instead.
 */
async function killedRestore(target: string): Promise<void> {
  const cli = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(root, 'agent', 'main.ts'),
      'restore',
      '--plan',
      plan,
      '--job',
      'shop',
      '--target',
      target,
    ],
    { cwd: root, stdio: 'ignore', env: { ...process.env, TMPDIR: join(dir, 'tmp') } },
  );
  const exited = new Promise((resolve) => cli.once('exit', resolve));
  const until = Date.now() + 60_000;
  while ((await marked()) !== target) {
    if (Date.now() > until) throw new Error('the restore never created its database');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  cli.kill('SIGKILL');
  await exited;
}

describe('a killed postgres restore', () => {
  it('is named by list --all, dropped by prune, never a database without the mark', async () => {
    await killedRestore('shop_killed_a');

    const list = await strongbox(['list', '--plan', plan, '--job', 'shop', '--all']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(
      /shop: database shop_killed_a, left by a restore \(pid \d+ on \S+ since \S+\) that was killed: prune drops it/,
    );
    const dry = await strongbox(['prune', '--plan', plan, '--job', 'shop', '--dry-run']);
    expect(dry.stdout).toContain('database shop_killed_a, left by a restore');
    expect(await marked()).toBe('shop_killed_a');

    const prune = await strongbox(['prune', '--plan', plan, '--job', 'shop']);
    expect(prune.code, prune.stderr).toBe(0);
    expect(prune.stdout).toMatch(/shop_killed_a, .* that was killed: dropped/);
    expect(await marked()).toBe('');
    expect(
      await pg.psql("SELECT count(*) FROM pg_database WHERE datname IN ('keep_me', 'shop_killed_a')"),
    ).toBe('1');
  }, 120_000);

  it('is dropped by the next restore, which then completes (and is not marked any more)', async () => {
    await killedRestore('shop_killed_b');

    const again = await strongbox(['restore', '--plan', plan, '--job', 'shop', '--target', 'shop_killed_b']);

    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/shop_killed_b, .* that was killed: dropped/);
    expect(await marked()).toBe('');
    expect(
      await pg.psql(
        "SELECT shobj_description(oid, 'pg_database') IS NULL FROM pg_database WHERE datname = 'shop_killed_b'",
      ),
    ).toBe('t');
  }, 120_000);
});
