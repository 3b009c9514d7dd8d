/**
 * Child processes for the tools Strongbox drives (pg_dump, zstd, tar, redis-cli …): one way to start
 * them, one way to learn how they ended.
 *
 * `spawnTool` never throws: a tool that cannot start, exits non-zero or dies from a signal rejects
 * `done` with a {@link SourceError} naming the tool, how it ended and the last lines of its stderr. Only
 * the tool's name appears in messages, never its arguments or environment (the environment can hold
 * passwords such as PGPASSWORD). Memory: stderr is kept as a tail of at most {@link STDERR_TAIL_LINES}
 * lines of at most {@link STDERR_LINE_CHARS} characters each, however much the tool writes.
 */
import { type ChildProcess, ChildProcess as ChildProcessClass, spawn } from 'node:child_process';
import { accessSync, constants as fs } from 'node:fs';
import { basename, delimiter, isAbsolute, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { SourceError } from '#core/errors';

/** Lines of stderr kept for error messages. */
export const STDERR_TAIL_LINES = 20;
/** Characters kept of one stderr line (longer lines are cut). */
export const STDERR_LINE_CHARS = 500;

/** How to start a tool. */
export interface SpawnToolOptions {
  /** The complete environment of the child (not merged with anything). @default the agent's own */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Kills the child (SIGTERM) when aborted; `done` then rejects. */
  signal?: AbortSignal;
  /** @default 'pipe' */
  stdin?: 'pipe' | 'ignore';
  /**
   * 'pipe', 'ignore', or another child's stdin (a pipe socket): the tool then writes into that pipe
   * itself, without the agent in between. @default 'pipe'
   */
  stdout?: 'pipe' | 'ignore' | Writable;
  /** Name of the tool in messages. @default the command's base name */
  name?: string;
  /** Exit statuses that count as success (GNU tar's 1 means "some files changed"). @default [0] */
  okExitCodes?: readonly number[];
  /** Called with every complete line of stderr (besides the bounded tail kept for messages). */
  onStderrLine?: (line: string) => void;
  /**
   * Kills the tool once it has run this long; `done` then rejects saying it exceeded its timeout.
   * @default no limit
   */
  timeoutSeconds?: number;
  /**
   * Starts the tool in a process group of its own and signals the whole group, so a shell's children
   * (a pipeline under `sh -c`) die with it and no orphan keeps its pipes open. SIGKILL follows SIGTERM
   * after {@link KILL_GRACE_MS}.
   */
  processGroup?: boolean;
  /**
   * Size of the tool's stdio output buffer: the tool is started under coreutils' `stdbuf -o<bytes>`
   * when the host has it (found on the PATH of `env`), so a tool that writes stdout through stdio
   * (pg_dump) makes a few large writes instead of one per 4 KiB, its reader far fewer wake-ups and
   * reads. Without stdbuf, or when the command itself is not found, the tool is started as it is.
   * @default the tool's own buffering
   */
  stdoutBufferBytes?: number;
}

/** How long a tool has between SIGTERM and SIGKILL when it runs in its own process group. */
export const KILL_GRACE_MS = 2_000;

/** A running tool. */
export interface ToolProcess {
  child: ChildProcess;
  /** The child's stdin, or null when `stdin: 'ignore'`. */
  stdin: Writable | null;
  /** The child's stdout, or null when `stdout: 'ignore'`. */
  stdout: Readable | null;
  /**
   * Resolves when the tool exited with one of `okExitCodes` (and its stderr was read to the end);
   * rejects with a SourceError otherwise. Already marked as handled: not awaiting it never crashes the
   * process.
   */
  done: Promise<void>;
  /** Like `done`, resolving with the exit status (for tools with several successful ones). */
  exitStatus: Promise<number>;
}

/** Debian packages of tools that are often missing, for "not found" messages. */
const PACKAGES: Record<string, string> = {
  zstd: 'zstd',
  pg_dump: 'postgresql-client',
  pg_restore: 'postgresql-client',
  psql: 'postgresql-client',
  pg_basebackup: 'postgresql-client',
  'redis-cli': 'redis-tools',
  influxd: 'influxdb',
  tar: 'tar',
};

/**
 * Starts a tool. stderr is always read by this function (into a bounded tail); stdin and stdout are
 * the caller's to use.
 * @example
 * const dump = spawnTool('pg_dump', ['-Fc', '-Z0', 'app'], { env, signal });
 * await Promise.all([pipeline(dump.stdout!, output), dump.done]);
 */
export function spawnTool(command: string, args: string[], options: SpawnToolOptions = {}): ToolProcess {
  const name = options.name ?? basename(command);
  const stdbuf =
    options.stdoutBufferBytes === undefined ? undefined : findStdbuf(command, options.env ?? process.env);
  let child: ChildProcess;
  try {
    const [file, argv] = stdbuf
      ? [stdbuf, [`-o${options.stdoutBufferBytes}`, command, ...args]]
      : [command, args];
    child = spawn(file, argv, {
      env: options.env as NodeJS.ProcessEnv | undefined,
      cwd: options.cwd,
      stdio: [options.stdin ?? 'pipe', options.stdout ?? 'pipe', 'pipe'],
      detached: options.processGroup ?? false,
    });
  } catch (error) {
    // Synchronous failures: bad arguments (a NUL byte), bad cwd type. Same shape as an async failure.
    return failedTool(options, new SourceError(`${name} could not be started`, { cause: error }));
  }

  const tail = new StderrTail(options.onStderrLine);
  const okExitCodes = options.okExitCodes ?? [0];
  const stderrClosed = new Promise<void>((resolve) => {
    if (!child.stderr) return resolve();
    child.stderr.on('data', (data: Buffer) => tail.write(data));
    child.stderr.on('error', () => resolve());
    child.stderr.on('close', () => resolve());
  });
  // The caller owns stdin; a tool that exits early makes writes fail with EPIPE. Its exit status
  // (in `done`) is what counts, and pipeline() still sees the error through its own listener.
  child.stdin?.on('error', () => {});

  let exited = false;
  let graceTimer: NodeJS.Timeout | undefined;
  const kill = () => {
    if (exited) return;
    if (!options.processGroup || child.pid === undefined) {
      child.kill('SIGTERM');
      return;
    }
    const group = child.pid;
    try {
      process.kill(-group, 'SIGTERM');
    } catch {
      child.kill('SIGTERM');
    }
    graceTimer = setTimeout(() => {
      try {
        process.kill(-group, 'SIGKILL');
      } catch {
        // The group is gone.
      }
    }, KILL_GRACE_MS);
    graceTimer.unref();
  };
  let timedOut = false;
  const timer =
    options.timeoutSeconds === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          kill();
        }, options.timeoutSeconds * 1000);
  timer?.unref();
  const signal = options.signal;
  const onAbort = () => kill();
  const exitStatus = new Promise<number>((resolve, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      exited = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (error.code === 'ENOENT') {
        const pkg = PACKAGES[name];
        reject(
          new SourceError(
            `${name} not found: install it${pkg ? ` (apt-get install ${pkg})` : ''} or put it on PATH`,
            { cause: error },
          ),
        );
      } else {
        reject(new SourceError(`${name} could not be started: ${error.message}`, { cause: error }));
      }
    });
    child.once('exit', (code, exitSignal) => {
      exited = !options.processGroup;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      void stderrClosed.then(() => {
        exited = true;
        clearTimeout(graceTimer);
        const lines = tail.lines();
        if (code !== null && okExitCodes.includes(code) && !timedOut) return resolve(code);
        const stderr = lines.length ? `:\n${lines.join('\n')}` : ' (no output on stderr)';
        if (timedOut) {
          reject(
            new SourceError(
              `${name} exceeded its timeout of ${options.timeoutSeconds}s and was stopped${stderr}`,
            ),
          );
        } else if (signal?.aborted) {
          reject(
            new SourceError(`${name} was stopped because the operation was aborted`, {
              cause: signal.reason,
            }),
          );
        } else if (exitSignal) {
          reject(new SourceError(`${name} was killed by ${exitSignal}${stderr}`));
        } else {
          reject(new SourceError(`${name} exited with status ${code}${stderr}`));
        }
      });
    });
  });
  exitStatus.catch(() => {});
  const done = exitStatus.then(() => {});
  done.catch(() => {});

  if (signal) {
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  return { child, stdin: child.stdin, stdout: child.stdout, done, exitStatus };
}

