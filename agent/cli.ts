/**
 * The `strongbox` CLI, loaded and run by the entry agent/main.ts (after the wal-push fast path
 * declined). With main.ts the one place in the agent that reads `process.env`, writes to stdout and turns
 * errors into exit codes: 0 ok, 1 warning, 2 error (and 3 for `verify --nagios` when it cannot check, 75
 * when the job is already running and this run did nothing). On failure the last line on stderr is
 * `strongbox: error: <what went wrong>` (SSM keeps only the tail of a command's output).
 */
// First: V8 heap settings before the other modules load and allocate (agent/heap.ts).
import '#agent/heap';
import { realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { isSea } from 'node:sea';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { type RunRecord, reportRun } from '#agent/after-run';
import { backupCommand } from '#agent/commands/backup';
import { copyCommand } from '#agent/commands/copy';
import { DEFAULT_PROBE_TIMEOUT_SECONDS, doctorCommand } from '#agent/commands/doctor';
import { drillCommand } from '#agent/commands/drill';
import { keygenCommand } from '#agent/commands/keygen';
import { listCommand } from '#agent/commands/list';
import type { Outcome } from '#agent/commands/outcome';
import { errorJson } from '#agent/commands/outcome';
import { pruneVaults } from '#agent/commands/prune';
import { drillAllCommand, restoreAllCommand } from '#agent/commands/recover-host';
import { parseRestoreOptions, restoreCommand } from '#agent/commands/restore';
import {
  CRON_DIR,
  type ScheduleOptions,
  SYSTEMD_UNIT_DIR,
  scheduleInstallCommand,
  scheduleRemoveCommand,
  scheduleStatusCommand,
} from '#agent/commands/schedule';
import { verifyCommand } from '#agent/commands/verify';
import { WAL_FETCH_FATAL_EXIT, walFetchCommand } from '#agent/commands/wal-fetch';
import { walPushCommand } from '#agent/commands/wal-push';
import { runtimeFrom } from '#agent/copy';
import { type TerminalProgress, terminalProgress } from '#agent/progress';
import { type Env, loadPlanFile, openRuntime, type Runtime } from '#agent/runtime';
import { VERSION } from '#agent/version';
import { DEFAULT_WAL_PARALLEL, SPOOL_DIR } from '#agent/wal-spool';
import { isBackupId } from '#core/backup-id';
import { AGENT_ACTIONS, AGENT_ENV, AGENT_ERROR_PREFIX } from '#core/deployment';
import {
  type ErrorContext,
  errorLines,
  InterruptedError,
  JOB_LOCKED_EXIT,
  JobLockedError,
  UsageError,
} from '#core/errors';
import { TIERS, type Tier } from '#core/tiers';

interface Common {
  plan: string;
  json?: boolean;
  quiet?: boolean;
}

/** What a run is doing, for its error line: `backup app-db`, `verify`. */
type Operation = string;

/** How `run` treats a command: whether it opens the plan, and what of it is reported afterwards. */
interface RunOptions {
  /** @default true */
  plan?: boolean;
  /** Report the run (storage watch, metrics textfile, alert: agent/after-run). */
  report?: Pick<RunRecord, 'command' | 'jobs' | 'tier'>;
}

/** `--job a --job b` and `--job a,b`: every name, in the order given. */
function jobNames(value: string, previous: string[] = []): string[] {
  const names = value.split(',').map((name) => name.trim());
  if (names.some((name) => name === '')) {
    throw new InvalidArgumentError('expected job names, one per --job or separated by commas (a,b)');
  }
  return [...previous, ...names];
}

function positiveSeconds(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) {
    throw new InvalidArgumentError('expected seconds, more than 0 and at most 3600');
  }
  return seconds;
}

/** `--parallel` of wal-push and wal-fetch: files moved at once, 1 to 32. */
function walParallel(value: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 1 || count > 32) {
    throw new InvalidArgumentError('expected a whole number of files from 1 to 32');
  }
  return count;
}

/** `--job` for commands that act on one job (restore). */
function oneJob(value: string, previous: string | undefined): string {
  if (previous !== undefined || value.includes(',')) {
    throw new InvalidArgumentError('names one job here; run the command once per job');
  }
  return value;
}

