/**
 * The `pitr` bench suite (`npm run bench -- pitr`, issue #12): physical base backups of the `pg` suite's
 * ~1 GB database (its makeData) and their restores into a new data directory, side by side in one run:
 * `strongbox backup` of a postgres-physical job (pg_basebackup -Ft -X fetch, zstd -1, file vault),
 * `pg_basebackup -Ft -X fetch -c fast | zstd -1 > /dev/null` (the same work as a shell pipe), and
 * pgBackRest (Debian's 2.45; posix repository in the temp dir, `backup --type=full`, process-max 2,
 * archive-copy so its backup too holds the WAL it needs) with zst at level 1 (strongbox's class) and lz4.
 * Then WAL archiving, twice:
 * - BENCH_WAL_SEGMENTS real segments (captured with pg_receivewal while rows are updated) pushed the way
 *   PostgreSQL's archiver does — one command per segment, in order, each segment's `.ready` renamed
 *   `.done` once the command exited 0 — by `strongbox wal-push` (push-ahead, default 4 at once) and by
 *   pgBackRest's asynchronous `archive-push` (process-max 2): segments per second until every segment is
 *   in the vault / repository (and until the last command returned).
 * - under write load: a fresh cluster per archiver (makeData again, its WAL archived by `/bin/true`),
 *   `archive_command` then set to `strongbox wal-push` or to pgBackRest's asynchronous archive-push, a
 *   checkpoint, and `pgbench -c 4 -j 2 -N` for BENCH_LOAD_SECONDS with full_page_writes on and
 *   wal_compression off; every 0.5 s the archiver's lag (segments completed but not archived, from
 *   pg_stat_archiver, and `.ready` files), until it has drained: lag max and p95, segments generated and
 *   archived per second, failed_count, and pgbench's TPS (archiving competes for the same cores).
 * After each step the bench stops the cluster and ends what an archiver left running (see endLeftovers).
 *
 * Goals: base backup ≤ 0.9× pgBackRest zst (issue #12, the same compression class), restore ≤
 * pgBackRest's restore, WAL push at least pgBackRest's segments per second, archiver lag under pgbench
 * ≤ 2 segments.
 *
 * Options (env): BENCH_SCALE (default 70, as the pg suite), BENCH_RUNS (default 3; medians),
 * BENCH_WAL_SEGMENTS (default 64), BENCH_LOAD_SECONDS (default 60).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SPOOL_DIR } from '#agent/wal-spool';
import { parseSegment, WAL_SEGMENT_NAME } from '#core/wal';
import { type PgServer, startCluster } from '../scripts/lib/postgres-cluster';
import { makeData } from './backup-restore';
import {
  cli,
  duBytes,
  endLeftovers,
  exec,
  type Goal,
  MiB,
  machineLine,
  measure,
  measureAgent,
  measureShell,
  percentile,
  type Run,
  runs,
  type StepMeasure,
  StepSeries,
  type Suite,
  stepTable,
} from './lib';

const scale = Number(process.env.BENCH_SCALE ?? 70);
const segments = Number(process.env.BENCH_WAL_SEGMENTS ?? 64);
const loadSeconds = Number(process.env.BENCH_LOAD_SECONDS ?? 60);
/** The write load: pgbench's simple-update script (no branch/teller updates), 4 clients on 2 threads. */
const PGBENCH_LOAD = ['-n', '-N', '-c', '4', '-j', '2'];
/** pgBackRest's asynchronous archive-push as both WAL steps run it. */
const PGBACKREST_ASYNC = ['archive-async=y', 'process-max=2', 'compress-type=zst', 'compress-level=1'];

const asPostgres = (argv: string[]) => ['runuser', '-u', 'postgres', '--', ...argv];
/** Runs an argv (one of {@link asPostgres}'s) to its end; rejects when it exits non-zero. */
const execArgv = async ([tool, ...args]: string[]) => {
  await exec(tool as string, args);
};

