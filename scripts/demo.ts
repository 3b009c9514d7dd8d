/**
 * `npm run demo`: the whole product on one machine, with nothing left behind.
 *
 * Starts a throwaway PostgreSQL (initdb in a temp dir, free port), fills it with a realistic shop
 * database (tens of MB) and writes a small config tree; writes a plan and a local master key; then drives
 * the real CLI (the built bundle, dist/strongbox.mjs): backup both jobs to a file vault, list, verify
 * --deep, restore the database into a scratch database and the files into a staging directory, compare
 * row counts and file hashes with the originals, print a summary, and clean up. It prints the plan it
 * wrote and every command it runs, as a newcomer can copy them, and says where to look next. Exits
 * non-zero if any step fails. `--keep` leaves the temp directory (vault, key, plan) for a look around.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { fillDemoDatabase, type PgServer, startCluster } from './lib/postgres-cluster';

const run = promisify(execFile);
const cli = join(import.meta.dirname, '..', 'dist', 'strongbox.mjs');
const keep = process.argv.includes('--keep');
const scale = Number(process.env.DEMO_SCALE ?? 1);

interface Row {
  step: string;
  detail: string;
  seconds: number;
}

const rows: Row[] = [];

/** The CLI as a reader runs it from the repository (the built bundle). */
const CLI_SHOWN = 'node dist/strongbox.mjs';

/** A word as the shell reads it back: quoted only when it needs to be. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

/** Prints a command the demo runs, ready to copy. */
function showCommand(args: readonly string[]): void {
  process.stdout.write(`\n$ ${CLI_SHOWN} ${args.map(shellWord).join(' ')}\n`);
}

/** Runs the real CLI with --json and records a summary row described from its result. */
async function strongbox<T>(step: string, args: string[], describe: (result: T) => string): Promise<T> {
  const started = performance.now();
  let stdout: string;
  showCommand([...args, '--json', '--quiet']);
  try {
    ({ stdout } = await run(process.execPath, [cli, ...args, '--json', '--quiet'], {
      maxBuffer: 16 * 1024 * 1024,
    }));
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string };
    throw new Error(`strongbox ${args.join(' ')} failed:\n${e.stderr ?? ''}${e.stdout ?? ''}`);
  }
  const result = JSON.parse(stdout) as T;
  rows.push({ step, detail: describe(result), seconds: (performance.now() - started) / 1000 });
  process.stdout.write(`  → ${describe(result)}\n`);
  return result;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

async function writeConfigTree(root: string): Promise<void> {
  await mkdir(join(root, 'app', 'conf.d'), { recursive: true });
  await mkdir(join(root, 'app', 'tls'), { recursive: true });
  await writeFile(join(root, 'app', 'app.yaml'), 'listen: 0.0.0.0:8080\nworkers: 4\nlog_level: info\n');
  await writeFile(join(root, 'app', 'conf.d', 'db.yaml'), 'database: shop\npool: 20\n');
  await writeFile(
    join(root, 'app', 'tls', 'server.key'),
    `${createHash('sha256').update('demo').digest('hex')}\n`,
  );
  await chmod(join(root, 'app', 'tls', 'server.key'), 0o600);
  await writeFile(join(root, 'app', 'run.sh'), '#!/bin/sh\nexec app --config /etc/app/app.yaml\n');
  await chmod(join(root, 'app', 'run.sh'), 0o755);
  await writeFile(join(root, 'app', 'cache.tmp'), 'excluded by the plan\n');
  await symlink('conf.d/db.yaml', join(root, 'app', 'current-db.yaml'));
}

/** SHA-256 of every regular file below a directory, by relative path. */
async function hashTree(root: string): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    hashes.set(
      relative(root, path),
      createHash('sha256')
        .update(await readFile(path))
        .digest('hex'),
    );
  }
  return hashes;
}

async function rowCounts(server: PgServer, database: string): Promise<Map<string, number>> {
  const out = await server.psql(
    "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1",
    database,
  );
  const counts = new Map<string, number>();
  for (const table of out.split('\n').filter(Boolean)) {
    counts.set(table, Number(await server.psql(`SELECT count(*) FROM ${table}`, database)));
  }
  return counts;
}

