/**
 * The `many-tables` bench suite (`npm run bench -- many-tables`): a database of many tables — 400 by
 * default, ~300 MB, sizes skewed as in real schemas (the largest table ~11× the smallest), each with a
 * primary key and two secondary indexes — backed up and restored by strongbox against bare pg_dump /
 * pg_restore -j2, and strongbox's restore with its parallel restore at 1 against the default, to show what
 * restoring data in parallel gains where the work is spread over many tables (issue #15).
 *
 * Rows: an order-like table (account, timestamp, status, amount, 64 hex characters of note), random, so
 * the data compresses as real rows do, not as generated sequences.
 *
 * Options (env): BENCH_TABLES (default 400; rows scale with it, ~0.75 MB a table), BENCH_RUNS (default 3),
 * BENCH_SERIAL_SOURCE (plan source fields in YAML flow that make a restore serial; default
 * `restoreJobs: 1`, the postgres source's parallel restore setting) and BENCH_SERIAL_ARGS (restore CLI
 * arguments doing the same).
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ratio,
  runs,
  SAME_WORK,
  type Step,
  Steps,
  sameWorkPipe,
  startPgBench,
  timeGoal,
} from './backup-restore';
import { type Goal, MiB, machineLine, measureAgent, type Suite, type SuiteResult } from './lib';

const tables = Number(process.env.BENCH_TABLES ?? 400);
/** Rows per table on average: ~0.75 MB of heap and indexes each. */
const ROWS_PER_TABLE = 3500;

/** What makes a strongbox restore serial: the postgres source's `restoreJobs` at 1. */
const serial = {
  source: process.env.BENCH_SERIAL_SOURCE ?? 'restoreJobs: 1',
  args: (process.env.BENCH_SERIAL_ARGS ?? '').split(' ').filter(Boolean),
};
const serialWired = serial.source !== '' || serial.args.length > 0;
const SERIAL_STEP = `strongbox restore, parallel restore 1${serialWired ? '' : ' (not wired: the default again)'}`;

/** `tables` tables t0000…, table i with rows ∝ 1 / (1 + 10 i / tables), then their indexes. */
function schemaSql(): string {
  return `DO $$
DECLARE
  total_weight float8 := (SELECT sum(1 / (1 + 10.0 * i / ${tables})) FROM generate_series(0, ${tables} - 1) i);
  name text;
  n int;
BEGIN
  FOR i IN 0..${tables} - 1 LOOP
    name := format('t%s', lpad(i::text, 4, '0'));
    n := greatest(1, round(${tables * ROWS_PER_TABLE} / total_weight / (1 + 10.0 * i / ${tables})));
    EXECUTE format('CREATE TABLE %I (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account_id int NOT NULL, created_at timestamptz NOT NULL, status text NOT NULL, amount numeric(12,2), note text)', name);
    EXECUTE format($q$INSERT INTO %I (account_id, created_at, status, amount, note)
      SELECT (random() * 100000)::int, now() - random() * interval '3 years',
        (ARRAY['new', 'paid', 'shipped', 'returned', 'void'])[1 + floor(random() * 5)::int],
        round((random() * 1000)::numeric, 2), md5(random()::text) || md5(random()::text)
      FROM generate_series(1, %s)$q$, name, n);
    EXECUTE format('CREATE INDEX ON %I (account_id)', name);
    EXECUTE format('CREATE INDEX ON %I (created_at)', name);
  END LOOP;
END $$;`;
}

