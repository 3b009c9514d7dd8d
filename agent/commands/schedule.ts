/**
 * `strongbox schedule install|status|remove`: the plan's schedules on this host, as systemd timers
 * (where systemd runs) or one /etc/cron.d file, without AWS. What is rendered is agent/schedule-units;
 * this file writes it (only what changed, atomically), removes what the plan no longer has (only files
 * that carry Strongbox's marker for this plan), tells systemd, and reports next and last runs.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatTable } from '#agent/format';
import { spawnTool } from '#agent/pipeline/child';
import type { Env } from '#agent/runtime';
import {
  cronFile,
  managedPlanOf,
  type RenderOptions,
  type ScheduledRun,
  type ScheduleFile,
  scheduledRuns,
  systemdUnits,
} from '#agent/schedule-units';
import { type LastRun, readLastRun, STATE_DIR_ENV, stateDirOf } from '#agent/state';
import { PlanError, UsageError } from '#core/errors';
import { nextRun } from '#core/local-schedule';
import type { Plan } from '#core/plan';
import type { Outcome } from './outcome';

/** Where systemd reads the administrator's units. */
export const SYSTEMD_UNIT_DIR = '/etc/systemd/system';
/** Where cron reads system crontabs. */
export const CRON_DIR = '/etc/cron.d';

/** What the schedule commands need to know of the host, and how they talk to systemd. */
export interface SchedulerHost {
  /** Whether systemd is the running init (`/run/systemd/system` exists, as sd_booted(3) checks). */
  systemdRunning: boolean;
  /** Runs `systemctl <args>` and resolves with its stdout; rejects when it fails. */
  systemctl(args: string[]): Promise<string>;
}

/** The real host. */
export const thisHost: SchedulerHost = {
  systemdRunning: existsSync('/run/systemd/system'),
  async systemctl(args) {
    const tool = spawnTool('systemctl', args, { stdin: 'ignore', timeoutSeconds: 60 });
    const chunks: Buffer[] = [];
    tool.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
    await tool.done;
    return Buffer.concat(chunks).toString('utf8');
  },
};

/** Options every schedule command takes. */
export interface ScheduleOptions {
  plan: Plan;
  planPath: string;
  env: Env;
  /** Which of the plan's hosts this is (default: the host name). */
  host: string;
  /** Write cron entries even where systemd runs. */
  cron?: boolean;
  /** Write systemd units even where systemd does not run (a unit directory for an image, a package). */
  systemd?: boolean;
  /** Directory the files go to; when given, systemd is not told (packaging, config management). */
  unitDir?: string;
  /** Whether to tell systemd (reload, enable, restart, disable). @default when no unitDir is given */
  activate?: boolean;
  /** The agent's command, absolute. */
  agent: readonly string[];
  user?: string;
  environmentFile?: string;
  now: Date;
  scheduler?: SchedulerHost;
}

interface Resolved {
  mode: 'systemd' | 'cron';
  dir: string;
  /** Whether systemd is told (daemon-reload, enable, disable). */
  activate: boolean;
  runs: ScheduledRun[];
  notes: string[];
  files: ScheduleFile[];
  scheduler: SchedulerHost;
}

function resolve(options: ScheduleOptions): Resolved {
  const scheduler = options.scheduler ?? thisHost;
  if (options.cron && options.systemd) throw new UsageError('--cron and --systemd: choose one');
  const mode = options.cron || (!options.systemd && !scheduler.systemdRunning) ? 'cron' : 'systemd';
  const dir = options.unitDir ?? (mode === 'cron' ? CRON_DIR : SYSTEMD_UNIT_DIR);
  if (!options.agent[0]?.startsWith('/')) {
    throw new UsageError(`--agent: the agent's path must be absolute, got '${options.agent.join(' ')}'`);
  }
  const { runs, notes } = scheduledRuns(options.plan, options.host);
  const stateDir = options.env[STATE_DIR_ENV];
  const render: RenderOptions = {
    agent: options.agent,
    planPath: options.planPath,
    user: options.user,
    environmentFile: options.environmentFile ?? `/etc/strongbox/${options.plan.name}.env`,
    environment: stateDir ? { [STATE_DIR_ENV]: stateDir } : undefined,
  };
  const files =
    mode === 'cron'
      ? runs.length > 0
        ? [cronFile(options.plan, runs, render)]
        : []
      : systemdUnits(options.plan, runs, render);
  const activate =
    mode === 'systemd' && scheduler.systemdRunning && (options.activate ?? options.unitDir === undefined);
  return { mode, dir, activate, runs, notes, files, scheduler };
}

