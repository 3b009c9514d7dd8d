/**
 * The `pg` bench suite (`npm run bench -- pg`): strongbox backup and restore of ~1 GB of data with
 * realistic compressibility against the same work done by a shell pipe, the seed MODAX runbook's own
 * procedure and bare pg_dump / pg_restore, side by side in one run (issue #15). Also the helpers both
 * PostgreSQL suites share (bench/many-tables.ts): the cluster, plans, the same-work pipe and the steps.
 *
 * Data: pgbench scale 70 (7M accounts) with pgbench_accounts.filler set to random hex, then VACUUM FULL —
 * plain pgbench data compresses 37× and flatters every compressor (../shared/NOTES-tools.md).
 *
 * Every step is a whole process under GNU time: wall, CPU (user+sys of it and its children) and the peak
 * RSS of its largest process (for the agent: the node process; pg_dump and zstd are separate processes).
 * The server's CPU for the step (its backends, reaped by the postmaster) is read from the postmaster's
 * cutime+cstime, so a floor can be given as all the CPU seconds of the work over the cores. Each step
 * starts after a CHECKPOINT and a sync (not timed), so that none pays for writing what the one before dirtied.
 *
 * Options (env): BENCH_SCALE (default 70; 700 ≈ 10 GB, run it with BENCH_RUNS=1), BENCH_RUNS (default 3;
 * the median is reported), BENCH_AWS (the AWS CLI of the seed runbook step; default /usr/bin/aws, the
 * Debian package, else `aws` on PATH).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type PgServer, startCluster } from '../scripts/lib/postgres-cluster';
import { S3RVER_CREDENTIALS, type S3rverInstance, startS3rver } from '../test/support/s3rver';
import {
  cli,
  exec,
  type Goal,
  MiB,
  machineLine,
  measure,
  measureAgent,
  measureShell,
  median,
  type Run,
  root,
  runs,
  type Suite,
  type SuiteResult,
} from './lib';

const scale = Number(process.env.BENCH_SCALE ?? 70);
const DEFAULT_SCALE = 70;

export { runs };

const cores = cpus().length;

/** One measured step of one run, or the median of a step over the runs. */
export interface Step {
  name: string;
  seconds: number;
  /** CPU seconds of the process tree (GNU time). */
  cpuSeconds: number;
  /** CPU seconds of the PostgreSQL backends for the step (the postmaster's reaped children). */
  serverCpuSeconds: number;
  /** CPU seconds of the bench process itself for the step (s3rver runs in it). */
  benchCpuSeconds: number;
  bytes?: number;
  rssMiB?: number;
}

