/**
 * What the `wal-push` foreground (agent/wal-pusher-client) and the resident WAL pusher
 * (agent/wal-pusher) share: where a job's spool, lock, socket and log are, the messages on the socket
 * (one JSON object a line) and the fingerprint that tells whether a running pusher serves the same
 * plan, environment and agent as the caller. Node built-ins only: the foreground loads this module
 * before — and usually instead of — the rest of the agent.
 */
import { createHash } from 'node:crypto';
import { realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';

/** Name of the spool directory inside the data directory (pg_basebackup skips `pgsql_tmp*`). */
export const SPOOL_DIR = 'pgsql_tmp_strongbox';

/** Files uploaded or downloaded at once by default (the one asked for included). */
export const DEFAULT_WAL_PARALLEL = 4;

/** The hidden agent command that runs the resident pusher (`strongbox __wal-pusher …`). */
export const PUSHER_COMMAND = '__wal-pusher';

/**
 * The spool directory for a job's pushes or fetches, when `walPath` is in a data directory's pg_wal/.
 * @example spoolOf('pg_wal/000000010000000000000003', 'pg', 'push') // '<cwd>/pgsql_tmp_strongbox/push-pg'
 */
export function spoolOf(walPath: string, job: string, purpose: 'push' | 'fetch'): string | undefined {
  const pgWal = dirname(resolve(walPath));
  if (basename(pgWal) !== 'pg_wal') return undefined;
  return join(dirname(pgWal), SPOOL_DIR, `${purpose}-${job}`);
}

/** The files of a job's resident pusher, all in its push spool (`<data dir>/pgsql_tmp_strongbox/push-<job>/`). */
export interface PusherFiles {
  /** The push spool (markers `<segment>.done`). */
  spool: string;
  /** The data directory's pg_wal/. */
  pgWal: string;
  /** The single-instance lock (agent/job-lock's lock file format: pid, process start, token). */
  lock: string;
  /** The unix socket the pusher answers on. */
  socket: string;
  /** The pusher's own log (what no call was there to print). */
  log: string;
}

/** The pusher files of a push spool. */
export function pusherFiles(spool: string): PusherFiles {
  return {
    spool,
    pgWal: join(dirname(dirname(spool)), 'pg_wal'),
    lock: join(spool, 'pusher.lock'),
    socket: join(spool, 'pusher.sock'),
    log: join(spool, 'pusher.log'),
  };
}

/** Longest unix socket path bound or connected as is (the kernel's limit is 107 bytes). */
const SOCKET_PATH_MAX = 100;

/**
 * The path to bind or connect a unix socket by: the absolute one, or — when that is too long for the
 * kernel — the one relative to this process's working directory, when that is short enough.
 */
export function socketAddress(socket: string): string {
  if (socket.length <= SOCKET_PATH_MAX) return socket;
  const near = relative(process.cwd(), socket);
  return near.length < socket.length ? near : socket;
}

/** A `wal-push` call's question: archive this file, answer once it is durable. */
export interface PushRequest {
  /** The file, absolute (PostgreSQL's %p resolved in its data directory). */
  path: string;
  /** The file as the caller named it (%p), for the answer's text. */
  shownPath: string;
  /** {@link callerFingerprint} of the caller; a pusher started otherwise answers `stale`. */
  fingerprint: string;
}

/** The pusher's answer. */
export type PushAnswer =
  | {
      /** Archived (or already archived with this content): the caller exits with `exitCode`. */
      status: 'done';
      exitCode: 0;
      /** The command's `--json` value and text (agent/commands/wal-push). */
      json: unknown;
      text: string;
      /** Progress lines for the caller's stderr (push-ahead failures and the like). */
      log: string[];
    }
  | {
      /** Not archived: the caller prints `lines` (the error lines) and exits 2. */
      status: 'failed';
      lines: string[];
      /** The `--json` error object. */
      json: unknown;
      log: string[];
    }
  | {
      /** This pusher serves another plan, environment or agent, or is stopping: the caller pushes itself. */
      status: 'stale';
      reason: string;
    };

/** Environment variables that differ between two calls of the same archive_command without meaning anything. */
const VOLATILE_ENV = new Set(['_', 'PWD', 'OLDPWD', 'SHLVL']);

/**
 * What a pusher must share with a caller to answer for it: the plan file (path, size, modification
 * time), the environment (hashed: it may hold secrets) and the agent's own file (an upgrade starts a
 * new pusher).
 */
export function callerFingerprint(
  planPath: string,
  job: string,
  env: Readonly<Record<string, string | undefined>>,
  agentFile: string,
): string {
  const hash = createHash('sha256');
  const fileState = (path: string) => {
    try {
      const s = statSync(path);
      return `${s.size}:${s.mtimeMs}:${s.ino}`;
    } catch {
      return 'missing';
    }
  };
  hash.update(JSON.stringify([resolve(planPath), fileState(resolve(planPath)), job]));
  hash.update(JSON.stringify([agentFile, fileState(agentFile)]));
  for (const name of Object.keys(env).sort()) {
    if (!VOLATILE_ENV.has(name)) hash.update(`\0${name}=${env[name] ?? ''}`);
  }
  return hash.digest('hex');
}

/** One message as a line on the socket. */
export function encodeMessage(message: PushRequest | PushAnswer): string {
  return `${JSON.stringify(message)}\n`;
}

/** Splits a socket's data into messages: feed chunks, get each complete line parsed. */
export function messageReader<T>(onMessage: (message: T) => void): (chunk: Buffer | string) => void {
  let buffered = '';
  return (chunk) => {
    buffered += chunk.toString();
    for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      if (line.trim() !== '') onMessage(JSON.parse(line) as T);
    }
  };
}

/** The agent's own file: the single executable, or the script node runs (for {@link callerFingerprint}). */
export function agentFile(sea: boolean, argv: readonly string[]): string {
  if (sea) return process.execPath;
  try {
    return realpathSync(argv[1] as string);
  } catch {
    return resolve(argv[1] ?? '');
  }
}