async function run(): Promise<{ markdown: string; goals: Goal[] }> {
  const work = await mkdtemp(join(tmpdir(), 'strongbox-bench-pitr-'));
  await exec('chown', ['postgres:postgres', work]);
  const conf = join(work, 'pgbackrest.conf');
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
    await writePgbackrestConfig(
      conf,
      [
        `repo1-path=${repo}`,
        `log-path=${join(work, 'pgbackrest-log')}`,
        `lock-path=${join(work, 'pgbackrest-lock')}`,
        `spool-path=${join(work, 'pgbackrest-spool')}`,
        'process-max=2',
        'start-fast=y',
        'archive-copy=y',
      ],
      'bench',
      pg,
    );
    await exec('chown', ['-R', 'postgres:postgres', work]);
    await execArgv(pgbackrest('--stanza=bench', 'stanza-create'));
    await makeData(pg);
    await archiverCaughtUp(pg);
    const dbBytes = Number(await pg.psql("SELECT pg_database_size('bench')"));
    const bin = (name: string) => join(pg.binDir, name);
    const pgEnv = { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(pg.port), PGUSER: 'postgres' };

    await exec(process.execPath, [cli, 'keygen', join(work, 'master.key')]);
    const plan = join(work, 'plan.yaml');
    await writeFile(plan, planText(work, 'base', pg));
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
    const complete = async () => (await readdir(captured)).filter((f) => WAL_SEGMENT_NAME.test(f)).sort();
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
    /**
     * Pushes the chosen segments from a copy of a data directory as the archiver would, then waits until
     * `stored()` counts every one of them in the vault or repository: the seconds until the last
     * command returned (`foreground`) and until all are durably archived (`durable`, the same tree's CPU).
     */
    const archiver = async (name: string, command: string, stored: () => Promise<number>) => {
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
      const started = Date.now();
      const foreground = await measure(asPostgres(['bash', '-o', 'pipefail', '-c', script]));
      for (let count = await stored(); count < segments; count = await stored()) {
        if (Date.now() - started > 10 * 60_000)
          throw new Error(`${name}: only ${count} of the ${segments} segments archived after 10 minutes`);
        await sleep(50);
      }
      const durable: Run = { ...foreground, seconds: (Date.now() - started) / 1000 };
      reportLeftovers(name, await endLeftovers([dir], { pids: await spoolPids(dir) }));
      return { foreground, durable };
    };
    const chosenSet = new Set(chosen);
    /** How many of the chosen segments are among the file names below `path` (none when it is missing). */
    const countStored = async (path: string, nameOf: (file: string) => string | undefined) => {
      const files = await readdir(path, { recursive: true }).catch(() => [] as string[]);
      return files.filter((f) => chosenSet.has(nameOf(basename(f)) ?? '')).length;
    };
    await exec('chown', ['-R', 'postgres:postgres', work]);
    const sbPush = await archiver(
      'strongbox',
      `${process.execPath} ${cli} wal-push --plan ${plan} --job base -q`,
      // The file vault publishes an object under its own name only once it is whole (.<name>.partial-… before).
      () => countStored(join(work, 'vault', 'wal', 'base'), (file) => file),
    );
    add(`strongbox wal-push, ${segments} segments, until all in the vault`, sbPush.durable);
    await execArgv(pgbackrest('--stanza=bench', `--repo1-path=${walRepo}`, 'stanza-create'));
    const brPush = await archiver(
      'pgbackrest',
      `pgbackrest --config=${conf} --stanza=bench --repo1-path=${walRepo} --pg1-path=%d ${PGBACKREST_ASYNC.map((o) => `--${o}`).join(' ')} archive-push`,
      // <segment>-<sha1>[.zst]; pgBackRest writes `….pgbackrest.tmp` first and renames it.
      () =>
        countStored(
          join(walRepo, 'archive'),
          (file) => /^([0-9A-F]{24})-[0-9a-f]{40}(\.[a-z0-9]+)?$/.exec(file)?.[1],
        ),
    );
    add(`pgbackrest archive-push (async), ${segments} segments, until all in the repository`, brPush.durable);
    // The load steps run on clusters of their own; this one has nothing more to do.
    await pg.stop();

    const load: ArchiverLoad[] = [];
    await exec('chown', ['-R', 'postgres:postgres', work]);
    load.push(
      await archiveUnderLoad('strongbox wal-push', async (server) => {
        const loadPlan = join(work, 'plan-load.yaml');
        await writeFile(loadPlan, planText(work, 'load', server));
        return `${process.execPath} ${cli} wal-push --plan ${loadPlan} --job load -q %p`;
      }),
    );
    load.push(
      await archiveUnderLoad('pgbackrest archive-push (async)', async (server) => {
        const loadConf = join(work, 'pgbackrest-load.conf');
        await writePgbackrestConfig(
          loadConf,
          [
            `repo1-path=${join(work, 'pgbackrest-load-repo')}`,
            `log-path=${join(work, 'pgbackrest-log')}`,
            `lock-path=${join(work, 'pgbackrest-load-lock')}`,
            `spool-path=${join(work, 'pgbackrest-load-spool')}`,
            ...PGBACKREST_ASYNC,
          ],
          'load',
          server,
        );
        await exec('chown', ['-R', 'postgres:postgres', work]);
        await execArgv(asPostgres(['pgbackrest', `--config=${loadConf}`, '--stanza=load', 'stanza-create']));
        return `pgbackrest --config=${loadConf} --stanza=load archive-push %p`;
      }),
    );

    const measures = series.medians();
    const get = (prefix: string) => measures.find((m) => m.name.startsWith(prefix)) as StepMeasure;
    const sbBackup = get('strongbox backup');
    const brZst = get('pgbackrest backup --type=full (zst');
    const sbRestore = get('strongbox restore');
    const brRestore = get('pgbackrest restore');
    const rate = (seconds: number) => segments / seconds;
    const sbRate = rate(get('strongbox wal-push').seconds);
    const brRate = rate(get('pgbackrest archive-push').seconds);
    const [sbLoad, brLoad] = load as [ArchiverLoad, ArchiverLoad];
    const lagOf = (l: ArchiverLoad) =>
      `max ${l.behindMax}, p95 ${l.behindP95} behind (.ready max ${l.readyMax})${l.drainedSeconds === undefined ? ', never drained' : ''}`;
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
        goal: "pitr: WAL push ≥ pgBackRest's asynchronous archive-push (until all durably archived)",
        measured: `${sbRate.toFixed(1)} vs ${brRate.toFixed(1)} segments/s (until the last command returned: ${rate(sbPush.foreground.seconds).toFixed(1)} vs ${rate(brPush.foreground.seconds).toFixed(1)})`,
        met: sbRate >= brRate,
      },
      {
        goal: 'pitr: archiver lag under pgbench ≤ 2 segments (max)',
        measured: `strongbox ${lagOf(sbLoad)}; pgBackRest async ${lagOf(brLoad)}; TPS ${sbLoad.tps.toFixed(0)} vs ${brLoad.tps.toFixed(0)}`,
        met:
          Math.max(sbLoad.behindMax, sbLoad.readyMax) <= 2 &&
          sbLoad.drainedSeconds !== undefined &&
          sbLoad.failed === 0,
      },
    ];
    const markdown = [
      '### PostgreSQL physical backup, restore and WAL push (`pitr`)',
      '',
      `Database: pgbench scale ${scale}, filler randomised, ${(dbBytes / MiB).toFixed(0)} MiB (pg_database_size). WAL push: ${segments} segments of 16 MiB. ${machineLine(runs)} CPU = user + system seconds of the whole process tree; RSS = the largest single process. pgBackRest's asynchronous process detaches: its CPU is not in its row.`,
      '',
      stepTable(measures),
      '',
      `Archiving under \`pgbench ${PGBENCH_LOAD.join(' ')} -T ${loadSeconds}\` (one run each, a fresh cluster each, full_page_writes on, wal_compression off, a checkpoint just before): *behind* = segments completed but not yet archived (pg_stat_archiver), sampled every 0.5 s from the load's start until it drained.`,
      '',
      loadTable(load),
    ].join('\n');
    return { markdown, goals };
  } finally {
    receiver?.kill('SIGKILL');
    await pg.stop();
    reportLeftovers('pitr', await endLeftovers([work, dirname(pg.dataDir)]));
    await rm(work, { recursive: true, force: true });
  }
}

