/**
 * What every bench suite shares: timing a whole process (wall, CPU and peak RSS from GNU time), medians,
 * goals with a verdict, and writing a suite's section of bench/RESULTS.md. Suites live beside this file and
 * are listed in bench/index.ts; `npm run bench -- <suite>…` runs them.
 */
import { execFile, spawn } from 'node:child_process';
import { readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

export const exec = promisify(execFile);
export const root = join(import.meta.dirname, '..');
export const cli = join(root, 'dist', 'strongbox.mjs');
export const MiB = 2 ** 20;
/** Runs of each step per suite (`BENCH_RUNS`); the median is reported. */
export const runs = Number(process.env.BENCH_RUNS ?? 3);

/** One measured run of a whole process tree. */
export interface Run {
  /** Wall-clock seconds. */
  seconds: number;
  /** User + system CPU seconds of the process and every child it waited for. */
  cpuSeconds: number;
  /** Peak resident set of the largest single process, MiB (GNU time's %M). */
  rssMiB: number;
  stdout: string;
}

/**
 * Runs `argv` under `/usr/bin/time` and measures it; rejects with its stderr when it exits non-zero.
 * `shell` runs a bash script with pipefail instead (for the shell-pipe baselines).
 */
export async function measure(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  const child = spawn('/usr/bin/time', ['-f', 'BENCHTIME %e %U %S %M', ...argv], { env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  const line = /BENCHTIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(stderr);
  if (code !== 0 || !line) throw new Error(`${argv.join(' ')} failed (${code}):\n${stderr.slice(-4000)}`);
  const [, wall, user, sys, rss] = line.map(Number) as number[];
  return {
    seconds: wall as number,
    cpuSeconds: (user as number) + (sys as number),
    rssMiB: (rss as number) / 1024,
    stdout,
  };
}

/** {@link measure} of a bash script run with `-o pipefail`. */
export function measureShell(script: string, env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return measure(['bash', '-o', 'pipefail', '-c', script], env);
}

/** {@link measure} of the built agent (`dist/strongbox.mjs … --json --quiet`), with its parsed --json result. */
export async function measureAgent(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Run & { json: Record<string, unknown> }> {
  const run = await measure([process.execPath, cli, ...args, '--json', '--quiet'], env);
  return { ...run, json: JSON.parse(run.stdout) as Record<string, unknown> };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/**
 * The nearest-rank percentile `p` (0–100) of `values`: at least p % of them are at most the result.
 * @example percentile([1, 2, 3, 4], 95) // 4
 */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** A goal of the issue and what one bench run measured against it. */
export interface Goal {
  goal: string;
  measured: string;
  met: boolean;
  /** For a missed goal: the measured reason and the floor it is bounded by. */
  note?: string;
}

/** What a suite hands back: its section of RESULTS.md (markdown) and its goals. */
export interface SuiteResult {
  markdown: string;
  goals: Goal[];
}

export interface Suite {
  name: string;
  /** One line for `npm run bench -- --help`. */
  summary: string;
  run(): Promise<SuiteResult>;
}

/** The goals as a markdown table, each met or MISSED. */
export function goalTable(goals: Goal[]): string {
  return [
    '| goal | measured | verdict |',
    '| --- | --- | --- |',
    ...goals.map(
      (g) => `| ${g.goal} | ${g.measured} | ${g.met ? 'met' : `MISSED${g.note ? `: ${g.note}` : ''}`} |`,
    ),
  ].join('\n');
}

/** `Machine: 2 cores (model). 2026-12-02.` — the line every section starts its figures with. */
export function machineLine(runs: number): string {
  const model = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return `${runs} run(s), median. Machine: ${cpus().length} cores (${model}). ${new Date().toISOString().slice(0, 10)}.`;
}

/**
 * Replaces (or appends) the suite's section of bench/RESULTS.md, between `<!-- bench:NAME -->` and
 * `<!-- /bench:NAME -->`, leaving the hand-written text and the other suites' sections as they are.
 */
export async function writeSection(name: string, result: SuiteResult): Promise<void> {
  const path = join(root, 'bench', 'RESULTS.md');
  const previous = await readFile(path, 'utf8').catch(() => '# Benchmarks\n');
  const open = `<!-- bench:${name} -->`;
  const close = `<!-- /bench:${name} -->`;
  const section = `${open}\n${result.markdown.trim()}\n\n${goalTable(result.goals)}\n${close}`;
  const start = previous.indexOf(open);
  const end = previous.indexOf(close);
  const next =
    start >= 0 && end > start
      ? `${previous.slice(0, start)}${section}${previous.slice(end + close.length)}`
      : `${previous.trimEnd()}\n\n${section}\n`;
  await writeFile(path, next);
}

/** One named step's figures across runs (what the `files` and `pitr` suites tabulate). */
export interface StepMeasure {
  name: string;
  seconds: number;
  cpuSeconds: number;
  bytes?: number;
  rssMiB: number;
}

/**
 * Collects measured runs by step name, printing each as it comes; {@link StepSeries.medians} gives one row
 * per step (median seconds and CPU seconds, the first run's stored bytes, the highest RSS).
 */
export class StepSeries {
  readonly #steps = new Map<string, StepMeasure[]>();

  add(name: string, run: Run, bytes?: number): void {
    const m: StepMeasure = {
      name,
      seconds: run.seconds,
      cpuSeconds: run.cpuSeconds,
      bytes,
      rssMiB: run.rssMiB,
    };
    this.#steps.set(name, [...(this.#steps.get(name) ?? []), m]);
    process.stdout.write(
      `  ${name}: ${m.seconds.toFixed(1)} s (CPU ${m.cpuSeconds.toFixed(1)} s)${bytes ? `, ${(bytes / MiB).toFixed(0)} MiB` : ''}, RSS ${m.rssMiB.toFixed(0)} MiB\n`,
    );
  }

  medians(): StepMeasure[] {
    return [...this.#steps].map(([name, list]) => ({
      name,
      seconds: median(list.map((m) => m.seconds)),
      cpuSeconds: median(list.map((m) => m.cpuSeconds)),
      bytes: list[0]?.bytes,
      rssMiB: Math.max(...list.map((m) => m.rssMiB)),
    }));
  }
}

/** The steps as a markdown table: seconds, CPU seconds, stored MiB, peak RSS MiB. */
export function stepTable(measures: readonly StepMeasure[]): string {
  return [
    '| step | seconds | CPU s | stored MiB | peak RSS MiB |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...measures.map(
      (m) =>
        `| ${m.name.replaceAll('|', '\\|')} | ${m.seconds.toFixed(1)} | ${m.cpuSeconds.toFixed(1)} | ${m.bytes ? (m.bytes / MiB).toFixed(0) : ''} | ${m.rssMiB.toFixed(0)} |`,
    ),
  ].join('\n');
}

/** Bytes of the files below `path` (`du -s --bytes`): a repository's stored size. */
export async function duBytes(path: string): Promise<number> {
  const { stdout } = await exec('du', ['-s', '--bytes', path]);
  return Number(stdout.split('\t')[0]);
}

/** A process as /proc shows it: its id, process group, parent, working directory and command line. */
interface ProcessInfo {
  pid: number;
  pgid: number;
  ppid: number;
  cwd: string;
  command: string;
}

async function processInfo(pid: number): Promise<ProcessInfo | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name's closing parenthesis start at field 3 (state); ppid 4, pgrp 5.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    const cwd = (await readlink(`/proc/${pid}/cwd`)).replace(/ \(deleted\)$/, '');
    const command = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ').trim();
    return { pid, ppid: Number(fields[1]), pgid: Number(fields[2]), cwd, command };
  } catch {
    return undefined; // gone meanwhile, or a kernel thread
  }
}

