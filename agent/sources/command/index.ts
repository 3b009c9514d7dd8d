/**
 * The command source driver: a plan command's stdout is the backup's one object; a restore command reads
 * it on stdin inside a new target directory; an optional check command tests the restored target.
 * Every command runs without a shell unless the plan gives a `shell:` line, in its own process group,
 * under its timeout; secrets reach it through its environment only. A command that fails, writes nothing
 * or exceeds its timeout errors the stream and `done`, so the backup never gets a manifest.
 */
import { access, constants, rm, stat } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startCommand } from '#agent/pipeline/command';
import { drainedOrClosed, settleAll } from '#agent/pipeline/flow';
import { Meter } from '#agent/pipeline/meter';
import { type CommandSpec, describeCommand } from '#core/command';
import { describeError, RestoreError, SourceError, StrongboxError } from '#core/errors';
import type { DoctorCheck, SourceBackup, SourceContext, SourceDriver, TargetCheck } from '#core/ports';
import { commandSource } from '#core/sources/command';
import type { CommandDetails, CommandSourceConfig } from '#core/sources/index';
import { claimNewDirectory, directoryTargets, EndGate, oneObject, probe } from '../kit';

/** Characters of a check command's stdout kept for the check's detail. */
const CHECK_OUTPUT_CHARS = 2_000;

/**
 * Starts the backup command; its stdout is the object `data`, which ends only once the command exited 0
 * having written at least one byte.
 * @throws PlanError when a secret the command needs is missing.
 */
export async function backupCommand(
  config: CommandSourceConfig,
  ctx: SourceContext,
): Promise<SourceBackup<CommandDetails>> {
  const command = describeCommand(config.backup);
  const tool = await startCommand(config.backup, { where: 'source.backup', ctx });
  const meter = new Meter();
  const gate = new EndGate(async () => {
    await tool.done;
    if (meter.bytes === 0) throw new SourceError(`source.backup (${command}) wrote nothing to stdout`);
  });
  const output = tool.stdout
    ? pipeline(tool.stdout, meter, gate)
    : Promise.reject(new SourceError('the backup command has no stdout'));
  const done = (async () => {
    try {
      await Promise.all([tool.done, output]);
      if (meter.bytes === 0) throw new SourceError(`source.backup (${command}) wrote nothing to stdout`);
      const details: CommandDetails = {
        kind: 'command',
        command,
        streamBytes: meter.bytes,
        streamSha256: meter.sha256(),
      };
      return { details, tools: {} };
    } catch (error) {
      const failure =
        error instanceof StrongboxError
          ? error
          : new SourceError(`source.backup (${command}) failed: ${describeError(error)}`, { cause: error });
      gate.destroy(failure);
      tool.child.pid === undefined || tool.child.exitCode !== null || tool.child.kill('SIGTERM');
      throw failure;
    }
  })();
  done.catch(() => {});
  return { objects: oneObject(gate), done };
}

/**
 * Restores into `target`, a directory this creates (it must not exist): the restore command runs in it
 * with the backup on stdin and must read all of it and exit 0. On any failure the directory is removed
 * and the first error rethrown (the input's own, e.g. an IntegrityError, when the input failed).
 */
