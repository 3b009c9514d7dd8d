/**
 * The cheap `wal-push`: PostgreSQL runs archive_command once per segment, and a full agent start costs
 * far more CPU than answering it. agent/main.ts runs this first, with Node built-ins only, and loads
 * the rest of the agent (agent/cli) only when this declines.
 *
 * For `wal-push --plan P --job J [-q] [--json] [--parallel N>1] <path in pg_wal/>` it asks the job's
 * resident pusher (agent/wal-pusher) over `<spool>/pusher.sock`, starting it (detached, stderr to
 * `<spool>/pusher.log`) when none answers, and exits with the pusher's answer: 0 only when the pusher
 * says the file is durably in the vault, 2 with the pusher's error lines when it is not (an outage:
 * PostgreSQL keeps the file and retries). Whenever the pusher cannot answer for this call — it does not
 * start within {@link PUSHER_START_MS}, it stops or dies before answering, it serves another plan,
 * environment or agent, or gives no answer within {@link PUSHER_ANSWER_MS} (then it is killed first,
 * so it uploads nothing behind this call's back) — this declines and the full agent pushes the file
 * itself, as without a pusher. Anything else (other options, a path outside pg_wal/, `--parallel 1`)
 * is declined at once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import {
  agentFile,
  callerFingerprint,
  encodeMessage,
  messageReader,
  PUSHER_COMMAND,
  type PushAnswer,
  type PusherFiles,
  pusherFiles,
  socketAddress,
  spoolOf,
} from '#agent/wal-pusher-protocol';

/** How long a call waits for a pusher it started to listen. */
export const PUSHER_START_MS = 10_000;
/** How long a call waits for the pusher's answer about its file before it pushes the file itself. */
export const PUSHER_ANSWER_MS = 120_000;
/** The pusher's log is started afresh when it is larger than this. */
const PUSHER_LOG_MAX_BYTES = 1024 * 1024;

/** A `wal-push` call the fast path can answer. */
export interface FastPushCall {
  plan: string;
  job: string;
  path: string;
  quiet: boolean;
  json: boolean;
  parallel: number;
}

/**
 * The call, when `args` (argv after the script) is exactly a wal-push the fast path answers;
 * undefined for anything else (the full CLI then parses, reports usage errors and pushes).
 * @example parseFastWalPush(['wal-push', '--plan', 'p.yaml', '--job', 'pg', '-q', 'pg_wal/000000010000000000000003'])
 */
export function parseFastWalPush(args: readonly string[], defaultParallel: number): FastPushCall | undefined {
  if (args[0] !== 'wal-push') return undefined;
  const call: Partial<FastPushCall> = { quiet: false, json: false, parallel: defaultParallel };
  const positional: string[] = [];
  for (let i = 1; i < args.length; i++) {
    const arg = args[i] as string;
    const next = () => args[++i];
    if (arg === '-p' || arg === '--plan') call.plan = next();
    else if (arg === '-j' || arg === '--job') call.job = next();
    else if (arg === '-q' || arg === '--quiet') call.quiet = true;
    else if (arg === '--json') call.json = true;
    else if (arg === '--parallel') {
      const count = Number(next());
      if (!Number.isInteger(count) || count < 1 || count > 32) return undefined;
      call.parallel = count;
    } else if (arg.startsWith('-')) return undefined;
    else positional.push(arg);
  }
  if (!call.plan || !call.job || positional.length !== 1 || (call.parallel ?? 1) < 2) return undefined;
  return { ...(call as FastPushCall), path: positional[0] as string };
}

