/**
 * The resident WAL pusher (the anchors' asynchronous archive-push): a detached agent process per data
 * directory and job, started by a `wal-push` call when none runs (agent/wal-pusher-client). It keeps
 * the job's vault client open, watches `pg_wal/archive_status/*.ready` and uploads ready segments in
 * WAL order, `parallel` at a time, each through agent/wal-spool `pushOne` — which writes the segment's
 * marker `<spool>/<segment>.done` only after the vault confirmed the upload. It never touches
 * archive_status: PostgreSQL renames `.ready` to `.done` itself, once `wal-push` exited 0.
 *
 * A `wal-push` call asks it over the unix socket `<spool>/pusher.sock` for its file and exits with the
 * answer. The rule: **the answer is "archived" only for a file that is durably in the vault now** —
 * the pusher's own upload of it resolved, or its marker matches (vault, key, SHA-256 of the local file)
 * and a head request finds the object in the vault at the time of the answer (agent/wal-spool
 * `pushedAhead`). Otherwise the pusher uploads the file at once and answers with that upload's outcome:
 * an outage is a failed answer, the call exits non-zero, PostgreSQL keeps the file and retries.
 *
 * One pusher per spool: a lock file (agent/job-lock `tryLockFile`: pid, process start time, token;
 * a lock of a dead pusher is taken over). It stops when idle ({@link PUSHER_IDLE_MS} without a call or
 * an upload), when the data directory is gone, when another process holds its lock, when a caller's
 * plan, environment or agent differ from its own (that caller pushes itself; the next call starts a
 * new pusher), or on SIGTERM. Stopping aborts running uploads: the vault removes what they wrote, no
 * marker is left, the segment is uploaded again. After each answer it reports the run as `wal-push`
 * did in the foreground (agent/after-run: metrics textfile, alert on failure).
 * Memory: per concurrent upload the stages' buffers (about two encryption chunks and zstd's pipes).
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { reportRun } from '#agent/after-run';
import { errorJson, type Outcome } from '#agent/commands/outcome';
import { walPushOutcome } from '#agent/commands/wal-push';
import { tryLockFile } from '#agent/job-lock';
import { type Env, openRuntime } from '#agent/runtime';
import { walArchiveOf } from '#agent/wal';
import type { VaultWalArchive } from '#agent/wal-archive';
import {
  callerFingerprint,
  encodeMessage,
  messageReader,
  PUSHER_COMMAND,
  type PushAnswer,
  type PusherFiles,
  type PushRequest,
  pusherFiles,
  socketAddress,
} from '#agent/wal-pusher-protocol';
import { DEFAULT_WAL_PARALLEL, markerPath, pushedAhead, pushOne } from '#agent/wal-spool';
import { describeError, errorLines, UsageError } from '#core/errors';
import { WAL_SEGMENT_NAME } from '#core/wal';

/** How long a pusher with nothing to do waits for work before it exits. */
export const PUSHER_IDLE_MS = 60_000;
/** How often it looks at archive_status for ready segments. */
export const PUSHER_SCAN_MS = 200;
/** The first wait before a failed background upload is tried again (doubling up to a minute). */
const RETRY_FIRST_MS = 5_000;
const RETRY_MAX_MS = 60_000;
/** Background lines kept for the next answer (each also goes to the pusher's log). */
const PENDING_LOG_MAX = 20;

/** What a pusher reports after each answer: the `wal-push` run it stood in for. */
export interface PusherRun {
  startedAt: Date;
  outcome?: Outcome;
  error?: unknown;
}

/** Options of {@link WalPusher}. */
export interface WalPusherOptions {
  archive: VaultWalArchive;
  files: PusherFiles;
  job: string;
  /** Segments uploaded at once in the background; a call's own file may come on top. */
  parallel: number;
  /** The {@link callerFingerprint} of what the pusher was started with. */
  fingerprint: string;
  /** The pusher's own log. */
  log: (line: string) => void;
  /** Reports an answered call (agent/after-run). @default nothing */
  report?: (run: PusherRun) => Promise<void>;
  /** @default PUSHER_IDLE_MS */
  idleMs?: number;
  /** @default PUSHER_SCAN_MS */
  scanMs?: number;
  /** Whether the pusher still holds its lock (checked at each scan). @default always */
  holdsLock?: () => Promise<boolean>;
}