/** This process and its ancestors: never ended by {@link endLeftovers}. */
async function ownLineage(): Promise<Set<number>> {
  const lineage = new Set<number>();
  for (let pid = process.pid; pid > 1 && !lineage.has(pid); ) {
    lineage.add(pid);
    pid = (await processInfo(pid))?.ppid ?? 1;
  }
  return lineage;
}

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Ends what a step left running once its servers are stopped — a detached archiver helper (pgBackRest's
 * asynchronous archive-push, a resident WAL pusher): every process, but this one and its ancestors, whose
 * working directory is inside one of `dirs` or whose command line names one of them, and the `pids`
 * given (from pid files). Each first gets `graceMs` to exit on its own; then SIGTERM (to its process
 * group as well when it leads one of its own, not ours), and SIGKILL 2 s later. Resolves with one line
 * per process it had to end (none: an empty list), for the log.
 */
export async function endLeftovers(
  dirs: readonly string[],
  options: { pids?: readonly number[]; graceMs?: number } = {},
): Promise<string[]> {
  const own = await ownLineage();
  const ownGroup = (await processInfo(process.pid))?.pgid;
  const inside = (path: string) => dirs.some((d) => path === d || path.startsWith(`${d}/`));
  const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).map(Number);
  const infos = await Promise.all(pids.filter((pid) => !own.has(pid)).map(processInfo));
  let left = infos.filter(
    (p): p is ProcessInfo =>
      p !== undefined &&
      (options.pids?.includes(p.pid) || inside(p.cwd) || dirs.some((d) => p.command.includes(d))),
  );
  const deadline = Date.now() + (options.graceMs ?? 5000);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(200);
    left = left.filter((p) => isAlive(p.pid));
  }
  // A detached helper that leads a process group of its own takes its children along; never our group.
  const signal = (p: ProcessInfo, name: NodeJS.Signals) => {
    try {
      process.kill(p.pgid === p.pid && p.pgid !== ownGroup ? -p.pgid : p.pid, name);
    } catch {
      // exited meanwhile
    }
  };
  for (const p of left) signal(p, 'SIGTERM');
  const killAt = Date.now() + 2000;
  while (left.some((p) => isAlive(p.pid)) && Date.now() < killAt) await sleep(100);
  for (const p of left) if (isAlive(p.pid)) signal(p, 'SIGKILL');
  return left.map((p) => `pid ${p.pid} (${p.command.slice(0, 160)}, cwd ${p.cwd})`);
}