/** The text of a plan with one postgres-physical job on `pg`, in the suite's vault, with its key. */
function planText(work: string, job: string, pg: PgServer): string {
  return `version: 1\nvault: { url: "file://${join(work, 'vault')}" }\nkey: { type: local, path: master.key }\njobs:\n  - name: ${job}\n    source: { kind: postgres-physical, host: 127.0.0.1, port: ${pg.port}, user: postgres }\n`;
}

/** Writes a pgBackRest configuration: `global` options (quiet logs added), then a stanza for `pg`. */
async function writePgbackrestConfig(
  path: string,
  global: string[],
  stanza: string,
  pg: PgServer,
): Promise<void> {
  await writeFile(
    path,
    [
      '[global]',
      ...global,
      'log-level-console=warn',
      'log-level-file=off',
      '',
      `[${stanza}]`,
      `pg1-path=${pg.dataDir}`,
      `pg1-port=${pg.port}`,
      `pg1-socket-path=${pg.socketDir}`,
      '',
    ].join('\n'),
  );
}

/**
 * Pids from the pid files in the agent's spool (`<data dir>/pgsql_tmp_strongbox/`, at any depth; a
 * resident pusher's), kept only while that pid is still an agent process (its command line names
 * strongbox), so a stale file never points {@link endLeftovers} at someone else's process.
 */
