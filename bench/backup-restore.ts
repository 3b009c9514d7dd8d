/**
 * `npm run bench`: strongbox backup and restore against bare pg_dump / pg_restore on ~1 GB of data with
 * realistic compressibility, side by side in one run. Not a test: it prints a table and rewrites the
 * measurements section of bench/RESULTS.md.
 *
 * Data: pgbench scale 70 (7M accounts) with pgbench_accounts.filler set to random hex, then VACUUM FULL —
 * plain pgbench data compresses 37× and flatters every compressor (../shared/NOTES-tools.md).
 *
 * Targets (issue #2): backup within 1.3× of bare `pg_dump -Fc -Z0 > /dev/null` while storing no more
 * than `pg_dump -Fc` (default zlib); restore within 1.3× of bare `pg_restore -j2` from a local file;
 * the agent's peak RSS under 150 MB. Peak RSS is GNU time's %M for the node process; pg_dump and zstd
 * run as separate processes and are not counted in it.
 *
 * Options (env): BENCH_SCALE (default 70), BENCH_RUNS (default 1; the median is reported).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type PgServer, startCluster } from '../scripts/lib/postgres-cluster';
import { startS3rver } from '../test/support/s3rver';

const exec = promisify(execFile);
const scale = Number(process.env.BENCH_SCALE ?? 70);
const runs = Number(process.env.BENCH_RUNS ?? 1);
const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'strongbox.mjs');

interface Measure {
  name: string;
  seconds: number;
  bytes?: number;
  rssMiB?: number;
}

/** Runs a shell pipeline under bash with pipefail; returns wall seconds. */
async function timeShell(script: string, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const started = performance.now();
  await exec('bash', ['-o', 'pipefail', '-c', script], { env, maxBuffer: 1024 * 1024 });
  return (performance.now() - started) / 1000;
}

/** Runs the agent under GNU time; returns wall seconds, peak RSS and the --json result. */
async function timeAgent(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ seconds: number; rssMiB: number; json: Record<string, number> }> {
  const started = performance.now();
  const child = spawn(
    '/usr/bin/time',
    ['-f', 'MAXRSS %M', process.execPath, cli, ...args, '--json', '--quiet'],
    { env },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`strongbox ${args.join(' ')} failed (${code}):\n${stderr}`);
  const rss = Number(/MAXRSS (\d+)/.exec(stderr)?.[1]);
  return { seconds, rssMiB: rss / 1024, json: JSON.parse(stdout) };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function makeData(pg: PgServer): Promise<void> {
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

async function main(): Promise<void> {
  await stat(cli).catch(() => {
    throw new Error('dist/strongbox.mjs is missing: npm run build');
  });
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
      add({
        name: 'pg_dump -Fc -Z0 > /dev/null',
        seconds: await timeShell(`${bin('pg_dump')} -Fc -Z0 bench > /dev/null`, pgEnv),
      });
      const zlibSeconds = await timeShell(`${bin('pg_dump')} -Fc bench > ${dumpFile}`, pgEnv);
      add({ name: 'pg_dump -Fc (zlib) > file', seconds: zlibSeconds, bytes: (await stat(dumpFile)).size });
      const file = await timeAgent(['backup', '--plan', filePlan, '--job', 'bench'], process.env);
      add({
        name: 'strongbox backup → file vault',
        seconds: file.seconds,
        bytes: file.json.storedBytes,
        rssMiB: file.rssMiB,
      });
      const s3Run = await timeAgent(['backup', '--plan', s3Plan, '--job', 'bench'], s3Env);
      add({
        name: 'strongbox backup → s3rver',
        seconds: s3Run.seconds,
        bytes: s3Run.json.storedBytes,
        rssMiB: s3Run.rssMiB,
      });
      await pg.psql(`CREATE DATABASE bare_${run}`);
      add({
        name: 'pg_restore -j2 from local file',
        seconds: await timeShell(`${bin('pg_restore')} -j2 -d bare_${run} ${dumpFile}`, pgEnv),
      });
      const restore = await timeAgent(
        ['restore', '--plan', filePlan, '--job', 'bench', '--target', `sb_${run}`],
        process.env,
      );
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
    const fileRestore = get('strongbox restore ← file vault');
    const rows = measures.map((m) => {
      const ratio = m.name.startsWith('strongbox backup')
        ? m.seconds / z0.seconds
        : m.name.startsWith('strongbox restore')
          ? m.seconds / bare.seconds
          : undefined;
      return `| ${m.name} | ${m.seconds.toFixed(1)} | ${ratio ? `${ratio.toFixed(2)}×` : ''} | ${m.bytes ? (m.bytes / 2 ** 20).toFixed(0) : ''} | ${m.rssMiB ? m.rssMiB.toFixed(0) : ''} |`;
    });
    const verdicts = [
      `backup ${(fileBackup.seconds / z0.seconds).toFixed(2)}× bare -Z0 dump (target ≤ 1.3×): ${fileBackup.seconds / z0.seconds <= 1.3 ? 'met' : 'MISSED'}`,
      `stored ${((fileBackup.bytes ?? 0) / 2 ** 20).toFixed(0)} MiB vs pg_dump zlib ${((zlib.bytes ?? 0) / 2 ** 20).toFixed(0)} MiB (target ≤): ${(fileBackup.bytes ?? 0) <= (zlib.bytes ?? 0) ? 'met' : 'MISSED'}`,
      `restore ${(fileRestore.seconds / bare.seconds).toFixed(2)}× bare pg_restore -j2 (target ≤ 1.3×): ${fileRestore.seconds / bare.seconds <= 1.3 ? 'met' : 'MISSED'}`,
      `peak agent RSS ${Math.max(...measures.map((m) => m.rssMiB ?? 0)).toFixed(0)} MiB (target < 150): ${Math.max(...measures.map((m) => m.rssMiB ?? 0)) < 150 ? 'met' : 'MISSED'}`,
    ];
    const table = [
      `Database: pgbench scale ${scale}, filler randomised, ${(dbBytes / 2 ** 20).toFixed(0)} MiB (pg_database_size). ${runs} run(s), median. Machine: ${(await exec('nproc')).stdout.trim()} cores. ${new Date().toISOString().slice(0, 10)}.`,
      '',
      '| step | seconds | vs bare | stored MiB | agent peak RSS MiB |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
      ...verdicts.map((v) => `- ${v}`),
    ].join('\n');
    process.stdout.write(`\n${table}\n`);
    const resultsPath = join(root, 'bench', 'RESULTS.md');
    const previous = await readFile(resultsPath, 'utf8').catch(() => '');
    const marker = '<!-- measurements -->';
    const head = previous.includes(marker)
      ? previous.slice(0, previous.indexOf(marker))
      : `${previous.trim()}\n\n`;
    await writeFile(resultsPath, `${head}${marker}\n${table}\n`);
  } finally {
    await s3.stop();
    await pg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
