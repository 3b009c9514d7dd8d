/**
 * The `pg` bench suite (`npm run bench -- pg`): strongbox backup and restore against bare pg_dump /
 * pg_restore on ~1 GB of data with realistic compressibility, side by side in one run.
 *
 * Data: pgbench scale 70 (7M accounts) with pgbench_accounts.filler set to random hex, then VACUUM FULL —
 * plain pgbench data compresses 37× and flatters every compressor (../shared/NOTES-tools.md).
 *
 * Targets (issue #2): backup within 1.3× of bare `pg_dump -Fc -Z0 > /dev/null` while storing no more
 * than `pg_dump -Fc` (default zlib); restore within 1.3× of bare `pg_restore -j2` from a local file;
 * the agent's peak RSS under 150 MB. Peak RSS is GNU time's %M for the node process; pg_dump and zstd
 * run as separate processes and are not counted in it.
 *
 * Options (env): BENCH_SCALE (default 70), BENCH_RUNS (default 3; the median is reported).
 */
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type PgServer, startCluster } from '../scripts/lib/postgres-cluster';
import { startS3rver } from '../test/support/s3rver';
import {
  cli,
  exec,
  type Goal,
  MiB,
  machineLine,
  measureAgent,
  measureShell,
  median,
  type Suite,
} from './lib';

const scale = Number(process.env.BENCH_SCALE ?? 70);
const runs = Number(process.env.BENCH_RUNS ?? 3);

interface Measure {
  name: string;
  seconds: number;
  bytes?: number;
  rssMiB?: number;
}

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