async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** The files in `dir` that carry Strongbox's marker for this plan, by name. */
async function managedFiles(dir: string, plan: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const found: string[] = [];
  for (const name of names.filter((n) => n.startsWith(`strongbox-${plan}`)).sort()) {
    const content = await readIfPresent(join(dir, name)).catch(() => undefined);
    if (content !== undefined && managedPlanOf(content) === plan) found.push(name);
  }
  return found;
}

/** What an install or remove changed. */
export interface ScheduleChanges {
  mode: 'systemd' | 'cron';
  dir: string;
  written: string[];
  unchanged: string[];
  removed: string[];
  notes: string[];
}

/**
 * Writes this host's schedule files: each only when its content changed (written beside, then renamed
 * over), and removes this plan's files that the plan no longer has. A file of the same name that is
 * not Strongbox's is never overwritten. Where systemd runs (and no --unit-dir was given), systemd
 * reloads, new and changed timers are enabled and (re)started, and removed timers stopped first.
 * @throws PlanError for a schedule the local scheduler cannot run, or a file that is someone else's.
 */
export async function installSchedules(options: ScheduleOptions): Promise<ScheduleChanges> {
  const r = resolve(options);
  const plan = options.plan.name;
  const changes: ScheduleChanges = {
    mode: r.mode,
    dir: r.dir,
    written: [],
    unchanged: [],
    removed: [],
    notes: r.notes,
  };
  for (const file of r.files) {
    const existing = await readIfPresent(join(r.dir, file.name));
    if (existing !== undefined && managedPlanOf(existing) !== plan) {
      throw new PlanError([
        `${join(r.dir, file.name)} exists and was not written by strongbox for plan ${plan}; move it away or rename the job`,
      ]);
    }
    if (existing === file.content) changes.unchanged.push(file.name);
  }
  const wanted = new Set(r.files.map((f) => f.name));
  const stale = (await managedFiles(r.dir, plan)).filter((name) => !wanted.has(name));
  if (r.activate) {
    const timers = stale.filter((name) => name.endsWith('.timer'));
    if (timers.length) await r.scheduler.systemctl(['disable', '--now', ...timers]);
  }
  for (const name of stale) {
    await unlink(join(r.dir, name));
    changes.removed.push(name);
  }
  await mkdir(r.dir, { recursive: true });
  for (const file of r.files) {
    if (changes.unchanged.includes(file.name)) continue;
    const path = join(r.dir, file.name);
    const temp = join(r.dir, `.${file.name}.${process.pid}.tmp`);
    await writeFile(temp, file.content, { mode: 0o644 });
    await rename(temp, path);
    changes.written.push(file.name);
  }
  if (r.activate && (changes.written.length || changes.removed.length)) {
    await r.scheduler.systemctl(['daemon-reload']);
    const timers = changes.written.filter((name) => name.endsWith('.timer'));
    if (timers.length) {
      await r.scheduler.systemctl(['enable', ...timers]);
      // restart, not start: a running timer keeps its old calendar until restarted.
      await r.scheduler.systemctl(['restart', ...timers]);
    }
  }
  return changes;
}

/** Removes every file of this plan from the directory (systemd: timers stopped and disabled first). */
export async function removeSchedules(options: ScheduleOptions): Promise<ScheduleChanges> {
  const r = resolve({ ...options });
  const names = await managedFiles(r.dir, options.plan.name);
  if (r.activate) {
    const timers = names.filter((name) => name.endsWith('.timer'));
    if (timers.length) await r.scheduler.systemctl(['disable', '--now', ...timers]);
  }
  for (const name of names) await unlink(join(r.dir, name));
  if (r.activate && names.length) await r.scheduler.systemctl(['daemon-reload']);
  return { mode: r.mode, dir: r.dir, written: [], unchanged: [], removed: names, notes: [] };
}

/** One run's state, as `schedule status` reports it. */
export interface ScheduleStatus {
  unit: string;
  command: string;
  jobs: readonly string[];
  schedule: string;
  /** `installed`, `changed` (the plan says something else: run install) or `missing`. */
  state: 'installed' | 'changed' | 'missing';
  next?: string;
  last?: string;
  /** How the last run ended: `ok`, `warning`, `failed`, `refused (already running)`, or systemd's result. */
  result?: string;
  /** Where next and last come from: systemd, or the plan's calendar and the agent's run records. */
  source: 'systemd' | 'agent';
}

function resultOf(run: LastRun): string {
  return run.exitCode === 0
    ? 'ok'
    : run.exitCode === 1
      ? 'warning'
      : run.exitCode === 75
        ? 'refused (already running)'
        : `failed (exit ${run.exitCode})`;
}