export async function restoreCommand(
  config: CommandSourceConfig,
  input: Readable | (() => Promise<Readable>),
  target: string,
  ctx: SourceContext,
): Promise<void> {
  await claimNewDirectory(target, 'command');
  const controller = new AbortController();
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, controller.signal]) : controller.signal;
  try {
    const stream = typeof input === 'function' ? await input() : input;
    const tool = await startCommand(config.restore, {
      where: 'source.restore',
      ctx: { ...ctx, signal },
      cwd: target,
      stdin: 'pipe',
      stdout: 'ignore',
      extraEnv: { STRONGBOX_TARGET: target },
    });
    const feeding = tool.stdin
      ? feedStdin(stream, tool.stdin).then(async (everyByte) => {
          if (everyByte) return;
          // The command closed its stdin: how it ended (a status, a timeout) says more than the pipe.
          await tool.done.catch((ended: unknown) => {
            throw new RestoreError(describeError(ended), { cause: ended });
          });
          throw new RestoreError(
            `source.restore (${describeCommand(config.restore)}) stopped reading before the end of the backup`,
          );
        })
      : Promise.reject(new RestoreError('the restore command has no stdin'));
    const ran = tool.done.catch((error: unknown) => {
      throw new RestoreError(describeError(error), { cause: error });
    });
    await settleAll([feeding, ran], controller);
  } catch (error) {
    await rm(target, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Runs the check command in a restored target (`check` is its exit status, its stdout the detail); one
 * check `check-command`. Without a check command the check passes, saying nothing was checked beyond
 * the restore command reading the whole authenticated backup and exiting 0.
 */
export async function checkCommand(
  config: CommandSourceConfig,
  details: CommandDetails,
  target: string,
  ctx: SourceContext,
): Promise<TargetCheck[]> {
  const exists = await stat(target).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!exists) return [failed(`the restore target ${target} does not exist`)];
  if (!config.check) {
    return [
      {
        check: 'check-command',
        passed: true,
        detail:
          'no check command in the plan: nothing was checked beyond the restore command reading the whole authenticated backup and exiting 0',
        findings: [],
      },
    ];
  }
  const command = describeCommand(config.check);
  const tool = await startCommand(config.check, {
    where: 'source.check',
    ctx,
    cwd: target,
    extraEnv: {
      STRONGBOX_TARGET: target,
      STRONGBOX_STREAM_BYTES: String(details.streamBytes),
      STRONGBOX_STREAM_SHA256: details.streamSha256,
    },
  });
  let output = '';
  tool.stdout?.on('data', (chunk: Buffer) => {
    if (output.length < CHECK_OUTPUT_CHARS) output += chunk.toString('utf8');
  });
  const reading = new Promise<void>((resolve) => {
    if (!tool.stdout) return resolve();
    tool.stdout.on('close', () => resolve());
    tool.stdout.on('error', () => resolve());
  });
  try {
    await Promise.all([tool.done, reading]);
  } catch (error) {
    await reading;
    const said = output.trim().slice(0, CHECK_OUTPUT_CHARS);
    return [failed(`${describeError(error)}${said ? `\nstdout:\n${said}` : ''}`)];
  }
  const said = output.trim().slice(0, CHECK_OUTPUT_CHARS);
  return [
    {
      check: 'check-command',
      passed: true,
      detail: `${command} exited 0${said ? `: ${said}` : ''}`,
      findings: [],
    },
  ];
}

function failed(message: string): TargetCheck {
  return {
    check: 'check-command',
    passed: false,
    detail: message,
    findings: [{ job: '', severity: 'critical', check: 'check-command', message }],
  };
}

/** Each command's program can be found, and the secrets it names are there (not their values). */
async function doctorCommand(config: CommandSourceConfig, ctx: SourceContext): Promise<DoctorCheck[]> {
  const entries: [string, CommandSpec | undefined][] = [
    ['source.backup', config.backup],
    ['source.restore', config.restore],
    ['source.check', config.check],
  ];
  const checks: DoctorCheck[] = [];
  for (const [where, command] of entries) {
    if (!command) {
      checks.push({
        ok: false,
        warning: true,
        subject: where,
        detail: 'no check command: drills check only that the restore command read everything and exited 0',
      });
      continue;
    }
    checks.push(
      await probe(where, async () => {
        const program = command.argv ? (command.argv[0] as string) : '/bin/sh';
        await findProgram(program, ctx.env.PATH ?? '/usr/local/bin:/usr/bin:/bin');
        for (const [name, ref] of Object.entries(command.secretEnv)) {
          if ('env' in ref && !ctx.env[ref.env]) {
            throw new SourceError(`secretEnv.${name}: environment variable ${ref.env} is not set`);
          }
        }
        return `${describeCommand(command)} (timeout ${command.timeout}s)`;
      }),
    );
  }
  return checks;
}

/** Resolves a program like execvp would. @throws SourceError when it is not found or not executable. */
async function findProgram(program: string, path: string): Promise<string> {
  const candidates = program.includes('/')
    ? [program]
    : path.split(':').map((dir) => `${dir || '.'}/${program}`);
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  throw new SourceError(`${program} not found on PATH or not executable`);
}

/** The `command` driver. */
export const commandDriver: SourceDriver<'command'> = {
  /** The restore command puts the data where it belongs (docker load, kubectl apply): nothing to look at. */
  originalTarget: async (config) => ({
    target: `source.restore (${describeCommand(config.restore)})`,
    via: 'scratch',
    occupied: [],
  }),
  spec: commandSource,
  backup: backupCommand,
  restore: (config, input, { target, ctx }) => restoreCommand(config, () => input.only(), target, ctx),
  check: (config, details, { target, ctx }) => checkCommand(config, details, target, ctx),
  doctor: doctorCommand,
  ...directoryTargets,
};

/**
 * Writes `input` into a command's stdin with backpressure and ends it. Resolves whether the command took
 * every byte: false when a write failed or stdin closed with input left (the rest is still read — and so
 * authenticated — into nothing). A command that exits right after the last byte, before the pipe's end is
 * acknowledged (`tar -x` after its last record), took every byte. Rejects with the input's own error.
 */
async function feedStdin(input: Readable, stdin: Writable): Promise<boolean> {
  let lost = false;
  let open = true;
  const written = (error?: Error | null) => {
    if (error) lost = true;
  };
  for await (const chunk of input) {
    if (!open || stdin.destroyed) {
      open = false;
      lost = true;
      continue;
    }
    if (!stdin.write(chunk, written)) open = await drainedOrClosed(stdin);
  }
  if (open && !stdin.destroyed) stdin.end();
  await new Promise((resolve) => setImmediate(resolve));
  return !lost;
}