async function main(): Promise<void> {
  await stat(cli).catch(() => {
    throw new Error(`${cli} is missing: run \`npm run build\` first (npm run demo does)`);
  });
  const root = await mkdtemp(join(tmpdir(), 'strongbox-demo-'));
  let server: PgServer | undefined;
  try {
    process.stdout.write(
      `demo directory ${root}\nstarting a throwaway PostgreSQL and loading the demo data…\n`,
    );
    server = await startCluster({ databases: ['shop'] });
    const loadStarted = performance.now();
    await fillDemoDatabase(server, 'shop', { scale });
    rows.push({
      step: 'load demo data',
      detail: `scale ${scale}`,
      seconds: (performance.now() - loadStarted) / 1000,
    });
    const configRoot = join(root, 'etc');
    await writeConfigTree(configRoot);

    const plan = join(root, 'plan.yaml');
    await writeFile(
      plan,
      `# Written by npm run demo
version: 1
name: demo
timezone: Europe/Berlin
vault:
  url: file://${join(root, 'vault')}
key:
  type: local
  path: master.key
retention: { daily: 7d, weekly: 5w, monthly: 12mo, yearly: 7y }
jobs:
  - name: shop-db
    source: { kind: postgres, database: shop, host: 127.0.0.1, port: ${server.port}, user: postgres }
    drill:
      rto: 10m
      checks:
        - { name: customers exist, query: "SELECT count(*) > 0 FROM customers", expect: "t" }
  - name: app-config
    source: { kind: files, paths: ["${join(configRoot, 'app')}"], exclude: ["*.tmp"] }
`,
    );
    process.stdout.write(`\nthe plan, ${plan}:\n\n${(await readFile(plan, 'utf8')).replace(/^/gm, '    ')}`);
    showCommand(['keygen', join(root, 'master.key')]);
    await run(process.execPath, [cli, 'keygen', join(root, 'master.key')]);

    type Backup = { sourceBytes: number; storedBytes: number; durationSeconds: number };
    type Checked = { target: string; durationSeconds: number; findings: unknown[] };
    await strongbox<Backup>(
      'backup shop-db',
      ['backup', '--plan', plan, '--job', 'shop-db'],
      (r) =>
        `${mib(r.sourceBytes)} dump → ${mib(r.storedBytes)} stored (zstd + AES-256-GCM), ${mib(r.sourceBytes / r.durationSeconds)}/s`,
    );
    await strongbox<Backup>(
      'backup app-config',
      ['backup', '--plan', plan, '--job', 'app-config'],
      (r) => `${r.sourceBytes} B tar → ${r.storedBytes} B stored`,
    );
    await strongbox<{ backups: { complete: boolean }[] }>(
      'list',
      ['list', '--plan', plan],
      (r) => `${r.backups.filter((b) => b.complete).length} complete backups`,
    );
    // The inventory as an operator reads it (text, not --json).
    showCommand(['list', '--plan', plan]);
    const inventory = await run(process.execPath, [cli, 'list', '--plan', plan, '--quiet']);
    process.stdout.write(inventory.stdout.replace(/^/gm, '    '));
    await strongbox<{ findings: unknown[] }>(
      'verify --deep',
      ['verify', '--plan', plan, '--deep'],
      (r) => `${r.findings.length} findings; every chunk read back and authenticated`,
    );
    await strongbox<Checked>(
      'restore shop-db',
      ['restore', '--plan', plan, '--job', 'shop-db', '--target', 'shop_restored'],
      (r) => `into database ${r.target}; row counts vs manifest: ${r.findings.length ? 'MISMATCH' : 'ok'}`,
    );
    const staging = join(root, 'restored-config');
    await strongbox<Checked>(
      'restore app-config',
      ['restore', '--plan', plan, '--job', 'app-config', '--target', staging],
      (r) => `into ${r.target}`,
    );
    await strongbox<Checked>(
      'drill shop-db',
      ['drill', '--plan', plan, '--job', 'shop-db'],
      (r) =>
        `measured RTO ${r.durationSeconds.toFixed(1)}s (objective 10m), ${r.findings.length} findings, scratch dropped`,
    );

    // Compare with the originals, independently of the agent's own checks.
    const before = await rowCounts(server, 'shop');
    const after = await rowCounts(server, 'shop_restored');
    const tableProblems = [...before].filter(([table, count]) => after.get(table) !== count);
    const original = await hashTree(join(configRoot, 'app'));
    original.delete('cache.tmp');
    const copy = await hashTree(join(staging, relative('/', join(configRoot, 'app'))));
    const fileProblems = [...original].filter(([path, hash]) => copy.get(path) !== hash);
    if (copy.size !== original.size)
      fileProblems.push(['(count)', `${copy.size} files restored, ${original.size} expected`]);

    const width = Math.max(...rows.map((r) => r.step.length));
    process.stdout.write(`${'\nstep'.padEnd(width + 3)}time     detail\n`);
    for (const r of rows)
      process.stdout.write(`${r.step.padEnd(width + 2)}${`${r.seconds.toFixed(1)}s`.padEnd(9)}${r.detail}\n`);
    const totalRows = [...before.values()].reduce((a, b) => a + b, 0);
    process.stdout.write(
      `\nrow counts: ${before.size} tables, ${totalRows} rows — ${tableProblems.length ? `MISMATCH ${JSON.stringify(tableProblems)}` : 'identical'}\n` +
        `config files: ${original.size} files — ${fileProblems.length ? `MISMATCH ${JSON.stringify(fileProblems)}` : 'identical (sha256)'}\n`,
    );
    if (tableProblems.length || fileProblems.length)
      throw new Error('the restored data differs from the original');
    process.stdout.write('\ndemo passed: backed up, verified, restored and compared.\n');
    process.stdout.write(
      [
        '',
        'where to look next:',
        '  - the commands above, without --json, print tables for people; `node dist/strongbox.mjs <command> --help` says what each does',
        `  - npm run demo -- --keep keeps ${keep ? root : 'the demo directory'} (vault, key, plan) to run the commands yourself (the throwaway PostgreSQL stops at the end; list, verify and the app-config restore work on the kept vault)`,
        '  - docs/plan.md: every plan field, with type, default and example; examples/ has whole plans',
        '  - README.md: the CLI, exit codes, monitoring (verify --nagios), restores and point-in-time recovery',
        '',
      ].join('\n'),
    );
  } finally {
    await server?.stop();
    if (keep) process.stdout.write(`kept ${root}\n`);
    else await rm(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