/**
 * coreutils' stdbuf on the PATH of `env`, when both it and `command` are there (so a missing tool still
 * fails as "not found", not as stdbuf's exit status); undefined otherwise.
 */
function findStdbuf(command: string, env: Record<string, string | undefined>): string | undefined {
  const dirs = (env.PATH ?? '').split(delimiter).filter((dir) => isAbsolute(dir));
  const executable = (path: string) => {
    try {
      accessSync(path, fs.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  const onPath = (file: string) => dirs.map((dir) => join(dir, file)).find(executable);
  const found = command.includes('/') ? executable(command) : onPath(command) !== undefined;
  return found ? onPath('stdbuf') : undefined;
}

/** A ToolProcess for a tool that never started: streams that fail with the error, `done` rejected. */
function failedTool(options: SpawnToolOptions, error: SourceError): ToolProcess {
  const stdin =
    (options.stdin ?? 'pipe') === 'pipe' ? new Writable({ write: (_c, _e, cb) => cb(error) }) : null;
  const stdout = (options.stdout ?? 'pipe') === 'pipe' ? new Readable({ read() {} }) : null;
  stdin?.on('error', () => {});
  stdout?.destroy(error);
  stdout?.on('error', () => {});
  const exitStatus = Promise.reject(error);
  exitStatus.catch(() => {});
  const done = exitStatus.then(() => {});
  done.catch(() => {});
  return { child: new ChildProcessClass(), stdin, stdout, done, exitStatus };
}

/** Characters of one stderr line passed to `onStderrLine` (longer lines are cut). */
const STDERR_LINE_CALLBACK_CHARS = 64 * 1024;

/** Keeps the last lines of a stream of text, bounded in count and length; passes each line on if asked. */
class StderrTail {
  readonly #decoder = new StringDecoder('utf8');
  readonly #lines: string[] = [];
  readonly #onLine: ((line: string) => void) | undefined;
  #partial = '';
  #ended = false;

  constructor(onLine?: (line: string) => void) {
    this.#onLine = onLine;
  }

  write(data: Buffer): void {
    const text = this.#partial + this.#decoder.write(data);
    const parts = text.split('\n');
    const keep = this.#onLine ? STDERR_LINE_CALLBACK_CHARS : STDERR_LINE_CHARS;
    this.#partial = (parts.pop() ?? '').slice(0, keep);
    for (const line of parts) this.#onLine?.(line.replace(/\r$/, ''));
    for (const line of parts.slice(-STDERR_TAIL_LINES)) this.#add(line);
  }

  /** The kept lines; the first call also passes on the last line when it has no newline. */
  lines(): string[] {
    if (!this.#ended) {
      this.#ended = true;
      const rest = this.#partial + this.#decoder.end();
      this.#partial = '';
      if (rest.trim()) {
        this.#onLine?.(rest);
        this.#add(rest);
      }
    }
    return this.#lines.filter((line) => line.trim() !== '').slice(-STDERR_TAIL_LINES);
  }

  #add(line: string): void {
    const trimmed = line.replace(/\r$/, '');
    this.#lines.push(
      trimmed.length > STDERR_LINE_CHARS ? `${trimmed.slice(0, STDERR_LINE_CHARS)}…` : trimmed,
    );
    if (this.#lines.length > STDERR_TAIL_LINES) this.#lines.shift();
  }
}

/**
 * The first line of `<command> --version` (or of the given arguments), e.g. `pg_dump (PostgreSQL) 15.18`.
 * @throws SourceError when the tool is missing or fails.
 * @example await toolVersion('zstd') // '*** Zstandard CLI (64-bit) v1.5.4, by Yann Collet ***'
 */
export async function toolVersion(command: string, args: string[] = ['--version']): Promise<string> {
  const tool = spawnTool(command, args, { stdin: 'ignore' });
  const chunks: Buffer[] = [];
  let size = 0;
  tool.stdout?.on('data', (chunk: Buffer) => {
    if (size < 64 * 1024) chunks.push(chunk);
    size += chunk.length;
  });
  const closed = new Promise<void>((resolve) => {
    if (!tool.stdout) return resolve();
    tool.stdout.on('close', () => resolve());
    tool.stdout.on('error', () => resolve());
  });
  await tool.done;
  await closed;
  const first = Buffer.concat(chunks).toString('utf8').split('\n')[0]?.trim();
  if (!first) {
    throw new SourceError(`${basename(command)} printed no version`);
  }
  return first;
}

/**
 * Whether a process of this host with that pid runs (as any user: `EPERM` says it does). A pid can be
 * reused after its process ended; callers that must know it is the same process compare its start time
 * too (agent/job-lock.ts).
 */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
