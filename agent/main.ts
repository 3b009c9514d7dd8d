#!/usr/bin/env node
/**
 * The `strongbox` CLI. The one place in the agent that reads `process.env`, writes to stdout and turns
 * errors into exit codes: 0 ok, 1 warning, 2 error (and 3 for `verify --nagios` when it cannot check). On failure the last line on stderr is
 * `strongbox: error: <what went wrong>` (SSM keeps only the tail of a command's output).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { backupCommand } from '#agent/commands/backup';
import { DEFAULT_PROBE_TIMEOUT_SECONDS, doctorCommand } from '#agent/commands/doctor';
import { drillCommand } from '#agent/commands/drill';
import { keygenCommand } from '#agent/commands/keygen';
import { listCommand } from '#agent/commands/list';
import type { Outcome } from '#agent/commands/outcome';
import { errorJson } from '#agent/commands/outcome';
import { pruneCommand } from '#agent/commands/prune';
import { parseRestoreOptions, restoreCommand } from '#agent/commands/restore';
import { verifyCommand } from '#agent/commands/verify';
import { WAL_FETCH_FATAL_EXIT, walFetchCommand } from '#agent/commands/wal-fetch';
import { walPushCommand } from '#agent/commands/wal-push';
import { type TerminalProgress, terminalProgress } from '#agent/progress';
import { openRuntime, type Runtime } from '#agent/runtime';
import { VERSION } from '#agent/version';
import { isBackupId } from '#core/backup-id';
import { AGENT_ACTIONS, AGENT_ERROR_PREFIX } from '#core/deployment';
import { type ErrorContext, errorLines, InterruptedError, UsageError } from '#core/errors';
import { TIERS, type Tier } from '#core/tiers';

interface Common {
  plan: string;
  json?: boolean;
  quiet?: boolean;
}

/** What a run is doing, for its error line: `backup app-db`, `verify`. */
type Operation = string;

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

/** `--job` for commands that act on one job (restore). */
function oneJob(value: string, previous: string | undefined): string {
  if (previous !== undefined || value.includes(',')) {
    throw new InvalidArgumentError('names one job here; run the command once per job');
  }
  return value;
}

/** `backup app-db`, `backup app-db,media`, `backup` (every job). */
function operationOf(command: string, jobs?: string | readonly string[]): Operation {
  const names = typeof jobs === 'string' ? [jobs] : (jobs ?? []);
  return names.length ? `${command} ${[...new Set(names)].join(',')}` : command;
}