async function spoolPids(dataDir: string): Promise<number[]> {
  const spool = join(dataDir, SPOOL_DIR);
  const files = await readdir(spool, { recursive: true }).catch(() => [] as string[]);
  const pids: number[] = [];
  for (const file of files.filter((f) => /(^|[/.-])pid$/.test(f))) {
    const pid = Number(/^\s*(\d+)/.exec(await readFile(join(spool, file), 'utf8').catch(() => ''))?.[1]);
    const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (pid > 1 && command.includes('strongbox')) pids.push(pid);
  }
  return pids;
}

/** Prints what {@link endLeftovers} had to end after a step (nothing when the step left nothing running). */
function reportLeftovers(step: string, ended: string[]): void {
  for (const line of ended) process.stdout.write(`  ${step}: ended a process left behind: ${line}\n`);
}

/** What one archiver did under the pgbench write load ({@link archiveUnderLoad}). */
interface ArchiverLoad {
  name: string;
  /** pgbench's transactions per second (without initial connection time). */
  tps: number;
  loadSeconds: number;
  /** Segments PostgreSQL completed during the load. */
  generated: number;
  /** Segments archived (pg_stat_archiver.archived_count) from the load's start to its end. */
  archivedByEnd: number;
  /** Seconds from the load's start until every completed segment was archived; undefined: not within the deadline. */
  drainedSeconds?: number;
  /** Segments archived from the load's start until drained (or the deadline). */
  archivedDrained: number;
  /** Segments completed but not archived (pg_stat_archiver), max and p95 of the samples. */
  behindMax: number;
  behindP95: number;
  /** `pg_wal/archive_status/*.ready` files, max and p95 of the samples. */
  readyMax: number;
  readyP95: number;
  /** pg_stat_archiver.failed_count's growth over the step. */
  failed: number;
}

/** One look at the archiver: pg_stat_archiver and the `.ready` files. */
interface ArchiverSample {
  /** Segment number of pg_current_wal_lsn(). */
  current: number;
  behind: number;
  ready: number;
  archived: number;
  failed: number;
}

async function sampleArchiver(pg: PgServer, segmentBytes: number): Promise<ArchiverSample> {
  const [row, status] = await Promise.all([
    pg.psql(
      "SELECT pg_walfile_name(pg_current_wal_lsn()), coalesce(last_archived_wal, ''), archived_count, failed_count FROM pg_stat_archiver",
    ),
    readdir(join(pg.dataDir, 'pg_wal', 'archive_status')),
  ]);
  const [currentName, lastName, archived, failed] = row.split('|') as [string, string, string, string];
  const current = parseSegment(currentName, segmentBytes).number;
  // last_archived_wal can be a backup history file (<segment>.<offset>.backup): its segment counts.
  const last = WAL_SEGMENT_NAME.test(lastName.slice(0, 24))
    ? parseSegment(lastName.slice(0, 24), segmentBytes).number
    : current - 1;
  return {
    current,
    behind: Math.max(0, current - last - 1),
    ready: status.filter((f) => f.endsWith('.ready')).length,
    archived: Number(archived),
    failed: Number(failed),
  };
}

/**
 * One archiver under write load, on a fresh cluster: makeData (its WAL archived by `/bin/true`, then
 * drained), `archive_command` set to what `configure` returns for the cluster, a checkpoint, then
 * `pgbench` for BENCH_LOAD_SECONDS while the archiver is sampled every 0.5 s, and on until every completed
 * segment is archived (at most 10× the load's length). Stops the cluster and ends what the archiver left
 * running, also when the step fails.
 */