async function run(): Promise<SuiteResult> {
  const bench = await startPgBench();
  const { pg, work, bin } = bench;
  try {
    process.stdout.write(`creating ${tables} tables with indexes…\n`);
    await pg.psql(schemaSql(), 'bench');
    await pg.psql('VACUUM ANALYZE', 'bench');
    const dbBytes = Number(await pg.psql("SELECT pg_database_size('bench')"));
    const serialPlan = serial.source
      ? await bench.plan('serial', `{ url: "file://${join(work, 'vault')}" }`, serial.source)
      : bench.filePlan;
    const dumpFile = join(work, 'bench.dump');
    const steps = new Steps(pg);
    for (let i = 1; i <= runs; i++) {
      process.stdout.write(`run ${i}/${runs}\n`);
      await steps.shell(
        'pg_dump -Fc (zlib) > file',
        `${bin('pg_dump')} -Fc bench > ${dumpFile}`,
        bench.env,
        async () => ({ bytes: (await stat(dumpFile)).size }),
      );
      await sameWorkPipe(bench, steps);
      await steps.time(
        'strongbox backup → file vault',
        () => measureAgent(['backup', '--plan', bench.filePlan, '--job', 'bench']),
        (r) => ({ bytes: Number(r.json.storedBytes), rssMiB: r.rssMiB }),
      );
      await pg.psql(`CREATE DATABASE bare_${i}`);
      await steps.shell(
        'pg_restore -j2 from local file',
        `${bin('pg_restore')} -j2 -d bare_${i} ${dumpFile}`,
        bench.env,
      );
      const restore = (name: string, plan: string, args: string[], target: string) =>
        steps.time(
          name,
          () => measureAgent(['restore', '--plan', plan, '--job', 'bench', '--target', target, ...args]),
          (r) => ({ rssMiB: r.rssMiB }),
        );
      await restore('strongbox restore, parallel restore default', bench.filePlan, [], `sb_${i}`);
      await restore(SERIAL_STEP, serialPlan, serial.args, `serial_${i}`);
      await pg.psql(`DROP DATABASE bare_${i}; DROP DATABASE sb_${i}; DROP DATABASE serial_${i}`);
    }
    const pipe = steps.get(SAME_WORK);
    const backup = steps.get('strongbox backup → file vault');
    const bare = steps.get('pg_restore -j2 from local file');
    const parallel = steps.get('strongbox restore, parallel restore default');
    const serialStep = steps.get(SERIAL_STEP);
    const gain = ratio(serialStep, parallel);
    const goals: Goal[] = [
      timeGoal('many tables: backup → file vault ≤ 1.1× the same-work pipe', backup, pipe, 1.1),
      timeGoal('many tables: restore ≤ 1.1× bare pg_restore -j2', parallel, bare, 1.1),
      {
        goal: 'many tables: parallel data restore gains over parallel restore 1',
        measured: `serial ${serialStep.seconds.toFixed(1)} s / default ${parallel.seconds.toFixed(1)} s = ${gain.toFixed(2)}×`,
        met: serialWired && gain > 1.05,
        note: serialWired
          ? 'no gain above 5%: the restore does not run data in parallel'
          : 'the parallel restore setting is not wired into the suite (BENCH_SERIAL_SOURCE / BENCH_SERIAL_ARGS): both rows ran the default',
      },
    ];
    const markdown = [
      '### Many tables (`many-tables`)',
      '',
      `Database: ${tables} tables (rows skewed ~11:1, primary key + 2 indexes each), ${(dbBytes / MiB).toFixed(0)} MiB (pg_database_size). ${machineLine(runs)}`,
      '',
      steps.table((m: Step) =>
        m.name.startsWith('strongbox backup')
          ? `${ratio(m, pipe).toFixed(2)}× pipe`
          : m.name.startsWith('strongbox restore')
            ? `${ratio(m, bare).toFixed(2)}× pg_restore -j2`
            : '',
      ),
      '',
      `Serial restore: ${serialWired ? `${[serial.source, ...serial.args].join(' ')}` : 'not wired (both restore rows are the default)'}.`,
    ].join('\n');
    return { markdown, goals };
  } finally {
    await bench.stop();
  }
}

export const manyTablesSuite: Suite = {
  name: 'many-tables',
  summary: `backup/restore of ${tables} tables (~${Math.round(tables * 0.75)} MB; BENCH_TABLES, BENCH_RUNS=${runs}), parallel restore against 1`,
  run,
};