const JOBS_HELP = 'only these jobs: repeat --job or separate names with commas (default: every job)';

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
    options?: { plan: boolean },
  ) => Promise<void>,
) {
  const program = new Command('strongbox')
    .description(
      'Back up PostgreSQL databases and file trees into an encrypted vault (file:// or S3), and prove ' +
        `they restore. Exit status: 0 ok, 1 warning, 2 error. Actions the AWS document runs: ${AGENT_ACTIONS.join(', ')}.`,
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
          'a backup whose source bytes shrank under limits.shrinkRatio or grew past limits.growthRatio ' +
          'times the recent median is a warning (exit 1)',
      ),
  )
    .option('-j, --job <names>', JOBS_HELP, jobNames)
    .option('--backup-id <id>', 'backup id to write (default: a new one from the clock)', backupIdArg)
    .addOption(new Option('--tier <tier>', 'GFS tier (default: from the previous backup)').choices(TIERS))
    .action((o: Common & { job?: string[]; backupId?: string; tier?: Tier }) =>
      run(
        (rt) => backupCommand(rt, { jobs: o.job, backupId: o.backupId, tier: o.tier }),
        o,
        operationOf('backup', o.job),
      ),
    );

  withPlan(
    program
      .command('restore')
      .description(
        'restore a backup into a new scratch target (default), or --replace the live database: restore ' +
          'beside it, check it, swap names in one transaction and keep the old one. Every chunk is ' +
          'authenticated before use; a failed restore removes what it created.',
      ),
  )
    .requiredOption('-j, --job <name>', 'job whose backup to restore (one)', oneJob)
    .option('--backup-id <id>', 'backup to restore (default: the newest complete one)', backupIdArg)
    .option('--target <name>', 'database (postgres) or empty directory (files) to restore into')
    .option(
      '--tables <list>',
      'comma-separated tables to restore (postgres; schema.table or table): each with its partitions, types, sequences, keys, constraints, indexes, triggers and privileges; not foreign keys to tables left out',
    )
    .option('--replace', 'replace the live database (postgres): safety backup, restore beside, check, swap')
    .option('--confirm <job>', 'required with --replace: the job name again')
    .option(
      '--to <target>',
      'point-in-time jobs: replay the WAL archive to latest, time:<ISO time with offset>, lsn:<lsn>, xid:<xid> or name:<restore point>, then promote',
    )
    .option(
      '--start',
      'point-in-time jobs: start the restored copy on a free port and wait until it is promoted',
    )
    .option('--options <json>', 'the same options as one JSON object (used by the AWS document)')
    .action((o: Common & Record<string, string | boolean | undefined>) =>
      run((rt) => restoreCommand(rt, parseRestoreOptions(o)), o, operationOf('restore', o.job as string)),
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
    .action((o: Common & { job?: string[]; options?: string }) =>
      run((rt) => drillCommand(rt, { jobs: o.job, options: o.options }), o, operationOf('drill', o.job)),
    );

  withPlan(
    program
      .command('list')
      .description(
        'inventory per job, like pgBackRest info: backups by tier, oldest and newest, age of the newest, ' +
          'stored and source bytes, the recovery window of point-in-time jobs; then each backup with its ' +
          'tier, age, sizes, duration and status (complete, warnings, safety, incomplete); reads manifests ' +
          'only (no data, no archive retrievals); exit 0',
      ),
  )
    .option('-j, --job <names>', JOBS_HELP, jobNames)
    .action((o: Common & { job?: string[] }) =>
      run((rt) => listCommand(rt, { jobs: o.job }), o, operationOf('list', o.job)),
    );

  withPlan(
    program
      .command('verify')
      .description(
        'check each job as the AWS verify function does: newest backup age against its limits, objects ' +
          'present with their sizes, source size against the recent median (shrink and growth), GFS tier coverage, incomplete ' +
          'backups; --deep also reads a backup back (decrypt, authenticate, decompress, checksum) ' +
          'without restoring it',
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
    .action((o: Common & { job?: string[]; deep?: boolean; backupId?: string; nagios?: boolean }) =>
      run(
        (rt) => {
          if (o.nagios && o.json)
            throw new UsageError('--nagios and --json are two output formats: choose one');
          return verifyCommand(rt, { jobs: o.job, deep: o.deep, backupId: o.backupId, nagios: o.nagios });
        },
        o,
        operationOf('verify', o.job),
      ),
    );

  withPlan(
    program
      .command('prune')
      .description("apply the plan's retention to the vault and remove stale incomplete backups"),
  )
    .option('-j, --job <names>', JOBS_HELP, jobNames)
    .option('-n, --dry-run', 'only say what would be deleted')
    .action((o: Common & { job?: string[]; dryRun?: boolean }) =>
      run((rt) => pruneCommand(rt, { jobs: o.job, dryRun: o.dryRun }), o, operationOf('prune', o.job)),
    );

  withPlan(
    program
      .command('doctor')
      .description(
        "check tools, database access, vault write access, key use and free space, and the bucket's Object " +
          'Lock when the plan sets vault.objectLock; one line per check',
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
      ),
    );

  // WAL archiving of point-in-time jobs: PostgreSQL's archive_command and restore_command.
  withPlan(
    program
      .command('wal-push')
      .description(
        'archive_command: compress, encrypt and store one WAL file; exit 0 only once it is durably in the vault (the same content already archived is fine, other content fails)',
      ),
  )
    .requiredOption('-j, --job <name>', 'the point-in-time job whose archive it is')
    .argument('<path>', "the file to archive (PostgreSQL's %p)")
    .action((path: string, o: Common & { job: string }) =>
      run((rt) => walPushCommand(rt, { job: o.job, path }), o, operationOf('wal-push', o.job)),
    );
  withPlan(
    program
      .command('wal-fetch')
      .description(
        `restore_command: fetch, authenticate and decrypt one archived WAL file; exit 1 when it is not archived, ${WAL_FETCH_FATAL_EXIT} (recovery stops) when it fails authentication or the vault cannot be read`,
      ),
  )
    .requiredOption('-j, --job <name>', 'the point-in-time job whose archive it is')
    .argument('<name>', "the WAL file wanted (PostgreSQL's %f)")
    .argument('<path>', "where to write it (PostgreSQL's %p)")
    .action((name: string, path: string, o: Common & { job: string }) => {
      errorExitCode = WAL_FETCH_FATAL_EXIT;
      return run((rt) => walFetchCommand(rt, { job: o.job, name, path }), o, operationOf('wal-fetch', o.job));
    });

  program
    .command('keygen')
    .description('create a new local master key file (mode 0600; refuses to overwrite)')
    .argument('<path>', 'where to write the key')
    .option('--json', 'print one JSON object on stdout')
    .action((path: string, o: { json?: boolean }) =>
      run(() => keygenCommand(path), { plan: '', json: o.json }, `keygen ${path}`, { plan: false }),
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
  let progress: TerminalProgress | undefined;
  const cli = buildCli(async (action, common, named, options = { plan: true }) => {
    operation = named;
    // A progress line only for a person at a terminal: never with --json, --quiet or --nagios, never in
    // cron mail or SSM output (stderr not a TTY).
    const tty = process.stderr.isTTY && !common.json && !common.quiet && !argv.includes('--nagios');
    progress = tty ? terminalProgress(process.stderr) : undefined;
    if (options.plan) {
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
    }
    const outcome = await action(runtime as Runtime).finally(() => progress?.close());
    process.stdout.write(common.json ? `${JSON.stringify(outcome.json)}\n` : `${outcome.text}\n`);
    exitCode = outcome.exitCode;
    // A run that reported every job and then failed (a job of several failed) ends with the error line.
    if (outcome.failure) process.stderr.write(`${errorLines(outcome.failure, {}, named).join('\n')}\n`);
  });
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
    return errorExitCode;
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
