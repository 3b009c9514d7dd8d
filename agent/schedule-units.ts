/**
 * The plan's schedules as one host runs them without AWS: which runs belong to this host (its jobs'
 * backups, the drills it hosts, verify of its jobs), rendered as systemd service and timer units or as
 * one /etc/cron.d file. Pure: agent/commands/schedule.ts writes, activates and removes the files.
 *
 * Every file starts with {@link MARKER_PREFIX} and the plan's name, so an install rewrites and removes
 * only Strongbox's own files of that plan and never a file someone else wrote.
 */

import { PlanError } from '#core/errors';
import { cronTimeFields, type LocalCalendar, localCalendar, onCalendar } from '#core/local-schedule';
import type { Plan } from '#core/plan';

/** The commands a schedule runs. */
export type ScheduledCommand = 'backup' | 'drill' | 'verify';

/** One scheduled run on this host. */
export interface ScheduledRun {
  /** Base name of its units: `strongbox-<plan>-<job>-backup`, `strongbox-<plan>-verify`. */
  unit: string;
  command: ScheduledCommand;
  jobs: readonly string[];
  /** The plan's expression and the field it is in (`jobs[0].schedule`). */
  expression: string;
  where: string;
  calendar: LocalCalendar;
  /** Spread of the start after the scheduled time (the job's `scheduleWindowMinutes`). */
  randomizedDelaySeconds: number;
  /** How long the run may take before systemd stops it. */
  timeoutSeconds: number;
  description: string;
}

/** How long a scheduled verify may run (it reads manifests and lists objects; no data). */
const VERIFY_TIMEOUT_SECONDS = 3_600;

/**
 * The runs of the plan that belong to `host`. A plan without `hosts:` is a one-host site: every job
 * runs where it is installed. A plan with hosts schedules a job's backup on `jobs[].host`, its drill
 * on `drill.host` (else the job's host), and verify of a host's jobs on that host; a job that names no
 * host is not scheduled anywhere and is reported in `notes`.
 * @throws PlanError when `host` is not one of the plan's hosts, or a schedule cannot run locally.
 */
export function scheduledRuns(plan: Plan, host: string): { runs: ScheduledRun[]; notes: string[] } {
  const hostNames = Object.keys(plan.hosts);
  const oneHost = hostNames.length === 0;
  if (!oneHost && !hostNames.includes(host)) {
    throw new PlanError([
      `--host: '${host}' is not one of the plan's hosts (${hostNames.join(', ')}); pass --host <name> to say which this is`,
    ]);
  }
  const runs: ScheduledRun[] = [];
  const notes: string[] = [];
  const mine: string[] = [];
  const base = `strongbox-${plan.name}`;
  plan.jobs.forEach((job, index) => {
    if (oneHost || job.host === host) mine.push(job.name);
    else if (job.host === undefined && job.schedule) {
      notes.push(
        `job ${job.name} names no host (jobs[${index}].host): its schedule is not installed anywhere`,
      );
    }
    if (job.schedule && (oneHost || job.host === host)) {
      const where = `jobs[${index}].schedule`;
      runs.push({
        unit: `${base}-${job.name}-backup`,
        command: 'backup',
        jobs: [job.name],
        expression: job.schedule,
        where,
        calendar: localCalendar(job.schedule, plan.timezone, where),
        randomizedDelaySeconds: job.scheduleWindowMinutes * 60,
        timeoutSeconds: job.timeout,
        description: `Strongbox backup of job ${job.name} (plan ${plan.name})`,
      });
    }
    const drillHost = job.drill?.host ?? job.host;
    if (job.drill?.schedule && (oneHost || drillHost === host)) {
      const where = `jobs[${index}].drill.schedule`;
      runs.push({
        unit: `${base}-${job.name}-drill`,
        command: 'drill',
        jobs: [job.name],
        expression: job.drill.schedule,
        where,
        calendar: localCalendar(job.drill.schedule, plan.timezone, where),
        randomizedDelaySeconds: 0,
        timeoutSeconds: job.timeout,
        description: `Strongbox restore drill of job ${job.name} (plan ${plan.name})`,
      });
    }
  });
  if (mine.length > 0) {
    runs.push({
      unit: `${base}-verify`,
      command: 'verify',
      jobs: mine,
      expression: plan.verify.schedule,
      where: 'verify.schedule',
      calendar: localCalendar(plan.verify.schedule, plan.timezone, 'verify.schedule'),
      randomizedDelaySeconds: 0,
      timeoutSeconds: VERIFY_TIMEOUT_SECONDS,
      description: `Strongbox verify of ${mine.join(', ')} (plan ${plan.name})`,
    });
  }
  return { runs, notes };
}

/** How the rendered files run the agent. */
export interface RenderOptions {
  /** The agent's command, absolute: `[/usr/local/bin/strongbox]` or `[/usr/bin/node, /opt/strongbox.mjs]`. */
  agent: readonly string[];
  /** The plan file, absolute. */
  planPath: string;
  /** User the runs run as (default root). */
  user?: string;
  /** A file of `NAME=value` lines read before each run when it exists (secrets such as AWS keys). */
  environmentFile: string;
  /** Plain variables every run gets (`STRONGBOX_STATE_DIR` when the install was given one). */
  environment?: Readonly<Record<string, string>>;
}

