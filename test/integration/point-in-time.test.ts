/**
 * Point-in-time recovery end to end on a real cluster: PostgreSQL archives through `strongbox wal-push`
 * (archive_command), a physical base backup goes into the vault, rows are written around recorded
 * times, LSNs, a transaction id and a named restore point, and restores with `--to` replay the archive
 * through `strongbox wal-fetch` (restore_command) to exactly there and promote. A flipped byte in an
 * archived segment stops recovery with a clear error instead of a silent early promotion.
 */
import { execFile } from 'node:child_process';
import { chown, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { runRestore } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import { readManifest } from '#core/catalog';
import { RestoreError } from '#core/errors';
import type { Job } from '#core/plan';
import type { RecoveryTarget } from '#core/recovery';
import { strongbox } from '#test/support/cli';
import { type PgServer, startPostgres } from '#test/support/postgres';
import { testRuntime } from '#test/support/runtime';
import { buildAgentBundle } from '../../scripts/lib/agent-bundle';

const sh = promisify(execFile);
/** How PostgreSQL (as the postgres user, in its data directory) runs the agent: its one-file bundle. */
let AGENT: string;

let pg: PgServer;
let runtime: Runtime;
let dir: string;
let job: Job;
const marks: { time?: string; lsn?: string; xid?: string } = {};

async function chownTree(path: string): Promise<void> {
  await sh('chown', ['-R', 'postgres:postgres', path]);
}

beforeAll(async () => {
  const made = await testRuntime({
    jobs: [{ name: 'pitr', source: { kind: 'postgres-physical', port: 1 } }],
  });
  dir = made.dir;
  await buildAgentBundle(join(import.meta.dirname, '..', '..'), join(dir, 'strongbox.mjs'));
  AGENT = `${process.execPath} ${join(dir, 'strongbox.mjs')}`;
  const plan = join(dir, 'plan.yaml');
  // The site's setup: the plan and key readable, the vault writable by the user PostgreSQL runs as.
  const pushCommand = `${AGENT} wal-push --plan ${plan} --job pitr -q %p`;
  pg = await startPostgres({
    databases: ['app'],
    settings: { wal_level: 'replica', archive_mode: 'on', archive_command: `'${pushCommand}'` },
  });
  await writeFile(
    plan,
    JSON.stringify({
      version: 1,
      vault: made.runtime.plan.vault,
      key: made.runtime.plan.key,
      jobs: [{ name: 'pitr', source: { kind: 'postgres-physical', port: pg.port } }],
    }),
  );
  await mkdir(join(dir, 'vault'));
  await chownTree(dir);
  const reloaded = await testRuntime({
    jobs: [{ name: 'pitr', source: { kind: 'postgres-physical', port: pg.port } }],
  });
  await rm(reloaded.dir, { recursive: true, force: true });
  runtime = {
    ...made.runtime,
    plan: { ...made.runtime.plan, jobs: reloaded.runtime.plan.jobs },
    planPath: plan,
    env: { STRONGBOX_COMMAND: AGENT },
  };
  job = runtime.plan.jobs[0] as Job;

  await pg.psql("CREATE TABLE t (phase text); INSERT INTO t VALUES ('base')", 'app');
  await runBackup(runtime, job);
  await pg.psql("INSERT INTO t VALUES ('a')", 'app');
  marks.time = await pg.psql(
    `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00'`,
  );
  await pg.psql('SELECT pg_sleep(0.2)');
  await pg.psql("INSERT INTO t VALUES ('b')", 'app');
  marks.lsn = await pg.psql('SELECT pg_current_wal_insert_lsn()');
  await pg.psql("INSERT INTO t VALUES ('c')", 'app');
  marks.xid = (
    await pg.psql("BEGIN; INSERT INTO t VALUES ('d'); SELECT txid_current(); COMMIT;", 'app')
  ).trim();
  await pg.psql("INSERT INTO t VALUES ('e')", 'app');
  await pg.psql("SELECT pg_create_restore_point('before-f')");
  await pg.psql("INSERT INTO t VALUES ('f')", 'app');
  await archiveEverything();
}, 300_000);

afterAll(async () => {
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Switches to a new segment and waits until the archiver has stored the one it closed. */
async function archiveEverything(): Promise<void> {
  const closed = await pg.psql('SELECT pg_walfile_name(pg_switch_wal())');
  for (let i = 0; i < 100; i++) {
    const last = await pg.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
    if (last >= closed) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const log = await readFile(join(pg.dataDir, '..', 'server.log'), 'utf8').catch(() => '');
  throw new Error(
    `the archiver did not archive ${closed}: ${await pg.psql('SELECT * FROM pg_stat_archiver')}\n${log
      .split('\n')
      .filter((l) => /error|FATAL/.test(l))
      .slice(0, 8)
      .join('\n')}`,
  );
}

/** Restores to `target`, starts the copy, returns its rows' phases, and removes it. */
async function phasesAt(target: RecoveryTarget, label: string): Promise<string[]> {
  const dataDir = join('/tmp', `strongbox-pitr-${label}-${process.pid}`);
  const result = await runRestore(runtime, job, { target: dataDir, recoverTo: target, start: true });
  try {
    expect(result.checks.filter((c) => !c.passed)).toEqual([]);
    const pid = (await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n');
    const { stdout } = await sh(join(pg.binDir, 'psql'), [
      ...['-X', '-A', '-t', '-h', dataDir, '-p', pid[3] as string, '-U', 'postgres', '-d', 'app'],
      ...['-c', 'SELECT phase FROM t ORDER BY phase'],
    ]);
    return stdout.trim().split('\n');
  } finally {
    await sourceDriver(job.source).discard(job.source, dataDir, { env: {} });
  }
}

describe('point-in-time restore of a postgres-physical job', () => {
  it('records the base backup in the manifest', async () => {
    const [backup] = await readdir(join(dir, 'vault', 'backups', 'pitr'));
    const manifest = await readManifest(runtime.vault, 'pitr', backup as string);
    const details = manifest.source;
    expect(details).toMatchObject({ kind: 'postgres-physical', timeline: 1 });
    if (details.kind !== 'postgres-physical') throw new Error('not physical');
    expect(details.systemIdentifier).toBe(
      await pg.psql('SELECT system_identifier::text FROM pg_control_system()'),
    );
    expect(details.backupLabel).toMatch(/^START WAL LOCATION: /);
    expect(details.firstWalSegment <= details.lastWalSegment).toBe(true);
    expect(manifest.objects.map((o) => o.name)).toEqual(['base.tar.zst.sbx', 'backup_manifest.zst.sbx']);
  });

  it('doctor passes the archiving checks and warns about archive_timeout = 0', async () => {
    const checks = await sourceDriver(job.source).doctor(job.source, { env: {} });
    const bySubject = Object.fromEntries(checks.map((c) => [c.subject, c]));

    for (const subject of [
      'replication permission',
      'wal_level',
      'archive_mode',
      'archive_command',
      'pg_basebackup',
    ])
      expect(bySubject[subject]?.ok, subject).toBe(true);
    expect(bySubject.archive_timeout).toMatchObject({ ok: false, warning: true });
    expect(bySubject.pg_stat_archiver).toBeDefined();
  });

  it.each([
    [
      'a recorded time: only the rows committed before it',
      () => ({ type: 'time', time: marks.time }),
      ['a', 'base'],
    ],
    ['an LSN', () => ({ type: 'lsn', lsn: marks.lsn }), ['a', 'b', 'base']],
    ['a transaction id, inclusive', () => ({ type: 'xid', xid: marks.xid }), ['a', 'b', 'base', 'c', 'd']],
    ['a named restore point', () => ({ type: 'name', name: 'before-f' }), ['a', 'b', 'base', 'c', 'd', 'e']],
    ['latest: everything archived', () => ({ type: 'latest' }), ['a', 'b', 'base', 'c', 'd', 'e', 'f']],
  ] as const)(
    'to %s',
    async (label, target, expected) => {
      expect(await phasesAt(target() as RecoveryTarget, label.split(' ')[1] as string)).toEqual(expected);
    },
    300_000,
  );

  it('stops recovery with a clear error when an archived segment has a flipped byte', async () => {
    const timelineDir = join(dir, 'vault', 'wal', 'pitr', '00000001');
    const newest = (await readdir(timelineDir))
      .filter((n) => /^[0-9A-F]{24}$/.test(n))
      .sort()
      .at(-1) as string;
    const path = join(timelineDir, newest);
    const bytes = await readFile(path);
    bytes[bytes.length - 20] = (bytes[bytes.length - 20] as number) ^ 0x10;
    await writeFile(path, bytes);
    await chown(path, 101, 104).catch(() => {});
    const dataDir = join('/tmp', `strongbox-pitr-flipped-${process.pid}`);

    const attempt = runRestore(runtime, job, { target: dataDir, recoverTo: { type: 'latest' }, start: true });

    await expect(attempt).rejects.toBeInstanceOf(RestoreError);
    await expect(attempt).rejects.toThrow(new RegExp(`WAL file ${newest} cannot be restored`));
    await expect(readdir(dataDir)).rejects.toThrow();
  }, 300_000);

  it('verify reports the recovery window and RPO, and a deleted segment as a gap naming it and the window lost', async () => {
    for (const phase of ['g', 'h']) {
      await pg.psql(`INSERT INTO t VALUES ('${phase}')`, 'app');
      await archiveEverything();
    }
    const before = await strongbox(['verify', '--plan', runtime.planPath, '--job', 'pitr', '--json']);
    const timelineDir = join(dir, 'vault', 'wal', 'pitr', '00000001');
    const segments = (await readdir(timelineDir)).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
    const [backup] = await readdir(join(dir, 'vault', 'backups', 'pitr'));
    const manifest = await readManifest(runtime.vault, 'pitr', backup as string);
    if (manifest.source.kind !== 'postgres-physical') throw new Error('not physical');
    const lastOfBackup = manifest.source.lastWalSegment;
    const victim = segments.find((n) => n > lastOfBackup && n < (segments.at(-1) as string)) as string;
    await rm(join(timelineDir, victim));

    const after = await strongbox(['verify', '--plan', runtime.planPath, '--job', 'pitr', '--json']);

    expect(before.json.findings.filter((f: { severity: string }) => f.severity === 'critical')).toEqual([]);
    expect(before.json.jobs[0].recoveryWindow.earliest).toBe(manifest.finishedAt);
    expect(before.json.jobs[0].walRpoSeconds).toBeGreaterThanOrEqual(0);
    expect(after.code).toBe(2);
    const gap = after.json.findings.find((f: { check: string }) => f.check === 'wal-gap');
    expect(gap.message).toContain(victim);
    expect(gap.message).toMatch(/recovery from it stops at [0-9A-F]{24}, every later point is lost/);
  }, 120_000);
});