async function run(): Promise<{ markdown: string; goals: Goal[] }> {
  const work = await mkdtemp(join(tmpdir(), 'strongbox-bench-'));
  const pg = await startCluster({
    databases: ['bench'],
    settings: { shared_buffers: "'256MB'", max_wal_size: "'4GB'" },
  });
  const s3 = await startS3rver('bench-vault');
  const measures: Measure[] = [];
  try {
    await makeData(pg);
    const dbBytes = Number(await pg.psql("SELECT pg_database_size('bench')"));
    const pgEnv = { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(pg.port), PGUSER: 'postgres' };
    const bin = (tool: string) => join(pg.binDir, tool);
    await exec(process.execPath, [cli, 'keygen', join(work, 'master.key')]);
    const plan = (name: string, vault: string) => {
      const path = join(work, `${name}.yaml`);
      return writeFile(
        path,
        `version: 1\nvault: ${vault}\nkey: { type: local, path: master.key }\njobs:\n  - name: bench\n    source: { kind: postgres, database: bench, host: 127.0.0.1, port: ${pg.port}, user: postgres }\n`,
      ).then(() => path);
    };
    const filePlan = await plan('file', `{ url: "file://${join(work, 'vault')}" }`);
    const s3Plan = await plan(
      's3',
      `{ url: "s3://${s3.bucket}/sb", endpoint: "${s3.endpoint}", checksums: when-required }`,
    );
    const s3Env = {
      ...process.env,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
    };
    const dumpFile = join(work, 'bench.dump');

    const series: Record<string, Measure[]> = {};
    const add = (m: Measure) => {
      series[m.name] ??= [];
      series[m.name]?.push(m);
      process.stdout.write(
        `  ${m.name}: ${m.seconds.toFixed(1)} s${m.bytes ? `, ${(m.bytes / 2 ** 20).toFixed(0)} MiB` : ''}${m.rssMiB ? `, RSS ${m.rssMiB.toFixed(0)} MiB` : ''}\n`,
      );
    };
    for (let run = 1; run <= runs; run++) {
      process.stdout.write(`run ${run}/${runs}\n`);
      const z0 = await measureShell(`${bin('pg_dump')} -Fc -Z0 bench > /dev/null`, pgEnv);
      add({ name: 'pg_dump -Fc -Z0 > /dev/null', seconds: z0.seconds });
      const zlib = await measureShell(`${bin('pg_dump')} -Fc bench > ${dumpFile}`, pgEnv);
      add({ name: 'pg_dump -Fc (zlib) > file', seconds: zlib.seconds, bytes: (await stat(dumpFile)).size });
      const file = await measureAgent(['backup', '--plan', filePlan, '--job', 'bench']);
      add({
        name: 'strongbox backup → file vault',
        seconds: file.seconds,
        bytes: Number(file.json.storedBytes),
        rssMiB: file.rssMiB,
      });
      const s3Run = await measureAgent(['backup', '--plan', s3Plan, '--job', 'bench'], s3Env);
      add({
        name: 'strongbox backup → s3rver',
        seconds: s3Run.seconds,
        bytes: Number(s3Run.json.storedBytes),
        rssMiB: s3Run.rssMiB,
      });
      await pg.psql(`CREATE DATABASE bare_${run}`);
      const bareRestore = await measureShell(`${bin('pg_restore')} -j2 -d bare_${run} ${dumpFile}`, pgEnv);
      add({ name: 'pg_restore -j2 from local file', seconds: bareRestore.seconds });
      const restore = await measureAgent([
        'restore',
        '--plan',
        filePlan,
        '--job',
        'bench',
        '--target',
        `sb_${run}`,
      ]);
      add({ name: 'strongbox restore ← file vault', seconds: restore.seconds, rssMiB: restore.rssMiB });
      await pg.psql(`DROP DATABASE bare_${run}; DROP DATABASE sb_${run}`);
    }
    for (const [name, list] of Object.entries(series)) {
      const rss = list.map((m) => m.rssMiB).filter((v): v is number => v !== undefined);
      measures.push({
        name,
        seconds: median(list.map((m) => m.seconds)),
        bytes: list[0]?.bytes,
        rssMiB: rss.length ? Math.max(...rss) : undefined,
      });
    }
    const get = (name: string) => measures.find((m) => m.name === name) as Measure;
    const z0 = get('pg_dump -Fc -Z0 > /dev/null');
    const zlib = get('pg_dump -Fc (zlib) > file');
    const bare = get('pg_restore -j2 from local file');
    const fileBackup = get('strongbox backup → file vault');
    const s3Backup = get('strongbox backup → s3rver');
    const fileRestore = get('strongbox restore ← file vault');
    const rows = measures.map((m) => {
      const ratio = m.name.startsWith('strongbox backup')
        ? m.seconds / z0.seconds
        : m.name.startsWith('strongbox restore')
          ? m.seconds / bare.seconds
          : undefined;
      return `| ${m.name} | ${m.seconds.toFixed(1)} | ${ratio ? `${ratio.toFixed(2)}×` : ''} | ${m.bytes ? (m.bytes / MiB).toFixed(0) : ''} | ${m.rssMiB ? m.rssMiB.toFixed(0) : ''} |`;
    });
    const ratio = (a: Measure, b: Measure) => a.seconds / b.seconds;
    const goals: Goal[] = [
      {
        goal: 'stored size ≤ pg_dump -Fc (zlib)',
        measured: `${((fileBackup.bytes ?? 0) / MiB).toFixed(0)} MiB vs ${((zlib.bytes ?? 0) / MiB).toFixed(0)} MiB`,
        met: (fileBackup.bytes ?? 0) <= (zlib.bytes ?? 0),
      },
      {
        goal: 'logical restore ≤ 1.1× bare pg_restore -j2',
        measured: `${ratio(fileRestore, bare).toFixed(2)}×`,
        met: ratio(fileRestore, bare) <= 1.1,
      },
      {
        goal: 'S3 vault agent peak RSS ≤ 150 MiB',
        measured: `${(s3Backup.rssMiB ?? 0).toFixed(0)} MiB`,
        met: (s3Backup.rssMiB ?? Number.POSITIVE_INFINITY) <= 150,
      },
      {
        goal: 'S3 vault backup ≤ 1.1× file vault',
        measured: `${ratio(s3Backup, fileBackup).toFixed(2)}×`,
        met: ratio(s3Backup, fileBackup) <= 1.1,
      },
    ];
    const markdown = [
      `### PostgreSQL logical backup and restore (\`pg\`)`,
      '',
      `Database: pgbench scale ${scale}, filler randomised, ${(dbBytes / MiB).toFixed(0)} MiB (pg_database_size). ${machineLine(runs)}`,
      '',
      '| step | seconds | vs bare | stored MiB | agent peak RSS MiB |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows,
    ].join('\n');
    return { markdown, goals };
  } finally {
    await s3.stop();
    await pg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

export const pgSuite: Suite = {
  name: 'pg',
  summary: `logical backup/restore of a ~1 GB database (BENCH_SCALE=${scale}, BENCH_RUNS=${runs})`,
  run,
};