/** `systemctl show` output (`Name=value` lines) as a map. */
function properties(text: string): Map<string, string> {
  return new Map(
    text
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/**
 * Each run's next and last time: from systemd when its timers run there (`systemctl show`), else the
 * next from the plan's calendar and the last from the agent's own record of its runs.
 */
export async function scheduleStatus(options: ScheduleOptions): Promise<ScheduleStatus[]> {
  const r = resolve(options);
  const stateDir = stateDirOf(options.env);
  const statuses: ScheduleStatus[] = [];
  for (const run of r.runs) {
    const ownFiles = r.files.filter((f) => (r.mode === 'cron' ? true : f.name.startsWith(`${run.unit}.`)));
    const present = await Promise.all(ownFiles.map((f) => readIfPresent(join(r.dir, f.name))));
    const state = present.some((c) => c === undefined)
      ? 'missing'
      : present.every((c, i) => c === ownFiles[i]?.content)
        ? 'installed'
        : 'changed';
    const status: ScheduleStatus = {
      unit:
        r.mode === 'cron'
          ? `${r.files[0]?.name ?? ''}: ${run.command} ${run.jobs.join(',')}`
          : `${run.unit}.timer`,
      command: run.command,
      jobs: run.jobs,
      schedule: run.expression,
      state,
      source: 'agent',
    };
    if (r.activate && state !== 'missing') {
      const timer = properties(
        await r.scheduler.systemctl([
          'show',
          '--timestamp=utc',
          '--property=NextElapseUSecRealtime,LastTriggerUSec',
          `${run.unit}.timer`,
        ]),
      );
      const service = properties(
        await r.scheduler.systemctl(['show', '--property=Result,ExecMainStatus', `${run.unit}.service`]),
      );
      const next = timer.get('NextElapseUSecRealtime');
      const last = timer.get('LastTriggerUSec');
      Object.assign(status, {
        source: 'systemd',
        next: next && next !== 'n/a' ? next : undefined,
        last: last && last !== 'n/a' ? last : undefined,
        result:
          last && last !== 'n/a'
            ? `${service.get('Result')} (exit ${service.get('ExecMainStatus')})`
            : undefined,
      });
    } else {
      status.next = nextRun(run.calendar, options.now)?.toISOString();
      const records = await Promise.all(
        run.jobs.map((job) => readLastRun(stateDir, options.plan.name, job, run.command)),
      );
      const latest = records
        .filter((x): x is LastRun => x !== undefined)
        .sort((a, b) => b.startedAt.localeCompare(a.startedAt))[0];
      if (latest) {
        status.last = latest.startedAt;
        status.result = resultOf(latest);
      }
    }
    statuses.push(status);
  }
  return statuses;
}

function changesText(verb: string, changes: ScheduleChanges): string {
  const lines = [
    ...changes.written.map((name) => `${verb} ${join(changes.dir, name)}`),
    ...changes.unchanged.map((name) => `unchanged ${join(changes.dir, name)}`),
    ...changes.removed.map((name) => `removed ${join(changes.dir, name)}`),
    ...changes.notes.map((note) => `note: ${note}`),
  ];
  return lines.length ? lines.join('\n') : `nothing to do in ${changes.dir}`;
}

/** `strongbox schedule install`. */
export async function scheduleInstallCommand(options: ScheduleOptions): Promise<Outcome> {
  const changes = await installSchedules(options);
  return { exitCode: 0, json: changes, text: changesText('wrote', changes) };
}

/** `strongbox schedule remove`. */
export async function scheduleRemoveCommand(options: ScheduleOptions): Promise<Outcome> {
  const changes = await removeSchedules(options);
  return { exitCode: 0, json: changes, text: changesText('removed', changes) };
}

/** `strongbox schedule status`: exit 1 when a run is not installed as the plan says, or its last run failed. */
export async function scheduleStatusCommand(options: ScheduleOptions): Promise<Outcome> {
  const statuses = await scheduleStatus(options);
  const rows = statuses.map((s) => [
    s.unit,
    s.schedule,
    s.next ?? '-',
    s.last ?? '-',
    s.result ?? '-',
    s.state,
  ]);
  const text = statuses.length
    ? formatTable([['UNIT', 'SCHEDULE', 'NEXT', 'LAST', 'RESULT', 'STATE'], ...rows])
    : 'no schedules for this host in the plan';
  const unwell = statuses.some(
    (s) => s.state !== 'installed' || (s.result && !/^(ok|success)/.test(s.result)),
  );
  return { exitCode: unwell ? 1 : 0, json: { schedules: statuses }, text };
}
