/**
 * The `pitr` bench suite (`npm run bench -- pitr`, issue #12): physical base backups of the `pg` suite's
 * ~1 GB database (its makeData) and their restores into a new data directory, side by side in one run:
 * `strongbox backup` of a postgres-physical job (pg_basebackup -Ft -X fetch, zstd -1, file vault),
 * `pg_basebackup -Ft -X fetch -c fast | zstd -1 > /dev/null` (the same work as a shell pipe), and
 * pgBackRest (Debian's 2.45; posix repository in the temp dir, `backup --type=full`, process-max 2,
 * archive-copy so its backup too holds the WAL it needs) with zst at level 1 (strongbox's class) and lz4.
 * Then WAL archiving: BENCH_WAL_SEGMENTS real segments (captured with pg_receivewal while rows are
 * updated) pushed the way PostgreSQL's archiver does — one command per segment, in order, each segment's
 * `.ready` renamed `.done` once the command exited 0 — by `strongbox wal-push` (push-ahead, default 4
 * at once) and by pgBackRest's asynchronous `archive-push` (process-max 2): segments per second.
 *
 * Goals: base backup ≤ 0.9× pgBackRest zst (issue #12, the same compression class), restore ≤
 * pgBackRest's restore, WAL push at least pgBackRest's segments per second.
 *
 * Options (env): BENCH_SCALE (default 70, as the pg suite), BENCH_RUNS (default 3; medians),
 * BENCH_WAL_SEGMENTS (default 64).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type PgServer, startCluster } from '../scripts/lib/postgres-cluster';
import { makeData } from './backup-restore';
import {
  cli,
  duBytes,
  exec,
  type Goal,
  MiB,
  machineLine,
  measure,
  measureAgent,
  measureShell,
  type Run,
  runs,
  type StepMeasure,
  StepSeries,
  type Suite,
  stepTable,
} from './lib';

const scale = Number(process.env.BENCH_SCALE ?? 70);
const segments = Number(process.env.BENCH_WAL_SEGMENTS ?? 64);
const SEGMENT = /^[0-9A-F]{24}$/;

async function run(): Promise<{ markdown: string; goals: Goal[] }> {
  const work = await mkdtemp(join(tmpdir(), 'strongbox-bench-pitr-'));
  await exec('chown', ['postgres:postgres', work]);
  const conf = join(work, 'pgbackrest.conf');
  const asPostgres = (argv: string[]) => ['runuser', '-u', 'postgres', '--', ...argv];
  const pgbackrest = (...args: string[]) => asPostgres(['pgbackrest', `--config=${conf}`, ...args]);
  const pg = await startCluster({
    databases: ['bench'],
    settings: {
      shared_buffers: "'256MB'",
      max_wal_size: "'4GB'",
      wal_level: 'replica',
      archive_mode: 'on',
      archive_command: `'pgbackrest --config=${conf} --stanza=bench archive-push %p'`,
    },
  });
  let receiver: ChildProcess | undefined;
  try {
    const repo = join(work, 'pgbackrest-repo');
    const walRepo = join(work, 'pgbackrest-wal-repo');
    await writeFile(
      conf,
      [
        '[global]',
        `repo1-path=${repo}`,
        `log-path=${join(work, 'pgbackrest-log')}`,
        `lock-path=${join(work, 'pgbackrest-lock')}`,
        `spool-path=${join(work, 'pgbackrest-spool')}`,
        'log-level-console=warn',
        'log-level-file=off',
        'process-max=2',
        'start-fast=y',
        'archive-copy=y',
        '',
        '[bench]',
        `pg1-path=${pg.dataDir}`,
        `pg1-port=${pg.port}`,
        `pg1-socket-path=${pg.socketDir}`,
        '',
      ].join('\n'),
    );
    await exec('chown', ['-R', 'postgres:postgres', work]);
    const [tool, ...args] = pgbackrest('--stanza=bench', 'stanza-create');
    await exec(tool as string, args);
    await makeData(pg);
    await archiverCaughtUp(pg);
    const dbBytes = Number(await pg.psql("SELECT pg_database_size('bench')"));
    const bin = (name: string) => join(pg.binDir, name);
    const pgEnv = { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(pg.port), PGUSER: 'postgres' };

    await exec(process.execPath, [cli, 'keygen', join(work, 'master.key')]);
    const plan = join(work, 'plan.yaml');
    await writeFile(
      plan,
      `version: 1\nvault: { url: "file://${join(work, 'vault')}" }\nkey: { type: local, path: master.key }\njobs:\n  - name: base\n    source: { kind: postgres-physical, host: 127.0.0.1, port: ${pg.port}, user: postgres }\n`,
    );

    const series = new StepSeries();
    const add = (name: string, r: Run, bytes?: number) => series.add(name, r, bytes);
    const newestLabel = async () => {
      const labels = (await readdir(join(repo, 'backup', 'bench'))).filter((n) => /^\d{8}-\d{6}F$/.test(n));
      return labels.sort().at(-1) as string;
    };
    const emptyDataDir = async (path: string) => {
      await mkdir(path, { mode: 0o700 });
      await exec('chown', ['postgres:postgres', path]);
    };
    for (let n = 1; n <= runs; n++) {
      process.stdout.write(`run ${n}/${runs}\n`);
      add(
        'pg_basebackup -Ft -X fetch | zstd -1 > /dev/null',
        await measureShell(
          `${bin('pg_basebackup')} -D - -Ft -X fetch -c fast | zstd -1 -q > /dev/null`,
          pgEnv,
        ),
      );
      const backup = await measureAgent(['backup', '--plan', plan, '--job', 'base']);
      add('strongbox backup → file vault (zstd -1)', backup, Number(backup.json.storedBytes));
      const sbTarget = join(work, `restore-sb-${n}`);
      add(
        'strongbox restore ← file vault',
        await measureAgent(['restore', '--plan', plan, '--job', 'base', '--target', sbTarget]),
      );
      await rm(sbTarget, { recursive: true, force: true });
      for (const [type, level] of [
        ['zst', '1'],
        ['lz4', '1'],
      ] as const) {
        const full = await measure(
          pgbackrest(
            '--stanza=bench',
            '--type=full',
            `--compress-type=${type}`,
            `--compress-level=${level}`,
            'backup',
          ),
        );
        add(
          `pgbackrest backup --type=full (${type} -${level})`,
          full,
          await duBytes(join(repo, 'backup', 'bench', await newestLabel())),
        );
      }
      const brTarget = join(work, `restore-pgbr-${n}`);
      await emptyDataDir(brTarget);
      // The newest backup is the lz4 one; restore the zst one (the class strongbox stores).
      const labels = (await readdir(join(repo, 'backup', 'bench'))).filter((l) => /F$/.test(l)).sort();
      const zst = labels.at(-2) as string;
      add(
        'pgbackrest restore (zst)',
        await measure(pgbackrest('--stanza=bench', `--pg1-path=${brTarget}`, `--set=${zst}`, 'restore')),
      );
      await rm(brTarget, { recursive: true, force: true });
    }

    // WAL archiving: real segments, captured by pg_receivewal while rows are updated.
    process.stdout.write(`capturing ${segments} WAL segments…\n`);
    const captured = join(work, 'captured');
    await mkdir(captured);
    receiver = spawn(
      bin('pg_receivewal'),
      ['-D', captured, '--no-loop', '-h', pg.socketDir, '-p', String(pg.port), '-U', 'postgres'],
      {
        stdio: 'ignore',
      },
    );
    const complete = async () => (await readdir(captured)).filter((f) => SEGMENT.test(f)).sort();
    for (let step = 0; (await complete()).length < segments + 1; step++) {
      if (step > segments * 20)
        throw new Error(`pg_receivewal captured only ${(await complete()).length} segments`);
      // No pg_switch_wal: segments filled by updates, as a busy server's are (a switched one is mostly zeros).
      await pg.psql(
        `UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 8 = ${step % 8}`,
        'bench',
      );
    }
    receiver.kill('SIGINT');
    const chosen = (await complete()).slice(0, segments);
    const archiver = async (name: string, command: string) => {
      const dir = join(work, `pushing-${name}`);
      const walDir = join(dir, 'pg_wal');
      await mkdir(join(walDir, 'archive_status'), { recursive: true });
      await mkdir(join(dir, 'global'));
      await copyFile(join(pg.dataDir, 'global', 'pg_control'), join(dir, 'global', 'pg_control'));
      for (const segment of chosen) {
        await copyFile(join(captured, segment), join(walDir, segment));
        await writeFile(join(walDir, 'archive_status', `${segment}.ready`), '');
      }
      await exec('chown', ['-R', 'postgres:postgres', dir]);
      const script = `cd ${walDir} && for f in ${chosen.join(' ')}; do ${command.replace('%d', dir)} "$PWD/$f" || exit 1; mv "archive_status/$f.ready" "archive_status/$f.done"; done`;
      return measure(asPostgres(['bash', '-o', 'pipefail', '-c', script]));
    };
    await exec('chown', ['-R', 'postgres:postgres', work]);
    const sbPush = await archiver(
      'strongbox',
      `${process.execPath} ${cli} wal-push --plan ${plan} --job base -q`,
    );
    add(`strongbox wal-push, ${segments} segments`, sbPush);
    const [t2, ...a2] = pgbackrest('--stanza=bench', `--repo1-path=${walRepo}`, 'stanza-create');
    await exec(t2 as string, a2);
    const brPush = await archiver(
      'pgbackrest',
      `pgbackrest --config=${conf} --stanza=bench --repo1-path=${walRepo} --pg1-path=%d --archive-async=y --compress-type=zst --compress-level=1 archive-push`,
    );
    add(`pgbackrest archive-push (async), ${segments} segments`, brPush);
    const { stdout: archived } = await exec('find', [join(walRepo, 'archive'), '-type', 'f', '-name', '0*']);
    const stored = archived.split('\n').filter((line) => chosen.some((s) => line.includes(`/${s}-`))).length;
    if (stored !== segments) throw new Error(`pgbackrest archived ${stored} of the ${segments} segments`);

    const measures = series.medians();
    const get = (prefix: string) => measures.find((m) => m.name.startsWith(prefix)) as StepMeasure;
    const sbBackup = get('strongbox backup');
    const brZst = get('pgbackrest backup --type=full (zst');
    const sbRestore = get('strongbox restore');
    const brRestore = get('pgbackrest restore');
    const rate = (m: StepMeasure) => segments / m.seconds;
    const sbRate = rate(get('strongbox wal-push'));
    const brRate = rate(get('pgbackrest archive-push'));
    const goals: Goal[] = [
      {
        goal: 'pitr: base backup ≤ 0.9× pgBackRest full (zst, process-max 2)',
        measured: `${sbBackup.seconds.toFixed(1)} s vs ${brZst.seconds.toFixed(1)} s (${(sbBackup.seconds / brZst.seconds).toFixed(2)}×)`,
        met: sbBackup.seconds <= 0.9 * brZst.seconds,
      },
      {
        goal: 'pitr: restore into a new data directory ≤ pgBackRest restore',
        measured: `${sbRestore.seconds.toFixed(1)} s vs ${brRestore.seconds.toFixed(1)} s (${(sbRestore.seconds / brRestore.seconds).toFixed(2)}×)`,
        met: sbRestore.seconds <= brRestore.seconds,
      },
      {
        goal: "pitr: WAL push ≥ pgBackRest's asynchronous archive-push",
        measured: `${sbRate.toFixed(1)} vs ${brRate.toFixed(1)} segments/s`,
        met: sbRate >= brRate,
      },
    ];
    const markdown = [
      '### PostgreSQL physical backup, restore and WAL push (`pitr`)',
      '',
      `Database: pgbench scale ${scale}, filler randomised, ${(dbBytes / MiB).toFixed(0)} MiB (pg_database_size). WAL push: ${segments} segments of 16 MiB. ${machineLine(runs)} CPU = user + system seconds of the whole process tree; RSS = the largest single process.`,
      '',
      stepTable(measures),
    ].join('\n');
    return { markdown, goals };
  } finally {
    receiver?.kill('SIGKILL');
    await pg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Waits until the archiver has pushed every segment the data load wrote (a few GB of WAL): each tool's
 * backup then starts with an idle archiver, and pgBackRest's wait for its stop segment (60 s) is not
 * spent on the load's backlog.
 */
async function archiverCaughtUp(pg: PgServer): Promise<void> {
  const segment = await pg.psql('SELECT pg_walfile_name(pg_switch_wal())');
  process.stdout.write(`waiting for the archiver to push the load's WAL (up to ${segment})…\n`);
  const deadline = Date.now() + 30 * 60_000;
  while (Date.now() < deadline) {
    const last = await pg.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
    if (last >= segment) return;
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  throw new Error(`the archiver did not reach ${segment} within 30 minutes`);
}

export const pitrSuite: Suite = {
  name: 'pitr',
  summary: `physical base backup, restore and WAL push vs pgBackRest (BENCH_SCALE=${scale}, BENCH_WAL_SEGMENTS=${segments})`,
  run,
};