/** A file to write: its name in the unit or cron directory and its content. */
export interface ScheduleFile {
  name: string;
  content: string;
}

/** First words of every file Strongbox writes; the plan's name follows. */
export const MARKER_PREFIX = '# Managed by strongbox schedule install for plan ';

function marker(plan: Plan): string {
  return `${MARKER_PREFIX}${plan.name}: each install rewrites or removes this file; change the plan, not this file.`;
}

/** The plan a file says it was written for, or undefined for a file that is not Strongbox's. */
export function managedPlanOf(content: string): string | undefined {
  const first = content.split('\n', 1)[0] ?? '';
  return first.startsWith(MARKER_PREFIX) ? first.slice(MARKER_PREFIX.length).split(':')[0] : undefined;
}

/** The agent's arguments of a run. */
function runArgs(run: ScheduledRun, options: RenderOptions): string[] {
  return [...options.agent, run.command, '--plan', options.planPath, '--job', run.jobs.join(',')];
}

/** One word of a systemd command line (systemd.service(5) "Command lines"): quoted when needed. */
function systemdWord(word: string): string {
  const escaped = word.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)
    ? escaped
    : `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** One word for /bin/sh, single-quoted when needed; `%` escaped for cron (it means newline there). */
function shellWord(word: string): string {
  const quoted = /^[A-Za-z0-9_@+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
  return quoted.replace(/%/g, '\\%');
}

/**
 * The service and timer of each run: a oneshot service with the job's timeout, at low CPU and I/O
 * priority, and a timer at the plan's time (time zone included) with `Persistent=true`, so a run missed
 * while the host was down happens at boot, and the job's schedule window as `RandomizedDelaySec=`.
 * systemd never starts a service that is still running, and the agent's job lock covers runs started
 * by hand.
 * @example systemdUnits(plan, runs, options).map((f) => f.name) // ['strongbox-site-db-backup.service', 'strongbox-site-db-backup.timer', …]
 */
export function systemdUnits(
  plan: Plan,
  runs: readonly ScheduledRun[],
  options: RenderOptions,
): ScheduleFile[] {
  return runs.flatMap((run) => {
    const service = [
      marker(plan),
      `# ${run.where}: ${run.expression} (${plan.timezone})`,
      '[Unit]',
      `Description=${run.description}`,
      'Wants=network-online.target',
      'After=network-online.target',
      '',
      '[Service]',
      'Type=oneshot',
      `ExecStart=${runArgs(run, options).map(systemdWord).join(' ')}`,
      `EnvironmentFile=-${options.environmentFile}`,
      ...Object.entries(options.environment ?? {}).map(
        ([name, value]) => `Environment=${systemdWord(`${name}=${value}`)}`,
      ),
      ...(options.user ? [`User=${options.user}`] : []),
      `TimeoutStartSec=${run.timeoutSeconds}`,
      'Nice=10',
      'IOSchedulingClass=best-effort',
      'IOSchedulingPriority=7',
      '',
    ].join('\n');
    const timer = [
      marker(plan),
      `# ${run.where}: ${run.expression} (${plan.timezone})`,
      '[Unit]',
      `Description=${run.description}: schedule`,
      '',
      '[Timer]',
      `OnCalendar=${onCalendar(run.calendar)}`,
      'Persistent=true',
      ...(run.randomizedDelaySeconds > 0 ? [`RandomizedDelaySec=${run.randomizedDelaySeconds}`] : []),
      `Unit=${run.unit}.service`,
      '',
      '[Install]',
      'WantedBy=timers.target',
      '',
    ].join('\n');
    return [
      { name: `${run.unit}.service`, content: service },
      { name: `${run.unit}.timer`, content: timer },
    ];
  });
}

/**
 * The runs as one /etc/cron.d file, `strongbox-<plan>`, under `CRON_TZ=<plan time zone>` (cronie
 * honours it; Debian's cron does not and runs in the host's time zone). cron has no catch-up: a run
 * missed while the host was down is skipped. Each line sources the environment file when it exists
 * and sends the agent's report to /dev/null, so cron mails only the error lines of a failed run.
 * @throws PlanError naming the field of a schedule cron cannot express (the last day of a month, years).
 */
export function cronFile(plan: Plan, runs: readonly ScheduledRun[], options: RenderOptions): ScheduleFile {
  const env = shellWord(options.environmentFile);
  const lines = [
    marker(plan),
    'SHELL=/bin/sh',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ...Object.entries(options.environment ?? {}).map(([name, value]) => `${name}=${value}`),
    `CRON_TZ=${plan.timezone}`,
    ...runs.flatMap((run) => [
      `# ${run.description}: ${run.where} ${run.expression}`,
      [
        cronTimeFields(run.calendar, run.where),
        options.user ?? 'root',
        `set -a; [ ! -r ${env} ] || . ${env}; set +a;`,
        'exec',
        ...runArgs(run, options).map(shellWord),
        '--quiet >/dev/null',
      ].join(' '),
    ]),
    '',
  ];
  return { name: `strongbox-${plan.name}`, content: lines.join('\n') };
}