/** What the fast path needs from its process. */
export interface FastPathProcess {
  argv: readonly string[];
  execArgv: readonly string[];
  env: Readonly<Record<string, string | undefined>>;
  /** Whether this is the single executable (node:sea `isSea()`). */
  sea: boolean;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/**
 * Answers a `wal-push` through the resident pusher.
 * @returns the exit status, or undefined when the full agent must run the command.
 */
export async function walPushFastPath(
  proc: FastPathProcess,
  defaultParallel: number,
): Promise<number | undefined> {
  const call = parseFastWalPush(proc.argv.slice(2), defaultParallel);
  if (!call) return undefined;
  const spool = spoolOf(call.path, call.job, 'push');
  if (!spool) return undefined;
  const say = (line: string) => {
    if (!call.quiet) proc.stderr(`strongbox: ${line}\n`);
  };
  const files = pusherFiles(spool);
  const agent = agentFile(proc.sea, proc.argv);
  const request = {
    path: resolve(call.path),
    shownPath: call.path,
    fingerprint: callerFingerprint(call.plan, call.job, proc.env, agent),
  };
  const socket = (await connectTo(files.socket)) ?? (await startPusher(proc, call, files, agent));
  if (!socket) {
    say(`the WAL pusher did not start (see ${files.log}): pushing ${call.path} in this call`);
    return undefined;
  }
  const answer = await ask(socket, request, PUSHER_ANSWER_MS);
  if (answer === 'timeout') {
    say(
      `no answer from the WAL pusher in ${PUSHER_ANSWER_MS / 1000} s: stopped it, pushing ${call.path} in this call`,
    );
    await killPusher(files);
    return undefined;
  }
  if (!answer) {
    say(`the WAL pusher ended without answering (see ${files.log}): pushing ${call.path} in this call`);
    return undefined;
  }
  if (answer.status === 'stale') {
    say(`the WAL pusher cannot answer (${answer.reason}): pushing ${call.path} in this call`);
    return undefined;
  }
  for (const line of answer.log) say(line);
  if (answer.status === 'done') {
    proc.stdout(call.json ? `${JSON.stringify(answer.json)}\n` : `${answer.text}\n`);
    return answer.exitCode;
  }
  proc.stderr(`${answer.lines.join('\n')}\n`);
  if (call.json) proc.stdout(`${JSON.stringify({ error: answer.json })}\n`);
  return 2;
}

/** A connection to the pusher's socket, or undefined when nothing listens there. */
function connectTo(socket: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const connection = connect(socketAddress(socket));
    connection.once('connect', () => {
      connection.removeAllListeners('error');
      resolve(connection);
    });
    connection.once('error', () => resolve(undefined));
  });
}

/** Starts a pusher for the call's data directory and job, and connects once it listens. */
async function startPusher(
  proc: FastPathProcess,
  call: FastPushCall,
  files: PusherFiles,
  agent: string,
): Promise<Socket | undefined> {
  mkdirSync(files.spool, { recursive: true, mode: 0o700 });
  const tooLong = (() => {
    try {
      return statSync(files.log).size > PUSHER_LOG_MAX_BYTES;
    } catch {
      return false;
    }
  })();
  const logFd = openSync(files.log, tooLong ? 'w' : 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      [
        ...(proc.sea ? [] : [...proc.execArgv, agent]),
        PUSHER_COMMAND,
        ...['--plan', resolve(call.plan), '--job', call.job, '--spool', files.spool],
        ...['--parallel', String(call.parallel)],
      ],
      { detached: true, stdio: ['ignore', logFd, logFd], env: { ...proc.env } },
    );
  } finally {
    closeSync(logFd);
  }
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  child.once('error', () => {
    exited = true;
  });
  child.unref();
  const deadline = Date.now() + PUSHER_START_MS;
  while (Date.now() < deadline) {
    const socket = await connectTo(files.socket);
    if (socket) return socket;
    // Our pusher gave up (a bad plan, or another pusher holds the lock and is about to listen).
    if (exited) {
      const other = await connectTo(files.socket);
      return other;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return undefined;
}

/** Sends the request; the answer, undefined when the connection ended without one, or 'timeout'. */
function ask(
  socket: Socket,
  request: object,
  timeoutMs: number,
): Promise<PushAnswer | undefined | 'timeout'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('timeout');
    }, timeoutMs);
    const done = (answer: PushAnswer | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    socket.on(
      'data',
      messageReader<PushAnswer>((answer) => done(answer)),
    );
    socket.once('error', () => done(undefined));
    socket.once('close', () => done(undefined));
    socket.write(encodeMessage(request as never));
  });
}

/**
 * Kills the pusher that holds the lock of `files` (and only a pusher of this spool: its command line
 * says so), and waits until it is gone, so no upload of it runs on behind the call that pushes itself.
 */
async function killPusher(files: PusherFiles): Promise<void> {
  let pid: number;
  try {
    pid = (JSON.parse(readFileSync(files.lock, 'utf8')) as { pid: number }).pid;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(PUSHER_COMMAND) || !cmdline.includes(files.spool)) return;
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    // Not processRuns (agent/pipeline/child): this module is on wal-push's fast path, whose bundle entry
    // must stay small (test/infra/agent-bundle.test.ts); importing child.ts pulls in 570 KB.
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