/** CPU seconds of every child the postmaster has reaped: its backends' CPU, read from /proc. */
async function serverCpu(pg: PgServer): Promise<number> {
  const pid = (await readFile(join(pg.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0];
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name's closing parenthesis start at field 3; cutime, cstime are 16, 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

function benchCpu(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** The steps of a suite's runs: each timed with its server's CPU, then reduced to medians. */
export class Steps {
  private readonly series = new Map<string, Step[]>();
  private readonly commands = new Map<string, string>();
  constructor(private readonly pg: PgServer) {}

  /** Runs and records one step; `extra` adds what only the step knows (stored bytes, the agent's RSS). */
  async time<R extends Run>(
    name: string,
    step: () => Promise<R>,
    extra: (run: R) => Promise<Partial<Step>> | Partial<Step> = () => ({}),
  ): Promise<R> {
    // Every step starts from a checkpoint: otherwise its backends write out the dirty buffers the step
    // before left (a restore after a restore paid ~1.5 s of server CPU for the one before it). With
    // fsync off a checkpoint only hands them to the kernel, so `sync` too: the bare restore's copy was
    // written back during the strongbox restore after it (its COPY 8.0 s against 7.0-7.6; ADR 0015).
    await this.pg.psql('CHECKPOINT');
    await exec('sync', []);
    const server = await serverCpu(this.pg);
    const own = benchCpu();
    const run = await step();
    const benchCpuSeconds = benchCpu() - own;
    // A backend is reaped a moment after its client exits.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const m: Step = {
      name,
      seconds: run.seconds,
      cpuSeconds: run.cpuSeconds,
      serverCpuSeconds: (await serverCpu(this.pg)) - server,
      benchCpuSeconds,
      ...(await extra(run)),
    };
    const list = this.series.get(name) ?? [];
    list.push(m);
    this.series.set(name, list);
    process.stdout.write(
      `  ${name}: ${m.seconds.toFixed(1)} s, CPU ${m.cpuSeconds.toFixed(1)} + server ${m.serverCpuSeconds.toFixed(1)} s${m.bytes ? `, ${(m.bytes / MiB).toFixed(0)} MiB` : ''}${m.rssMiB ? `, RSS ${m.rssMiB.toFixed(0)} MiB` : ''}\n`,
    );
    return run;
  }

  /** Times a bash script (pipefail) as step `name` and keeps its command for the legend (paths shortened). */
  shell(
    name: string,
    script: string,
    env: NodeJS.ProcessEnv,
    extra?: (run: Run) => Promise<Partial<Step>> | Partial<Step>,
  ): Promise<Run> {
    const work = /strongbox-bench-[^/ ]+/.exec(script)?.[0];
    let shown = script.replaceAll(`${this.pg.binDir}/`, '');
    if (work) shown = shown.replaceAll(join(tmpdir(), work), '$WORK');
    this.commands.set(name, shown);
    return this.time(name, () => measureShell(script, env), extra);
  }

  /** Every run of a step, in order. */
  runsOf(name: string): Step[] {
    const list = this.series.get(name);
    if (!list) throw new Error(`bench step "${name}" was never measured`);
    return list;
  }

  /** The step's medians (seconds, CPU), its largest RSS and its first run's bytes. */
  get(name: string): Step {
    const list = this.runsOf(name);
    const rss = list.map((m) => m.rssMiB).filter((v): v is number => v !== undefined);
    const first = list[0] as Step;
    return {
      name,
      seconds: median(list.map((m) => m.seconds)),
      cpuSeconds: median(list.map((m) => m.cpuSeconds)),
      serverCpuSeconds: median(list.map((m) => m.serverCpuSeconds)),
      benchCpuSeconds: median(list.map((m) => m.benchCpuSeconds)),
      ...(first.bytes !== undefined ? { bytes: first.bytes } : {}),
      ...(rss.length ? { rssMiB: Math.max(...rss) } : {}),
    };
  }

  /** The markdown table of every step's medians, `versus(step)` naming what it is compared with. */
  table(versus: (step: Step) => string = () => ''): string {
    const rows = [...this.series.keys()].map((name) => {
      const m = this.get(name);
      return `| ${name} | ${m.seconds.toFixed(1)} | ${m.cpuSeconds.toFixed(1)} | ${m.serverCpuSeconds.toFixed(1)} | ${versus(m)} | ${m.bytes ? (m.bytes / MiB).toFixed(0) : ''} | ${m.rssMiB ? m.rssMiB.toFixed(0) : ''} |`;
    });
    return [
      '| step | seconds | CPU s | server CPU s | vs | stored MiB | agent peak RSS MiB |',
      '| --- | ---: | ---: | ---: | --- | ---: | ---: |',
      ...rows,
      '',
      ...[...this.commands].map(([name, command]) => `- ${name}: \`${command}\``),
    ].join('\n');
  }
}

/** `a` over `b` in wall seconds. */
export const ratio = (a: Step, b: Step): number => a.seconds / b.seconds;

/** All the CPU seconds a step's work took: its processes and its server backends. */
const workCpu = (m: Step) => m.cpuSeconds + m.serverCpuSeconds;

/**
 * A time goal `step ≤ limit × baseline`. When missed, the note gives the CPU seconds of both and the floor
 * the step is bounded by on this machine: the work it must do (`floor`, by default the baseline) cannot
 * take less than its own wall time nor less than its CPU seconds (client + server) over the cores.
 */
export function timeGoal(goal: string, step: Step, baseline: Step, limit: number, floor = baseline): Goal {
  const r = ratio(step, baseline);
  const bound = Math.max(floor.seconds, workCpu(floor) / cores);
  const cpuOf = (m: Step) =>
    `${workCpu(m).toFixed(1)} CPU s (${m.cpuSeconds.toFixed(1)} own + ${m.serverCpuSeconds.toFixed(1)} server${m.benchCpuSeconds >= 0.5 ? ` + ${m.benchCpuSeconds.toFixed(1)} s3rver` : ''})`;
  return {
    goal,
    measured: `${r.toFixed(2)}× (${step.seconds.toFixed(1)} s vs ${baseline.seconds.toFixed(1)} s)`,
    met: r <= limit,
    note: `${step.name} used ${cpuOf(step)}${baseline === step ? '' : `, ${baseline.name} ${cpuOf(baseline)}`}; floor: ${floor.name} takes ${floor.seconds.toFixed(1)} s wall and ${workCpu(floor).toFixed(1)} CPU s / ${cores} cores = ${(workCpu(floor) / cores).toFixed(1)} s, so at best ${(bound / baseline.seconds).toFixed(2)}× here`,
  };
}

/** A throwaway cluster with a `bench` database, the master key and plans in a work directory. */
export interface PgBench {
  pg: PgServer;
  work: string;
  /** libpq environment of the client tools (TCP, superuser). */
  env: NodeJS.ProcessEnv;
  bin(tool: string): string;
  /** Writes `<name>.yaml`: one job `bench` of the `bench` database, `source` extra fields (YAML flow). */
  plan(name: string, vault: string, source?: string): Promise<string>;
  /** A plan on a file vault in the work directory. */
  filePlan: string;
  /** Removes the cluster and the work directory. */
  stop(): Promise<void>;
}

/**
 * Starts the cluster of a PostgreSQL suite (settings for a bulk load), with the key and a file-vault plan.
 * Autovacuum is off: the VACUUM ANALYZE of a freshly restored copy would run during the next step and be
 * charged to it (the bare `pg_restore -j2`'s copy to the strongbox restore after it: docs/adr/0011).
 */
export async function startPgBench(): Promise<PgBench> {
  const work = await mkdtemp(join(tmpdir(), 'strongbox-bench-'));
  const pg = await startCluster({
    databases: ['bench'],
    settings: { shared_buffers: "'256MB'", max_wal_size: "'4GB'", autovacuum: 'off' },
  });
  try {
    await exec(process.execPath, [cli, 'keygen', join(work, 'master.key')]);
    const plan = async (name: string, vault: string, source = '') => {
      const path = join(work, `${name}.yaml`);
      await writeFile(
        path,
        `version: 1\nvault: ${vault}\nkey: { type: local, path: master.key }\njobs:\n  - name: bench\n    source: { kind: postgres, database: bench, host: 127.0.0.1, port: ${pg.port}, user: postgres${source ? `, ${source}` : ''} }\n`,
      );
      return path;
    };
    return {
      pg,
      work,
      env: { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(pg.port), PGUSER: 'postgres' },
      bin: (tool) => join(pg.binDir, tool),
      plan,
      filePlan: await plan('file', `{ url: "file://${join(work, 'vault')}" }`),
      async stop() {
        await pg.stop();
        await rm(work, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await pg.stop();
    await rm(work, { recursive: true, force: true });
    throw error;
  }
}

/**
 * The shell pipe that does the agent's work (the goal's baseline): dump without compression, zstd -1 on
 * its own core as the agent runs it, encrypt, write the stored bytes to a file in the work directory (the
 * file vault's disk) and SHA-256 them. `openssl enc` has no GCM: AES-256-CTR is GCM's cipher without
 * GHASH, so the pipe does slightly less than the agent. Not done by the pipe: the agent's row counts
 * (overhead the issue asks to remove, not work). Records the stored file's bytes.
 */
export async function sameWorkPipe(bench: PgBench, steps: Steps): Promise<void> {
  const stored = join(bench.work, 'pipe.stored');
  const keyFile = join(bench.work, 'pipe.pass');
  await writeFile(keyFile, 'bench-only passphrase, not a secret\n', { mode: 0o600 });
  await steps.shell(
    SAME_WORK,
    `${bench.bin('pg_dump')} -Fc -Z0 bench | zstd -q -c -T1 -1 | openssl enc -aes-256-ctr -pbkdf2 -pass file:${keyFile} | tee ${stored} | sha256sum`,
    bench.env,
    async () => ({ bytes: (await stat(stored)).size }),
  );
  await rm(stored, { force: true });
}

/** The step name of {@link sameWorkPipe}. */
export const SAME_WORK = 'same-work pipe: dump, zstd -1, AES, file, sha256';
const ISSUE_PIPE = 'pipe of the issue: dump, zstd -1, sha256';
const SEED = 'seed runbook: dump -Z9, sha256sum, aws s3 cp';

/** The agent's peak RSS by database size, one row per scale: kept across runs of other scales. */
async function rssByScale(row: string): Promise<string> {
  const results = await readFile(join(root, 'bench', 'RESULTS.md'), 'utf8').catch(() => '');
  const section = /<!-- bench:pg -->([\s\S]*?)<!-- \/bench:pg -->/.exec(results)?.[1] ?? '';
  const kept = section
    .split('\n')
    .filter((line) => line.startsWith('| scale ') && !line.startsWith(`| scale ${scale} |`));
  const rows = [...kept, row].sort(
    (a, b) => Number(/\d+/.exec(a)?.[0] ?? 0) - Number(/\d+/.exec(b)?.[0] ?? 0),
  );
  return [
    '| pgbench scale | database MiB | runs | backup → file vault s | vs same-work pipe | backup → S3 s | restore vs pg_restore -j2 | agent peak RSS MiB file / S3 / restore | date |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
    ...rows,
  ].join('\n');
}

/** The seed runbook's AWS CLI, and the environment that points it at s3rver. */
async function awsCli(work: string, s3: S3rverInstance) {
  const aws = process.env.BENCH_AWS ?? (existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws');
  const config = join(work, 'aws-config');
  // Path style for s3rver; newer CLIs' default trailing checksums are stored verbatim by s3rver.
  await writeFile(
    config,
    '[default]\nregion = us-east-1\nrequest_checksum_calculation = when_required\nresponse_checksum_validation = when_required\ns3 =\n  addressing_style = path\n',
  );
  const env = {
    ...process.env,
    AWS_CONFIG_FILE: config,
    AWS_SHARED_CREDENTIALS_FILE: join(work, 'aws-credentials-none'),
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
  };
  const version = await exec(aws, ['--version'], { env }).then(
    (r) => r.stdout.trim() || r.stderr.trim(),
    () => {
      throw new Error(
        `the seed runbook step needs the AWS CLI (${aws} did not run): apt-get install -y awscli, or set BENCH_AWS`,
      );
    },
  );
  const base = `${aws} --endpoint-url ${s3.endpoint}`;
  return { aws, base, env, version: version.split(' ')[0] ?? version };
}

/**
 * Loads the `bench` database: pgbench at `BENCH_SCALE` with `pgbench_accounts.filler` randomised and
 * `VACUUM FULL` (realistic compressibility). The `pitr` suite loads the same data.
 */
export async function makeData(pg: PgServer): Promise<void> {
  const env = { ...process.env, PGHOST: pg.socketDir, PGPORT: String(pg.port), PGUSER: 'postgres' };
  process.stdout.write(`loading pgbench scale ${scale} and randomising filler (a few minutes)…\n`);
  await exec(join(pg.binDir, 'pgbench'), ['-i', '-q', '-s', String(scale), '--unlogged-tables', 'bench'], {
    env,
  });
  await pg.psql(
    'ALTER TABLE pgbench_accounts SET LOGGED; UPDATE pgbench_accounts SET filler = md5(random()::text) || md5(random()::text) || substr(md5(random()::text), 1, 20); VACUUM FULL; ANALYZE;',
    'bench',
  );
}

async function run(): Promise<SuiteResult> {
  const bench = await startPgBench();
  const { pg, work, bin } = bench;
  const s3 = await startS3rver('bench-vault');
  try {
    await makeData(pg);
    const dbBytes = Number(await pg.psql("SELECT pg_database_size('bench')"));
    const s3Plan = await bench.plan(
      's3',
      `{ url: "s3://${s3.bucket}/sb", endpoint: "${s3.endpoint}", checksums: when-required }`,
    );
    const s3Env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      AWS_REGION: 'us-east-1',
    };
    const aws = await awsCli(work, s3);
    const dumpFile = join(work, 'bench.dump');
    const seedFile = join(work, 'modax_full.dump');
    const seedKey = 'database/full/modax_full.dump';
    const steps = new Steps(pg);
    const agentExtra = (r: { json: Record<string, unknown>; rssMiB: number }) => ({
      bytes: Number(r.json.storedBytes),
      rssMiB: r.rssMiB,
    });
    let redraws = 0;
    for (let i = 1; i <= runs; i++) {
      process.stdout.write(`run ${i}/${runs}\n`);
      await steps.shell(
        'pg_dump -Fc -Z0 > /dev/null',
        `${bin('pg_dump')} -Fc -Z0 bench > /dev/null`,
        bench.env,
      );
      await steps.shell(
        'pg_dump -Fc (zlib) > file',
        `${bin('pg_dump')} -Fc bench > ${dumpFile}`,
        bench.env,
        async () => ({ bytes: (await stat(dumpFile)).size }),
      );
      await steps.shell(
        ISSUE_PIPE,
        `${bin('pg_dump')} -Fc -Z0 bench | zstd -q -c -T1 -1 | sha256sum`,
        bench.env,
      );
      await sameWorkPipe(bench, steps);
      // The seed runbook (../shared/seeds, backup_database_full.sh): dump at zlib 9 to a file, its
      // checksum beside it, then the AWS CLI's upload (here to s3rver).
      await steps.shell(
        SEED,
        `set -e; ${bin('pg_dump')} --format=custom --compress=9 --file=${seedFile} --verbose bench; sha256sum ${seedFile} > ${seedFile}.sha256; ${aws.base} s3 cp ${seedFile} s3://${s3.bucket}/database/full/ --storage-class STANDARD_IA`,
        { ...bench.env, ...aws.env },
        async () => ({ bytes: (await stat(seedFile)).size }),
      );
      const head = await exec(
        aws.aws,
        ['--endpoint-url', s3.endpoint, 's3api', 'head-object', '--bucket', s3.bucket, '--key', seedKey],
        { env: aws.env },
      );
      const uploaded = Number((JSON.parse(head.stdout) as { ContentLength: number }).ContentLength);
      const local = (await stat(seedFile)).size;
      if (uploaded !== local) {
        throw new Error(
          `aws s3 cp stored ${uploaded} bytes on s3rver for the ${local}-byte dump: the seed runbook step did not do the same upload (trailing checksums?)`,
        );
      }
      await exec(aws.aws, ['--endpoint-url', s3.endpoint, 's3', 'rm', `s3://${s3.bucket}/${seedKey}`], {
        env: aws.env,
      });
      await rm(seedFile, { force: true });
      await rm(`${seedFile}.sha256`, { force: true });

      await steps.time(
        'strongbox backup → file vault',
        () => measureAgent(['backup', '--plan', bench.filePlan, '--job', 'bench']),
        agentExtra,
      );
      // The same backup with stderr a terminal, so the progress line redraws twice a second.
      const tty = await steps.time(
        'strongbox backup → file vault, TTY progress',
        () =>
          measure([
            'script',
            '-qec',
            `'${process.execPath}' '${cli}' backup --plan '${bench.filePlan}' --job bench`,
            '/dev/null',
          ]),
        (r) => ({ rssMiB: r.rssMiB }),
      );
      redraws += tty.stdout.split('\r\x1b[K').length - 1;
      await steps.time(
        'strongbox backup → s3rver',
        () => measureAgent(['backup', '--plan', s3Plan, '--job', 'bench'], s3Env),
        agentExtra,
      );
      await pg.psql(`CREATE DATABASE bare_${i}`);
      await steps.shell(
        'pg_restore -j2 from local file',
        `${bin('pg_restore')} -j2 -d bare_${i} ${dumpFile}`,
        bench.env,
      );
      await steps.time(
        'strongbox restore ← file vault',
        () => measureAgent(['restore', '--plan', bench.filePlan, '--job', 'bench', '--target', `sb_${i}`]),
        (r) => ({ rssMiB: r.rssMiB }),
      );
      await pg.psql(`DROP DATABASE bare_${i}; DROP DATABASE sb_${i}`);
    }

    const get = (name: string) => steps.get(name);
    const zlib = get('pg_dump -Fc (zlib) > file');
    const pipe = get(SAME_WORK);
    const seed = get(SEED);
    const bare = get('pg_restore -j2 from local file');
    const fileBackup = get('strongbox backup → file vault');
    const s3Backup = get('strongbox backup → s3rver');
    const fileRestore = get('strongbox restore ← file vault');

    const goals: Goal[] = [
      timeGoal('backup → file vault ≤ 1.1× the same-work pipe', fileBackup, pipe, 1.1),
      {
        goal: 'stored size unchanged: ≤ pg_dump -Fc (zlib) and ≤ 1.01× the pipe’s zstd -1 bytes',
        measured: `${((fileBackup.bytes ?? 0) / MiB).toFixed(1)} MiB vs zlib ${((zlib.bytes ?? 0) / MiB).toFixed(1)} MiB, pipe ${((pipe.bytes ?? 0) / MiB).toFixed(1)} MiB`,
        met:
          (fileBackup.bytes ?? Number.POSITIVE_INFINITY) <= (zlib.bytes ?? 0) &&
          (fileBackup.bytes ?? Number.POSITIVE_INFINITY) <= 1.01 * (pipe.bytes ?? 0),
      },
      timeGoal('backup → file vault ≤ 0.2× the seed runbook procedure', fileBackup, seed, 0.2, pipe),
      {
        goal: 'S3 vault agent peak RSS ≤ 150 MiB',
        measured: `${(s3Backup.rssMiB ?? 0).toFixed(0)} MiB (file vault ${(fileBackup.rssMiB ?? 0).toFixed(0)} MiB)`,
        met: (s3Backup.rssMiB ?? Number.POSITIVE_INFINITY) <= 150,
        note: `${((s3Backup.rssMiB ?? 0) - (fileBackup.rssMiB ?? 0)).toFixed(0)} MiB above the file vault's backup of the same data: the S3 upload's part buffers and the SDK; the floor is the file vault's ${(fileBackup.rssMiB ?? 0).toFixed(0)} MiB`,
      },
      timeGoal('S3 vault backup ≤ 1.1× file vault', s3Backup, fileBackup, 1.1),
      timeGoal('logical restore ≤ 1.1× bare pg_restore -j2', fileRestore, bare, 1.1),
      progressGoal(steps, redraws),
    ];
    const rssRow = `| scale ${scale} | ${(dbBytes / MiB).toFixed(0)} | ${runs} | ${fileBackup.seconds.toFixed(1)} | ${ratio(fileBackup, pipe).toFixed(2)}× | ${s3Backup.seconds.toFixed(1)} | ${ratio(fileRestore, bare).toFixed(2)}× | ${(fileBackup.rssMiB ?? 0).toFixed(0)} / ${(s3Backup.rssMiB ?? 0).toFixed(0)} / ${(fileRestore.rssMiB ?? 0).toFixed(0)} | ${new Date().toISOString().slice(0, 10)} |`;
    const markdown = [
      `### PostgreSQL logical backup and restore (\`pg\`)`,
      '',
      `Database: pgbench scale ${scale}, filler randomised, ${(dbBytes / MiB).toFixed(0)} MiB (pg_database_size). ${machineLine(runs)} AWS CLI: ${aws.version}.`,
      '',
      steps.table((m) =>
        m.name.startsWith('strongbox backup')
          ? `${ratio(m, pipe).toFixed(2)}× pipe, ${ratio(m, seed).toFixed(2)}× seed`
          : m.name.startsWith('strongbox restore')
            ? `${ratio(m, bare).toFixed(2)}× pg_restore -j2`
            : '',
      ),
      '',
      `TTY run: ${redraws} progress redraws over ${runs} run(s); its RSS is the largest process under script(1), the agent.`,
      '',
      'By database size (one row per scale; a run at another scale keeps the other rows):',
      '',
      await rssByScale(rssRow),
    ].join('\n');
    if (scale !== DEFAULT_SCALE)
      process.stdout.write(`(scale ${scale}: the pg section now holds this scale's table)\n`);
    return { markdown, goals };
  } finally {
    await s3.stop();
    await bench.stop();
  }
}

/**
 * Progress costs nothing: the TTY backup against the quiet one of the same run, paired. Met at ≤ 1.02×,
 * or within noise: inside the spread of the quiet runs themselves (needs BENCH_RUNS ≥ 2).
 */
function progressGoal(steps: Steps, redraws: number): Goal {
  const quiet = steps.runsOf('strongbox backup → file vault');
  const tty = steps.runsOf('strongbox backup → file vault, TTY progress');
  const paired = median(tty.map((t, i) => t.seconds / (quiet[i] as Step).seconds));
  const cpu = median(tty.map((t, i) => t.cpuSeconds / (quiet[i] as Step).cpuSeconds));
  const seconds = quiet.map((q) => q.seconds);
  const spread = quiet.length >= 2 ? (Math.max(...seconds) - Math.min(...seconds)) / median(seconds) : 0;
  const within =
    paired <= 1.02
      ? '≤ 1.02×'
      : paired - 1 <= spread
        ? `within noise (quiet runs spread ${(spread * 100).toFixed(1)}%)`
        : '';
  return {
    goal: 'TTY progress costs no throughput (≤ 1.02× quiet, or within noise)',
    measured: `${paired.toFixed(3)}× wall, ${cpu.toFixed(3)}× CPU, paired medians; ${redraws} redraws${within ? `: ${within}` : ''}`,
    met: within !== '' && redraws > 0,
    note:
      redraws === 0
        ? 'no progress redraw was seen: the backups are too short to show progress (raise BENCH_SCALE)'
        : quiet.length < 2
          ? 'above 1.02×, and one run cannot tell noise (BENCH_RUNS ≥ 2)'
          : `above 1.02× and outside the quiet runs' spread of ${(spread * 100).toFixed(1)}%`,
  };
}

export const pgSuite: Suite = {
  name: 'pg',
  summary: `logical backup/restore of a ~1 GB database against the same-work pipe and the seed runbook (BENCH_SCALE=${scale}, 700 ≈ 10 GB; BENCH_RUNS=${runs})`,
  run,
};