/**
 * `--all --host <name>` of restore and drill, checked before the plan is read.
 * @throws UsageError when one is given without the other, or with options that name one job.
 */
function hostRecoveryOptions(
  options: object,
  command: 'restore' | 'drill',
): { host: string; keepGoing: boolean; replace: boolean } {
  const o = options as Record<string, unknown>;
  const hint = `(see strongbox ${command} --help)`;
  if (!o.all) throw new UsageError(`--host needs --all: ${command} every job of that host ${hint}`);
  if (typeof o.host !== 'string' || o.host === '')
    throw new UsageError(`--all needs --host <name>: the host whose jobs to ${command} ${hint}`);
  const single = [
    'job',
    'backupId',
    'target',
    'tables',
    'intoLive',
    ...(command === 'restore' ? [] : ['replace', 'confirm']),
    'to',
    'start',
    'options',
  ].filter((name) => o[name] !== undefined && o[name] !== false);
  if (single.length > 0) {
    throw new UsageError(
      `--all ${command === 'restore' ? "restores each job's newest backup into its original place" : "drills each job's newest backup in a scratch target"}: it takes no ${single.map((n) => `--${n.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(', ')} ${hint}`,
    );
  }
  if (o.replace && o.confirm !== o.host) {
    throw new UsageError(
      `--all --replace restores over the live data of host '${o.host}': confirm with --confirm ${o.host} ${hint}`,
    );
  }
  if (!o.replace && o.confirm !== undefined) {
    throw new UsageError(`--all takes --confirm only with --replace ${hint}`);
  }
  return { host: o.host, keepGoing: o.keepGoing === true, replace: o.replace === true };
}

/** restore without --all needs --job. @throws UsageError */
function requireJob<T extends object>(o: T): T {
  if (typeof (o as { job?: unknown }).job !== 'string')
    throw new UsageError(
      "required option '-j, --job <name>' not specified (or --all --host <name>) (see strongbox restore --help)",
    );
  return o;
}

/** `backup app-db`, `backup app-db,media`, `backup` (every job). */
function operationOf(command: string, jobs?: string | readonly string[]): Operation {
  const names = typeof jobs === 'string' ? [jobs] : (jobs ?? []);
  return names.length ? `${command} ${[...new Set(names)].join(',')}` : command;
}

const JOBS_HELP = 'only these jobs: repeat --job or separate names with commas (default: every job)';
const FROM_HELP = "read this copy (a name of the plan's copies) instead of the primary vault";

function backupIdArg(value: string): string {
  if (!isBackupId(value)) throw new InvalidArgumentError('expected a backup id like 20241206T020000Z-3f9a1c');
  return value;
}

/** Builds the command tree; `run` executes one command and reports its outcome. */
function buildCli(
  run: (
    action: (runtime: Runtime) => Promise<Outcome>,
    common: Common,
    operation: Operation,
    options?: RunOptions,
  ) => Promise<void>,
  env: Env = {},
) {
  const program = new Command('strongbox')
    .description(
      'Back up PostgreSQL, Redis, InfluxDB, file trees and command output into an encrypted vault (file:// or S3), and prove ' +
        "they restore. After each backup, verify, drill, prune and wal-push the agent rewrites the plan's " +
        'metrics textfile (metrics:) and sends one alert to Slack, a webhook or sendmail (notify:; failures ' +
        'and warnings by default); a failed delivery is a warning, never a failure. ' +
        `Exit status: 0 ok, 1 warning, 2 error, 75 job already running. Actions the AWS document runs: ${AGENT_ACTIONS.join(', ')}.`,
    )
    .version(VERSION)
    .exitOverride()
    // Usage errors end like every other failure, with one `strongbox: error: …` line (main prints it).
    .configureOutput({ outputError: () => {} });

  const withPlan = (command: Command) =>
    command
      .requiredOption('-p, --plan <file>', 'plan file (YAML or JSON)')
      .option('--json', 'print one JSON object on stdout instead of text')
      .option(
        '-q, --quiet',
        'no progress on stderr (neither log lines nor, on a terminal, the progress line of bytes, rate and elapsed time)',
      );

  withPlan(
    program
      .command('backup')
      .description(
        'back up the given jobs, or every job, in plan order (a failing job does not stop the others; ' +
          'every job is reported); the manifest is written last, so a failed backup never looks complete; ' +
          'a job whose previous backup or prune still runs is refused (exit 75 when it is the only job); ' +
          'a backup whose source bytes shrank under limits.shrinkRatio or grew past limits.growthRatio ' +
          'times the recent median is a warning (exit 1)',
      ),
  )
    .option('-j, --job <names>', JOBS_HELP, jobNames)
    .option('--backup-id <id>', 'backup id to write (default: a new one from the clock)', backupIdArg)
    .addOption(new Option('--tier <tier>', 'GFS tier (default: from the previous backup)').choices(TIERS))
    .option(
      '--copy',
      "then copy each job that backed up to every copy of the plan (as `strongbox copy` does: what each copy's tiers and retention want and it lacks)",
    )
    .action((o: Common & { job?: string[]; backupId?: string; tier?: Tier; copy?: boolean }) =>
      run(
        (rt) => backupCommand(rt, { jobs: o.job, backupId: o.backupId, tier: o.tier, copy: o.copy }),
        o,
        operationOf('backup', o.job),
        { report: { command: 'backup', jobs: o.job, tier: o.tier } },
      ),
    );

  withPlan(
    program
      .command('copy')
      .description(
        "copy the primary vault's complete backups to the plan's copies (3-2-1): each object as stored, " +
          'its SHA-256 checked on the way (a corrupted object is refused), the data key re-wrapped for a copy ' +
          "with its own key (no data is decrypted), the copy's tiers, storage class and retention applied, " +
          'the manifest written last; backups already on a copy are left alone, an interrupted copy is ' +
          'finished by the next run. Safety backups are copied only by --backup-id; WAL is not copied.',
      ),
  )
    .option('-j, --job <names>', JOBS_HELP, jobNames)
    .option('--to <copy>', 'only this copy (default: every copy of the plan)')
    .option(
      '--backup-id <id>',
      "copy only this backup (one --job): also a safety backup, or one the copy's tiers or retention leave out",
      backupIdArg,
    )
    .action((o: Common & { job?: string[]; to?: string; backupId?: string }) =>
      run(
        (rt) => copyCommand(rt, { jobs: o.job, to: o.to, backupId: o.backupId }),
        o,
        operationOf('copy', o.job),
      ),
    );

  withPlan(
    program
      .command('restore')
      .description(
        'restore a backup into a new scratch target (default), or --replace the live data (postgres: ' +
          'restore beside, check, swap names in one transaction, keep the old database; redis: check ' +
          'beside, stop, place the RDB keeping the old one, start). Every chunk is authenticated before ' +
          'use; a failed restore removes what it created. --all --host restores a whole host in recovery order, ' +
          'each job into its original place.',
      ),
  )
    .option('-j, --job <name>', 'job whose backup to restore (one; or --all --host)', oneJob)
    .option(
      '--all',
      "with --host: restore every job of the host in the plan's recovery order (recoveryOrder), each from its newest complete backup into its original place (postgres: its database; redis: the plan's server, through source.replace; files: the original paths; influxdb: the original databases; command: its restore command; postgres-physical is refused), timing each step and the total; an original place that holds data already refuses the whole run before anything is restored, each named",
    )
    .option('--host <name>', 'with --all: the host (a key of hosts) whose jobs to restore')
    .option('--keep-going', 'with --all: go on after a failed step (default: stop at the first failure)')
    .option('--backup-id <id>', 'backup to restore (default: the newest complete one)', backupIdArg)
    .option(
      '--target <name>',
      'database (postgres), new directory (files, redis, command, influxdb) or new database name (influxdb) to restore into',
    )
    .option(
      '--tables <list>',
      'comma-separated tables to restore (postgres; schema.table or table): each with its partitions, types, sequences, keys, constraints, indexes, triggers and privileges; not foreign keys to tables left out',
    )
    .option(
      '--path <path>',
      'restore only this absolute path of the backup, a file or a directory with what is below it (files; globs allowed; repeat for several)',
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option(
      '--in-place',
      'restore over the original locations (files): extract beside, check, then move each entry in with rename; what it overwrites is kept in .strongbox-kept-<time> beside, a failure undoes every move; needs --confirm',
    )
    .option(
      '--delete',
      'with --in-place: also move away (into the kept directory) what is below the restored paths but not in the backup; never what the job excludes',
    )
    .option(
      '--replace',
      'replace the live data (postgres, redis with source.replace): safety backup, restore beside, check, swap; with --all: what the original places of postgres and redis jobs hold',
    )
    .option(
      '--into-live',
      "postgres, with --tables: restore those tables into the job's own database: checks first (in the backup, rights to drop, create and own them, nothing else depends on them, free space), a safety backup of exactly those tables, then DROP (never CASCADE) and restore in one transaction that checks the row counts before COMMIT; types, schemas and functions stay the live ones; needs --confirm",
    )
    .option(
      '--confirm <job>',
      'required with --replace, --in-place and --into-live: the job name again (with --all --replace: the host name)',
    )
    .option(
      '--to <target>',
      'point-in-time jobs: replay the WAL archive to latest, time:<ISO time with offset>, lsn:<lsn>, xid:<xid> or name:<restore point>, then promote',
    )
    .option(
      '--start',
      'point-in-time jobs: start the restored copy on a free port and wait until it is promoted',
    )
    .option(
      '--archive',
      "point-in-time jobs, with --to: the copy becomes the primary and archives its new timeline (history file included) into the job's WAL archive from promotion on (default: the copy does not archive)",
    )
    .option(
      '--tablespace-map <OLD=NEW>',
      "physical jobs: restore the tablespace at OLD (its location on the source) into NEW, as pg_basebackup's -T; repeat for several. Unmapped tablespaces go beside the data directory (<target>-tablespace-<name>); a location that holds anything is refused",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option('--options <json>', 'the same options as one JSON object (used by the AWS document)')
    .option('--from <copy>', `${FROM_HELP} (not with --replace)`)
    .action((o: Common & Record<string, string | string[] | boolean | undefined>) =>
      o.all || o.host !== undefined
        ? run(
            (rt) => restoreAllCommand(rt, hostRecoveryOptions(o, 'restore')),
            o,
            `restore --all --host ${String(o.host ?? '')}`,
          )
        : run(
            async (rt) => {
              const from = typeof o.from === 'string' ? o.from : undefined;
              if (from !== undefined && o.intoLive) {
                throw new UsageError(
                  '--from and --into-live: the safety backup goes into the vault the restore reads; restore the copy into a --target instead',
                );
              }
              if (from !== undefined && o.replace) {
                throw new UsageError(
                  '--from and --replace: a replace takes its safety backup into the vault it restores from; restore the copy into a --target instead',
                );
              }
              return restoreCommand(await runtimeFrom(rt, from), parseRestoreOptions(requireJob(o)));
            },
            o,
            operationOf('restore', o.job as string),
          ),
    );

  withPlan(
    program
      .command('drill')
      .description(
        "restore each job's newest backup into a scratch target, run every check on it, time it against " +
          'the RTO and drop it; every job in plan order unless --job says which',
      ),
  )
    .option('-j, --job <names>', JOBS_HELP, jobNames)
    .option('--options <json>', 'restore options as JSON (target; with one job)')
    .option(
      '--all',
      "with --host: drill every job of the host in the plan's recovery order, timing each step and the total (the host's measured recovery time)",
    )
    .option('--host <name>', 'with --all: the host (a key of hosts) whose jobs to drill')
    .option('--keep-going', 'with --all: go on after a failed step (default: stop at the first failure)')
    .option('--from <copy>', FROM_HELP)
    .action(
      (
        o: Common & {
          job?: string[];
          options?: string;
          all?: boolean;
          host?: string;
          keepGoing?: boolean;
          from?: string;
        },
      ) =>
        o.all || o.host !== undefined
          ? run(
              (rt) => drillAllCommand(rt, hostRecoveryOptions(o, 'drill')),
              o,
              `drill --all --host ${o.host ?? ''}`,
            )
          : run(
              async (rt) => drillCommand(await runtimeFrom(rt, o.from), { jobs: o.job, options: o.options }),
              o,
              operationOf('drill', o.job),
              { report: { command: 'drill', jobs: o.job } },
            ),
    );

  withPlan(
    program
      .command('list')
      .description(
        'inventory per job, like pgBackRest info: backups by tier, oldest and newest, age of the newest, ' +
          'stored and source bytes, the recovery window of point-in-time jobs; then each backup with its ' +
          'tier, age, sizes, duration and status (complete, warnings, safety, incomplete) and the warnings ' +
          'each recorded; reads manifests only (no data, no archive retrievals); exit 0',
      ),
  )
    .option('-j, --job <names>', JOBS_HELP, jobNames)
    .option('--from <copy>', FROM_HELP)
    .option(
      '--all',
      'also list unfinished writes of interrupted backups (partial files, incomplete multipart uploads) that the next backup or prune removes',
    )
    .action((o: Common & { job?: string[]; from?: string; all?: boolean }) =>
      run(
        async (rt) => listCommand(await runtimeFrom(rt, o.from), { jobs: o.job, all: o.all }),
        o,
        operationOf('list', o.job),
      ),
    );

  withPlan(
    program
      .command('verify')
      .description(
        'check each job as the AWS verify function does: newest backup age against its limits, objects ' +
          'present with their sizes, source size against the recent median (shrink and growth), GFS tier coverage, incomplete ' +
          "backups, a file vault fuller than the plan's storage thresholds; --deep also reads a backup back (decrypt, authenticate, decompress, checksum) " +
          "without restoring it, checks its kind is the job's and, for postgres, that the archive's " +
          'table of contents lists the tables of the manifest',
      ),
  )
    .option('-j, --job <names>', JOBS_HELP, jobNames)
    .option('--deep', 'read the data back through decryption and decompression')
    .option('--backup-id <id>', 'deep-verify this backup instead of the newest', backupIdArg)
    .option(
      '--nagios',
      'print as a Nagios plugin: "OK|WARNING|CRITICAL|UNKNOWN: …" with perfdata, exit 0/1/2/3 ' +
        '(UNKNOWN when the check cannot run)',
    )
    .option(
      '--from <copy>',
      `${FROM_HELP}; without it verify also reports, per copy, the backups missing there`,
    )
    .action(
      (o: Common & { job?: string[]; deep?: boolean; backupId?: string; nagios?: boolean; from?: string }) =>
        run(
          async (rt) => {
            if (o.nagios && o.json)
              throw new UsageError('--nagios and --json are two output formats: choose one');
            return verifyCommand(await runtimeFrom(rt, o.from), {
              jobs: o.job,
              deep: o.deep,
              backupId: o.backupId,
              nagios: o.nagios,
              copies: o.from === undefined,
            });
          },
          o,
          operationOf('verify', o.job),
          { report: { command: 'verify', jobs: o.job } },
        ),
    );

  withPlan(
    program
      .command('prune')
      .description(
        "apply the plan's retention to the vault and remove stale incomplete backups, then each copy's " +
          "retention to that copy; refused (exit 75) while a job's backup runs",
      ),
  )
    .option('-j, --job <names>', JOBS_HELP, jobNames)
    .option('-n, --dry-run', 'only say what would be deleted')
    .option('--from <copy>', 'prune only this copy (default: the primary vault, then every copy)')
    .action((o: Common & { job?: string[]; dryRun?: boolean; from?: string }) =>
      run(
        (rt) => pruneVaults(rt, { jobs: o.job, dryRun: o.dryRun, from: o.from }),
        o,
        operationOf('prune', o.job),
        { report: { command: 'prune', jobs: o.job } },
      ),
    );

  withPlan(
    program
      .command('doctor')
      .description(
        "check tools, database access, vault write access, key use, free space, the vault's fill against the plan's storage thresholds, each copy's vault and key, " +
          "and the bucket's Object Lock when the plan sets vault.objectLock; one line per check",
      ),
  )
    .option('-j, --job <names>', JOBS_HELP, jobNames)
    .option(
      '--probe-timeout <seconds>',
      `seconds each check may take before it fails as hung (default ${DEFAULT_PROBE_TIMEOUT_SECONDS})`,
      positiveSeconds,
    )
    .action((o: Common & { job?: string[]; probeTimeout?: number }) =>
      run(
        (rt) => doctorCommand(rt, { jobs: o.job, probeTimeoutSeconds: o.probeTimeout }),
        o,
        operationOf('doctor', o.job),
        { report: { command: 'doctor', jobs: o.job } },
      ),
    );

  // WAL archiving of point-in-time jobs: PostgreSQL's archive_command and restore_command.
  withPlan(
    program
      .command('wal-push')
      .description(
        'archive_command: compress, encrypt and store one WAL file; exit 0 only once it is durably in the vault (the same content already archived is fine, other content fails). For a file in pg_wal/ the call asks the resident pusher of the data directory and job, starting it when none runs; it uploads ready segments in the background and answers only for a file in the vault now',
      ),
  )
    .requiredOption('-j, --job <name>', 'the point-in-time job whose archive it is')
    .option(
      '--parallel <files>',
      `upload this many files at once: the segments marked ready in pg_wal/archive_status (by the resident pusher, or by this call with the one asked for), acknowledged at once when PostgreSQL asks for them (default ${DEFAULT_WAL_PARALLEL}; 1 turns the pusher and push-ahead off)`,
      walParallel,
    )
    .argument('<path>', "the file to archive (PostgreSQL's %p)")
    .action((path: string, o: Common & { job: string; parallel?: number }) =>
      run(
        (rt) => walPushCommand(rt, { job: o.job, path, parallel: o.parallel }),
        o,
        operationOf('wal-push', o.job),
        { report: { command: 'wal-push', jobs: [o.job] } },
      ),
    );
  withPlan(
    program
      .command('wal-fetch')
      .description(
        `restore_command: fetch, authenticate and decrypt one archived WAL file; exit 1 when it is not archived, ${WAL_FETCH_FATAL_EXIT} (recovery stops) when it fails authentication or the vault cannot be read`,
      ),
  )
    .requiredOption('-j, --job <name>', 'the point-in-time job whose archive it is')
    .option('--from <copy>', "fetch from this copy of the plan's (what a restore --from a copy writes)")
    .option(
      '--parallel <files>',
      `download this many segments at once: the one asked for and the next ones of its timeline, kept in <data dir>/${SPOOL_DIR}/ until PostgreSQL asks for them (default ${DEFAULT_WAL_PARALLEL}; 1 turns prefetch off)`,
      walParallel,
    )
    .argument('<name>', "the WAL file wanted (PostgreSQL's %f)")
    .argument('<path>', "where to write it (PostgreSQL's %p)")
    .action((name: string, path: string, o: Common & { job: string; from?: string; parallel?: number }) => {
      errorExitCode = WAL_FETCH_FATAL_EXIT;
      return run(
        async (rt) =>
          walFetchCommand(await runtimeFrom(rt, o.from), { job: o.job, name, path, parallel: o.parallel }),
        o,
        operationOf('wal-fetch', o.job),
      );
    });

  program
    .command('keygen')
    .description('create a new local master key file (mode 0600; refuses to overwrite)')
    .argument('<path>', 'where to write the key')
    .option('--json', 'print one JSON object on stdout')
    .action((path: string, o: { json?: boolean }) =>
      run(() => keygenCommand(path), { plan: '', json: o.json }, `keygen ${path}`, { plan: false }),
    );

  // Local schedules: the plan's job, drill and verify schedules as systemd timers or cron entries.
  const schedule = program
    .command('schedule')
    .description(
      "run the plan's schedules on this host without AWS: systemd timers where systemd runs, else one /etc/cron.d file",
    );
  const withScheduleOptions = (command: Command) =>
    withPlan(command)
      .option('--host <name>', "which of the plan's hosts this is (default: the host name)")
      .option('--cron', 'cron entries (/etc/cron.d) even where systemd runs')
      .option(
        '--systemd',
        'systemd units even where systemd does not run (with --unit-dir: an image, a package)',
      )
      .option(
        '--unit-dir <dir>',
        `where the files go (default ${SCHEDULE_DIRS}); when given, systemd is not told (packaging, config management)`,
      );
  type ScheduleFlags = Common & {
    host?: string;
    cron?: boolean;
    systemd?: boolean;
    unitDir?: string;
    agent?: string;
    user?: string;
    envFile?: string;
  };
  const scheduleOptions = async (o: ScheduleFlags): Promise<ScheduleOptions> => {
    const planPath = resolve(o.plan);
    return {
      plan: await loadPlanFile(planPath, env),
      planPath,
      env,
      host: o.host ?? hostname(),
      cron: o.cron,
      systemd: o.systemd,
      unitDir: o.unitDir === undefined ? undefined : resolve(o.unitDir),
      agent: o.agent ? [o.agent] : agentCommand(env),
      user: o.user,
      environmentFile: o.envFile,
      now: new Date(),
    };
  };
  withScheduleOptions(
    schedule
      .command('install')
      .description(
        "write this host's backup, drill and verify schedules (rewrites only what changed; removes this plan's units the plan no longer has; catches up missed runs at boot with systemd)",
      ),
  )
    .option(
      '--agent <path>',
      'absolute path of the agent the units run (default: this agent, as it was started)',
    )
    .option('--user <name>', 'user the runs run as (default root)')
    .option(
      '--env-file <path>',
      'environment file each run reads when it exists (default /etc/strongbox/<plan>.env)',
    )
    .action((o: ScheduleFlags) =>
      run(async () => scheduleInstallCommand(await scheduleOptions(o)), o, 'schedule install', {
        plan: false,
      }),
    );
  withScheduleOptions(
    schedule
      .command('status')
      .description(
        "each schedule's next and last run and how it ended (from systemd, else from the agent's own records); exit 1 when one is not installed as the plan says or its last run failed",
      ),
  ).action((o: ScheduleFlags) =>
    run(async () => scheduleStatusCommand(await scheduleOptions(o)), o, 'schedule status', { plan: false }),
  );
  withScheduleOptions(
    schedule.command('remove').description("remove this plan's schedule files (stopping its timers first)"),
  ).action((o: ScheduleFlags) =>
    run(async () => scheduleRemoveCommand(await scheduleOptions(o)), o, 'schedule remove', { plan: false }),
  );

  return program;
}

/** Names a refused or unreachable address after what it is in the plan: the vault, a job's database. */
function endpointNamer(runtime: Runtime | undefined): ErrorContext['nameEndpoint'] {
  if (!runtime) return undefined;
  return (host, port) => {
    const endpoint = runtime.plan.vault.endpoint;
    if (endpoint) {
      const url = new URL(endpoint);
      const urlPort = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
      const local = (name: string) => ['localhost', '127.0.0.1', '::1', '[::1]'].includes(name);
      if (urlPort === port && (url.hostname === host || (local(url.hostname) && local(host)))) {
        return `the vault ${runtime.plan.vault.url} (${endpoint})`;
      }
    }
    const jobs = runtime.plan.jobs.filter((job) => {
      const source = job.source as { host?: unknown; port?: unknown };
      return source.port === port && (source.host === host || source.host === undefined);
    });
    return jobs.length ? `the database of job ${jobs.map((j) => j.name).join(', ')}` : undefined;
  };
}

/** The subcommand an argv names, for usage errors (`strongbox backup --bogus` → `backup`). */
function commandOf(argv: readonly string[]): string | undefined {
  return argv.slice(2).find((arg) => !arg.startsWith('-'));
}

const SCHEDULE_DIRS = `${SYSTEMD_UNIT_DIR}, or ${CRON_DIR} for cron`;

/**
 * How systemd and cron start this agent, as absolute paths: `STRONGBOX_COMMAND` when it is one, the
 * single executable itself, or node with its flags and the script it runs.
 */
function agentCommand(env: Env): string[] {
  const configured = env[AGENT_ENV.command];
  if (configured?.startsWith('/')) return [configured];
  if (isSea()) return [process.execPath];
  return [process.execPath, ...process.execArgv, realpathSync(process.argv[1] as string)];
}

/** Exit status of a command that failed with an error (wal-fetch uses its own). */
let errorExitCode = 2;

async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const env = { ...process.env };
  // An interrupted backup or restore aborts every stage and cleans up (temp files, multipart uploads,
  // scratch targets) before the agent exits; a second signal exits at once.
  const interrupt = new AbortController();
  for (const name of ['SIGINT', 'SIGTERM'] as const) {
    process.on(name, () => {
      if (interrupt.signal.aborted) process.exit(2);
      interrupt.abort(new InterruptedError(`interrupted by ${name}; nothing was committed`));
    });
  }
  let operation: Operation | undefined;
  let runtime: Runtime | undefined;
  let startedAt: Date | undefined;
  let progress: TerminalProgress | undefined;
  const afterRunServices = {
    fetch: globalThis.fetch,
    sleep: (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
    warn: (line: string) => process.stderr.write(`strongbox: warning: ${line}\n`),
  };
  const cli = buildCli(async (action, common, named, options = {}) => {
    operation = named;
    // Progress: redrawn in place for a person at a terminal (not with --json); in logs (cron mail, SSM
    // output) a line every ten seconds; never with --quiet or --nagios.
    const tty = process.stderr.isTTY === true;
    const shown = !common.quiet && !argv.includes('--nagios') && !(tty && common.json);
    progress = shown ? terminalProgress(process.stderr, tty ? {} : { mode: 'lines' }) : undefined;
    if (options.plan ?? true) {
      runtime = await openRuntime(common.plan, env, {
        log: common.quiet
          ? undefined
          : (line) => {
              progress?.clear();
              process.stderr.write(`strongbox: ${line}\n`);
            },
        signal: interrupt.signal,
        ...(progress ? { progress } : {}),
      });
      startedAt = runtime.clock.now();
    }
    // After the run, failed or not: the record of the run for `schedule status`, storage watch, metrics
    // textfile, alert (agent/after-run). Their problems are warnings; the run's own error line stays last.
    const report = async (ended: Pick<RunRecord, 'outcome' | 'error'>) => {
      if (runtime && options.report) {
        await reportRun(
          runtime,
          { ...options.report, operation: named, startedAt: startedAt as Date, ...ended },
          afterRunServices,
        );
      }
    };
    let outcome: Outcome;
    try {
      outcome = await action(runtime as Runtime).finally(() => progress?.close());
    } catch (error) {
      await report({ error });
      throw error;
    }
    process.stdout.write(common.json ? `${JSON.stringify(outcome.json)}\n` : `${outcome.text}\n`);
    await report({ outcome });
    exitCode = outcome.exitCode;
    // A run that reported every job and then failed (a job of several failed) ends with the error line.
    if (outcome.failure) process.stderr.write(`${errorLines(outcome.failure, {}, named).join('\n')}\n`);
  }, env);
  const json = argv.includes('--json');
  try {
    await cli.parseAsync(argv);
    return exitCode;
  } catch (caught) {
    progress?.close();
    let error = caught;
    if (caught instanceof CommanderError) {
      // --help and --version end here with code 0.
      if (caught.exitCode === 0) return 0;
      const command = commandOf(argv);
      const known = cli.commands.some((c) => c.name() === command);
      operation = known ? command : undefined;
      const hint = known ? `strongbox ${command} --help` : 'strongbox --help';
      const message =
        caught.code === 'commander.help'
          ? `no command given (commands: ${cli.commands.map((c) => c.name()).join(', ')})`
          : caught.message.replace(/^error: /, '').replace(/\. /, ': ');
      error = new UsageError(`${message} (see ${hint})`);
    }
    if (env.STRONGBOX_DEBUG && error instanceof Error) {
      process.stderr.write(`${error.stack}\n`);
    }
    const context: ErrorContext = { nameEndpoint: endpointNamer(runtime) };
    const lines = errorLines(error, context, operation);
    process.stderr.write(`${lines.join('\n')}\n`);
    if (argv.includes('--nagios')) {
      // A check that could not run is UNKNOWN to Nagios, never OK or CRITICAL.
      const message = (lines.at(-1) ?? '').replace(AGENT_ERROR_PREFIX, '').replace(/\|/g, '/');
      process.stdout.write(`UNKNOWN: ${message}\n`);
      return 3;
    }
    if (json) process.stdout.write(`${JSON.stringify({ error: errorJson(error, lines, context) })}\n`);
    // A run refused because its job is already running did nothing: say so with its own status.
    return error instanceof JobLockedError ? JOB_LOCKED_EXIT : errorExitCode;
  }
}

// Exit once the output is flushed: a check that timed out may leave a syscall running (doctor).
const exitAfterFlush = (code: number) => {
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
};

main(process.argv).then(
  (code) => exitAfterFlush(code),
  (error: unknown) => {
    process.stderr.write(`${errorLines(error).join('\n')}\n`);
    exitAfterFlush(2);
  },
);