async function archiveUnderLoad(
  name: string,
  configure: (pg: PgServer) => Promise<string>,
): Promise<ArchiverLoad> {
  process.stdout.write(`archiving under pgbench: ${name}\n`);
  const pg = await startCluster({
    databases: ['bench'],
    settings: {
      shared_buffers: "'256MB'",
      wal_level: 'replica',
      archive_mode: 'on',
      archive_command: "'/bin/true'",
      full_page_writes: 'on',
      wal_compression: 'off',
      max_wal_size: "'16GB'",
      checkpoint_timeout: "'1h'",
    },
  });
  try {
    await makeData(pg);
    await archiverCaughtUp(pg);
    const command = await configure(pg);
    await pg.psql(`ALTER SYSTEM SET archive_command = '${command.replaceAll("'", "''")}'`);
    await pg.psql('SELECT pg_reload_conf()');
    await sleep(1000); // the archiver rereads its configuration on the reload signal
    await pg.psql('CHECKPOINT');
    const segmentBytes = Number(
      await pg.psql("SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'"),
    );
    const sample = () => sampleArchiver(pg, segmentBytes);
    const first = await sample();
    const samples: ArchiverSample[] = [];
    const started = Date.now();
    let loading = true;
    const pgbench = measure(
      [join(pg.binDir, 'pgbench'), ...PGBENCH_LOAD, '-T', String(loadSeconds), 'bench'],
      { ...process.env, PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: 'postgres' },
    ).finally(() => {
      loading = false;
    });
    pgbench.catch(() => undefined); // awaited below; sampling must not make its failure unhandled
    for (let tick = 1; loading; tick++) {
      samples.push(await sample());
      await sleep(Math.max(0, started + tick * 500 - Date.now()));
    }
    const load = await pgbench;
    const ended = Date.now();
    const atEnd = await sample();
    samples.push(atEnd);
    const deadline = ended + Math.max(120, 10 * loadSeconds) * 1000;
    let last = atEnd;
    while (last.behind > 0 && Date.now() < deadline) {
      await sleep(500);
      last = await sample();
      samples.push(last);
    }
    const drained = last.behind === 0 ? Date.now() : undefined;
    const tps = Number(/tps = ([\d.]+) \(without initial/.exec(load.stdout)?.[1] ?? Number.NaN);
    const result: ArchiverLoad = {
      name,
      tps,
      loadSeconds: (ended - started) / 1000,
      generated: atEnd.current - first.current,
      archivedByEnd: atEnd.archived - first.archived,
      drainedSeconds: drained === undefined ? undefined : (drained - started) / 1000,
      archivedDrained: last.archived - first.archived,
      behindMax: Math.max(...samples.map((s) => s.behind)),
      behindP95: percentile(
        samples.map((s) => s.behind),
        95,
      ),
      readyMax: Math.max(...samples.map((s) => s.ready)),
      readyP95: percentile(
        samples.map((s) => s.ready),
        95,
      ),
      failed: last.failed - first.failed,
    };
    process.stdout.write(
      `  ${name}: ${result.tps.toFixed(0)} TPS, ${result.generated} segments generated, ${result.archivedByEnd} archived by the load's end, ${result.drainedSeconds === undefined ? 'not drained' : `drained after ${result.drainedSeconds.toFixed(1)} s`}; behind max ${result.behindMax} p95 ${result.behindP95}; .ready max ${result.readyMax}; failed ${result.failed}\n`,
    );
    process.stdout.write(`  behind, every 0.5 s: ${samples.map((s) => s.behind).join(' ')}\n`);
    return result;
  } finally {
    const pids = await spoolPids(pg.dataDir);
    await pg.stop();
    reportLeftovers(name, await endLeftovers([dirname(pg.dataDir)], { pids }));
  }
}

/** The load steps as a markdown table. */
function loadTable(load: readonly ArchiverLoad[]): string {
  const perSecond = (count: number, seconds: number | undefined) =>
    seconds === undefined ? '' : `${count} (${(count / seconds).toFixed(2)}/s)`;
  return [
    "| archiver | pgbench TPS | segments generated | archived by the load's end | archived until drained | drained at s from the load's start | behind max | behind p95 | .ready max | .ready p95 | failed |",
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...load.map(
      (l) =>
        `| ${l.name} | ${l.tps.toFixed(0)} | ${perSecond(l.generated, l.loadSeconds)} | ${perSecond(l.archivedByEnd, l.loadSeconds)} | ${perSecond(l.archivedDrained, l.drainedSeconds) || `${l.archivedDrained} (not drained)`} | ${l.drainedSeconds?.toFixed(1) ?? 'no'} | ${l.behindMax} | ${l.behindP95} | ${l.readyMax} | ${l.readyP95} | ${l.failed} |`,
    ),
  ].join('\n');
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
    await sleep(2000);
  }
  throw new Error(`the archiver did not reach ${segment} within 30 minutes`);
}

export const pitrSuite: Suite = {
  name: 'pitr',
  summary: `physical base backup, restore, WAL push and archiving under pgbench vs pgBackRest (BENCH_SCALE=${scale}, BENCH_WAL_SEGMENTS=${segments}, BENCH_LOAD_SECONDS=${loadSeconds}, BENCH_RUNS=${runs})`,
  run,
};