/** A job's resident pusher over one data directory; {@link run} it and {@link serve} its socket. */
export class WalPusher {
  readonly #o: WalPusherOptions;
  readonly #uploads = new Map<string, Promise<'stored' | 'exists'>>();
  readonly #retry = new Map<string, { at: number; delayMs: number }>();
  readonly #pendingLog: string[] = [];
  readonly #controller = new AbortController();
  #lastActivity = Date.now();
  #stopReason: string | undefined;
  #reports: Promise<void> = Promise.resolve();
  #wake: (() => void) | undefined;

  constructor(options: WalPusherOptions) {
    this.#o = options;
  }

  /** Why it stopped or is stopping; undefined while it runs. */
  get stopReason(): string | undefined {
    return this.#stopReason;
  }

  /**
   * Answers a `wal-push` call: `done` once the file is durably in the vault, `failed` with the error
   * lines when it is not, `stale` when this pusher cannot answer for the caller (it then stops).
   */
  async answer(request: PushRequest): Promise<PushAnswer> {
    this.#lastActivity = Date.now();
    if (request.fingerprint !== this.#o.fingerprint) {
      const reason = 'the plan, the environment or the agent changed since this pusher started';
      this.stop(reason);
      await this.#settled();
      return { status: 'stale', reason };
    }
    if (this.#stopReason) return { status: 'stale', reason: `the pusher is stopping: ${this.#stopReason}` };
    if (dirname(request.path) !== this.#o.files.pgWal)
      return { status: 'stale', reason: `${request.path} is not in ${this.#o.files.pgWal}` };
    const startedAt = new Date();
    const operation = `wal-push ${this.#o.job}`;
    try {
      const result = await this.#durable(basename(request.path), request.path);
      const outcome = walPushOutcome(this.#o.job, request.shownPath, result);
      this.#queueReport({ startedAt, outcome });
      return { status: 'done', exitCode: 0, json: outcome.json, text: outcome.text, log: this.#takeLog() };
    } catch (error) {
      const lines = errorLines(error, {}, operation);
      this.#queueReport({ startedAt, error });
      return { status: 'failed', lines, json: errorJson(error, lines), log: this.#takeLog() };
    } finally {
      this.#lastActivity = Date.now();
    }
  }

  /** Resolves once `name` is durably in the vault; the answer is an upload's outcome or the head check. */
  async #durable(name: string, path: string): Promise<'stored' | 'exists'> {
    const running = this.#uploads.get(name);
    if (running) {
      try {
        return await running;
      } catch {
        // A background upload that failed: the call's own upload below gives the answer.
      }
    }
    const { archive, files } = this.#o;
    if (await pushedAhead(archive, files.spool, name, path)) return 'exists';
    return this.#upload(name, path, false);
  }

  /** Uploads `name` (once at a time per name); its marker is written by pushOne after the vault confirmed. */
  #upload(name: string, path: string, background: boolean): Promise<'stored' | 'exists'> {
    const running = this.#uploads.get(name);
    if (running) return running;
    const signal = this.#controller.signal;
    const upload = pushOne(this.#o.archive, path, this.#o.files.spool, signal);
    this.#uploads.set(name, upload);
    upload.then(
      () => this.#retry.delete(name),
      (error: unknown) => {
        if (signal.aborted) return;
        const delayMs = Math.min(RETRY_MAX_MS, (this.#retry.get(name)?.delayMs ?? RETRY_FIRST_MS / 2) * 2);
        this.#retry.set(name, { at: Date.now() + delayMs, delayMs });
        if (background)
          this.#note(`push of ${name} failed (its own wal-push call retries): ${describeError(error)}`);
      },
    );
    void upload
      .catch(() => {})
      .finally(() => {
        this.#uploads.delete(name);
        this.#lastActivity = Date.now();
        this.#wake?.();
      });
    return upload;
  }

  /**
   * One look at archive_status: forgets markers of segments PostgreSQL is done with, then starts
   * uploads of ready segments without a marker, lowest first, up to `parallel` at once.
   */
  async scan(): Promise<void> {
    const { files, parallel } = this.#o;
    if (!existsSync(files.pgWal)) return this.stop('its data directory is gone');
    if (this.#o.holdsLock && !(await this.#o.holdsLock())) return this.stop('another process took its lock');
    const suffixed = async (dir: string, suffix: string) =>
      (await readdir(dir).catch(() => [] as string[]))
        .filter((entry) => entry.endsWith(suffix))
        .map((entry) => entry.slice(0, -suffix.length));
    // Uploads in flight before the markers are read: one that ends in between wrote its marker
    // before it left #uploads, so every segment is in one of the two sets (else it is uploaded twice,
    // and the second upload's "already there" could answer a call for a segment deleted since).
    const inFlight = new Set(this.#uploads.keys());
    // Markers next: a segment whose .ready is gone afterwards was acknowledged (or recycled).
    const markers = new Set(await suffixed(files.spool, '.done'));
    const ready = new Set(await suffixed(join(files.pgWal, 'archive_status'), '.ready'));
    for (const name of markers) {
      if (!ready.has(name) && !this.#uploads.has(name))
        await rm(markerPath(files.spool, name), { force: true });
    }
    const now = Date.now();
    const todo = [...ready]
      .filter(
        (name) =>
          WAL_SEGMENT_NAME.test(name) &&
          !markers.has(name) &&
          !inFlight.has(name) &&
          !this.#uploads.has(name) &&
          (this.#retry.get(name)?.at ?? 0) <= now,
      )
      .sort();
    for (const name of todo.slice(0, Math.max(0, parallel - this.#uploads.size))) {
      void this.#upload(name, join(files.pgWal, name), true).catch(() => {});
    }
  }

  /** Scans until it stops (idle, data directory gone, lock lost, {@link stop}); resolves with why. */
  async run(): Promise<string> {
    const idleMs = this.#o.idleMs ?? PUSHER_IDLE_MS;
    while (!this.#stopReason) {
      try {
        await this.scan();
      } catch (error) {
        this.#note(`looking for ready segments failed: ${describeError(error)}`);
      }
      if (this.#uploads.size === 0 && Date.now() - this.#lastActivity >= idleMs)
        this.stop(`nothing to do for ${Math.round(idleMs / 1000)} s`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#o.scanMs ?? PUSHER_SCAN_MS);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    await this.#settled();
    await this.#reports;
    return this.#stopReason;
  }

  /** Stops: running uploads are aborted (no marker), calls get `stale` and push themselves. */
  stop(reason: string): void {
    if (!this.#stopReason) {
      this.#stopReason = reason;
      this.#controller.abort(new Error(`the WAL pusher stopped: ${reason}`));
    }
    this.#wake?.();
  }

  /** Answers calls on the unix socket at `socket` (agent/wal-pusher-protocol); close it after {@link run}. */
  serve(socket: string): Promise<Server> {
    const server = createServer((connection) => {
      connection.on('error', () => {});
      const read = messageReader<PushRequest>((request) => {
        void this.answer(request).then((answer) => connection.end(encodeMessage(answer)));
      });
      connection.on('data', (chunk) => {
        try {
          read(chunk);
        } catch {
          connection.destroy();
        }
      });
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketAddress(socket), () => resolve(server));
    });
  }

  async #settled(): Promise<void> {
    await Promise.all([...this.#uploads.values()].map((upload) => upload.catch(() => {})));
  }

  #queueReport(run: PusherRun): void {
    const report = this.#o.report;
    if (report) this.#reports = this.#reports.then(() => report(run)).catch(() => {});
  }

  /** A background line: in the pusher's log now, and printed by the next call. */
  #note(line: string): void {
    this.#o.log(line);
    this.#pendingLog.push(line);
    if (this.#pendingLog.length > PENDING_LOG_MAX) this.#pendingLog.shift();
  }

  #takeLog(): string[] {
    return this.#pendingLog.splice(0);
  }
}

/** The pusher process's arguments (given by agent/wal-pusher-client, never by people). */
interface PusherArgs {
  plan: string;
  job: string;
  spool: string;
  parallel: number;
}

function parsePusherArgs(args: readonly string[]): PusherArgs {
  const value = (flag: string) => {
    const at = args.indexOf(flag);
    const found = at >= 0 ? args[at + 1] : undefined;
    if (found === undefined) throw new UsageError(`${PUSHER_COMMAND} needs ${flag}`);
    return found;
  };
  const parallel = Number(args.includes('--parallel') ? value('--parallel') : DEFAULT_WAL_PARALLEL);
  return { plan: value('--plan'), job: value('--job'), spool: value('--spool'), parallel };
}

/**
 * The pusher process (`strongbox __wal-pusher --plan P --job J --spool S --parallel N`, detached, its
 * stderr appended to `<spool>/pusher.log`): takes the lock, opens the plan, serves until it stops.
 * @returns the exit status: 0 also when another pusher already runs.
 * @example await runWalPusherProcess(['--plan', plan, '--job', 'pg', '--spool', spool], env, agentFile)
 */
export async function runWalPusherProcess(
  args: readonly string[],
  env: Env,
  agent: string,
  options: { idleMs?: number } = {},
): Promise<number> {
  const { plan, job, spool, parallel } = parsePusherArgs(args);
  const log = (line: string) =>
    process.stderr.write(
      `${new Date().toISOString()} strongbox wal-pusher ${job} [${process.pid}]: ${line}\n`,
    );
  const files = pusherFiles(spool);
  await mkdir(spool, { recursive: true, mode: 0o700 });
  const lock = await tryLockFile(files.lock, {
    what: `the WAL pusher of job ${job}`,
    command: PUSHER_COMMAND,
    now: new Date(),
    log,
  });
  if (!('path' in lock)) {
    log(`pid ${lock.heldBy.pid} pushes already: nothing to do`);
    return 0;
  }
  let server: Server | undefined;
  const holdsLock = async () =>
    (await readFile(lock.path, 'utf8').catch(() => '')).includes(lock.holder.token);
  try {
    const runtime = await openRuntime(plan, env, { log });
    const { archive } = walArchiveOf(runtime, job);
    const pusher = new WalPusher({
      archive,
      files,
      job,
      parallel,
      fingerprint: callerFingerprint(plan, job, env, agent),
      log,
      idleMs: options.idleMs,
      holdsLock,
      report: ({ startedAt, outcome, error }) =>
        reportRun(
          runtime,
          { command: 'wal-push', jobs: [job], operation: `wal-push ${job}`, startedAt, outcome, error },
          {
            fetch: globalThis.fetch,
            sleep: (ms) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
            warn: (line) => log(`warning: ${line}`),
          },
        ),
    });
    for (const name of ['SIGINT', 'SIGTERM'] as const) process.on(name, () => pusher.stop(`${name}`));
    // The lock is this process's: a socket left by a dead pusher is in the way, never in use.
    await rm(files.socket, { force: true });
    server = await pusher.serve(files.socket);
    log(`started (pid ${process.pid}, ${parallel} at once)`);
    log(`stopped: ${await pusher.run()}`);
    return 0;
  } catch (error) {
    log(`failed: ${describeError(error)}`);
    return 2;
  } finally {
    server?.close();
    // The socket is the lock holder's: a pusher that lost its lock leaves it to the new holder.
    if (await holdsLock()) await rm(files.socket, { force: true });
    await lock.release();
  }
}
