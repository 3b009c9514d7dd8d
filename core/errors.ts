/**
 * The error types every part of Strongbox throws. Classify by type, never by message text; only the
 * edges (CLI main, Lambda handlers) turn an error into an exit code or a response.
 */
import { AGENT_ERROR_PREFIX } from './deployment';

/** Base of every error Strongbox raises on purpose. Keeps the `cause` it wraps. */
export class StrongboxError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The plan or the request is wrong: the user can fix it. `path` names the field, e.g. `jobs[1].source`. */
export class PlanError extends StrongboxError {
  readonly issues: readonly string[];
  constructor(issues: readonly string[], options?: { cause?: unknown }) {
    super(issues.length === 1 ? `${issues[0]}` : `invalid plan:\n  ${issues.join('\n  ')}`, options);
    this.issues = issues;
  }
}

/** A data source (pg_dump, tar, a command) failed or produced something unusable. */
export class SourceError extends StrongboxError {}

/** The vault failed. `retryable` says whether the same call may succeed if tried again. */
export class VaultError extends StrongboxError {
  readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options);
    this.retryable = options?.retryable ?? false;
  }
}

/** Stored data does not match what was written: a flipped byte, a truncated object, a wrong key. */
export class IntegrityError extends StrongboxError {}

/** A key could not be created, unwrapped or used. */
export class KeyError extends StrongboxError {}

/** The thing asked for (a job, a backup, an object) does not exist. */
export class NotFoundError extends StrongboxError {}

/** Restoring failed; what was there before is untouched. */
export class RestoreError extends StrongboxError {}

/** The command line is wrong: an unknown command or option, a missing or malformed value. */
export class UsageError extends StrongboxError {}

/** The agent was stopped by a signal (SIGINT, SIGTERM); nothing was committed. */
export class InterruptedError extends StrongboxError {}

/**
 * Another run of the same job holds its lock (a backup still running when the next one starts): this
 * run did nothing. The CLI exits with {@link JOB_LOCKED_EXIT}.
 */
export class JobLockedError extends StrongboxError {}

/** Exit status of a run refused because its job is already running (sysexits' EX_TEMPFAIL: try later). */
export const JOB_LOCKED_EXIT = 75;

/**
 * What the edge knows that a low-level error does not: whose address a refused connection was (the
 * vault, a job's database). Returns a name such as `the vault s3://bucket`, or undefined.
 */
export interface ErrorContext {
  nameEndpoint?: (host: string, port: number) => string | undefined;
}

/** What errno codes mean, in words an operator reads at 3 a.m. */
const ERRNO_WORDS: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'the disk quota is exhausted',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  EEXIST: 'it already exists',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  EROFS: 'the file system is read-only',
  EMFILE: 'too many open files',
  EIO: 'an input/output error on the device',
  ENXIO: 'no such device',
  ECONNREFUSED: 'the connection was refused (nothing listens there)',
  ECONNRESET: 'the connection was reset by the other side',
  ETIMEDOUT: 'the connection timed out',
  EHOSTUNREACH: 'the host is unreachable',
  ENETUNREACH: 'the network is unreachable',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved (DNS did not answer)',
};

/** Codes node:zlib gives corrupt input. */
const ZLIB_DATA_CODES = new Set(['Z_DATA_ERROR', 'Z_BUF_ERROR', 'Z_NEED_DICT']);

interface SystemError extends Error {
  code: string;
  syscall?: string;
  path?: string;
  address?: string;
  port?: number;
  hostname?: string;
}

function isSystemError(error: unknown): error is SystemError {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'string';
}

/**
 * A Node system or zlib error as a sentence: `writing /srv/vault/x: no space left on the device
 * (ENOSPC)`, `cannot connect to the vault s3://b at 127.0.0.1:9000: the connection was refused …`;
 * undefined for other errors.
 */
function explainSystemError(error: SystemError, context: ErrorContext): string | undefined {
  if (ZLIB_DATA_CODES.has(error.code)) {
    return 'the data is not gzip-compressed as its manifest says (corrupt, or not written by Strongbox)';
  }
  if (error.code === 'EPIPE') {
    return 'the process or connection reading the data stopped before the end (broken pipe); its own error, if it printed one, is above';
  }
  const words = ERRNO_WORDS[error.code];
  if (!words) return undefined;
  const host = error.address ?? error.hostname;
  if (host !== undefined || error.syscall === 'connect' || error.syscall === 'getaddrinfo') {
    const where = host === undefined ? '' : error.port === undefined ? host : `${host}:${error.port}`;
    const named =
      host !== undefined && error.port !== undefined ? context.nameEndpoint?.(host, error.port) : undefined;
    return `cannot connect to ${named ? `${named} at ${where}` : where || 'the server'}: ${words} (${error.code})`;
  }
  const verb = error.syscall === 'write' || error.syscall === 'mkdir' ? 'writing' : undefined;
  if (error.path) return `${verb ? `${verb} ` : ''}${error.path}: ${words} (${error.code})`;
  return `${words} (${error.code})`;
}

const CLEANUP_PROBLEMS = Symbol('strongbox.cleanupProblems');

/**
 * Records on a failure that cleaning up after it failed too: `problem` is a sentence (`cleaning up
 * also failed: …`) that {@link describeError} puts after the failure's own message, so the cause stays
 * first and the cleanup's reply never takes its place. Returns the same error (its type and cause are
 * kept, so it is classified as before).
 * @example throw withCleanupProblem(error, 'cleaning up also failed: 2 objects stay in s3://b (AccessDenied)')
 */
export function withCleanupProblem<E>(error: E, problem: string): E {
  if (error === null || typeof error !== 'object') return error;
  const holder = error as { [CLEANUP_PROBLEMS]?: string[] };
  if (!holder[CLEANUP_PROBLEMS]) {
    Object.defineProperty(holder, CLEANUP_PROBLEMS, { value: [], enumerable: false });
  }
  holder[CLEANUP_PROBLEMS]?.push(problem);
  return error;
}

/** The cleanup problems recorded on an error with {@link withCleanupProblem}. */
export function cleanupProblemsOf(error: unknown): readonly string[] {
  if (error === null || typeof error !== 'object') return [];
  return (error as { [CLEANUP_PROBLEMS]?: string[] })[CLEANUP_PROBLEMS] ?? [];
}

/**
 * Turns anything thrown into a one-line message that is safe to print: the error's own message, then
 * the causes it wraps that add something. Node system errors become sentences (errno in words, the
 * path, the endpoint named through `context`), an abort reports what caused it, and a JSON syntax error
 * is never quoted (its message echoes the bytes it read).
 * @example describeError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED', address: '127.0.0.1', port: 5432 }))
 *   // 'cannot connect to 127.0.0.1:5432: the connection was refused (nothing listens there) (ECONNREFUSED)'
 */
export function describeError(error: unknown, context: ErrorContext = {}): string {
  if (error instanceof PlanError) return error.message;
  if (!(error instanceof Error)) return String(error);
  const parts: string[] = [];
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current instanceof Error && !seen.has(current)) {
    seen.add(current);
    if (current instanceof SyntaxError && current !== error) break;
    const explained = isSystemError(current) ? explainSystemError(current, context) : undefined;
    const code = isSystemError(current) ? current.code : '';
    const path = isSystemError(current) ? current.path : undefined;
    const said = (part: string) =>
      part.includes(code) ||
      part.includes(ERRNO_WORDS[code] ?? code) ||
      (path !== undefined && part.includes(path));
    if (explained && parts.some(said)) break;
    if (explained) {
      parts.push(explained);
      break;
    }
    const here: Error = current;
    const aborted = here.name === 'AbortError' && here.cause instanceof Error;
    if (!aborted && !parts.some((part) => part.includes(here.message))) {
      parts.push(here instanceof SyntaxError ? 'not valid JSON' : here.message);
    }
    current = here.cause;
  }
  const message = parts.join(': ') || error.name;
  const problems = cleanupProblemsOf(error);
  return problems.length ? `${message}; ${problems.join('; ')}` : message;
}

/**
 * Longest `strongbox: error: …` line, prefix included: SSM keeps only the first 8,000 characters of a
 * command's stderr, and alerts quote this line.
 */
export const ERROR_LINE_CHARS = 2_000;

/**
 * The lines the CLI (`strongbox`, and `cdk synth` of the Strongbox app) prints for an error, the last
 * one always `strongbox: error: …` of at most {@link ERROR_LINE_CHARS} characters. A PlanError with
 * several issues prints each indented on its own line first, then names the first in the error line
 * (`… (and 2 more, listed above)`); anything else is the one error line. `operation` (`backup app-db`)
 * leads the message, so the line says what failed on what. Line breaks inside a message become ` | `,
 * so the error line stays one line.
 * @example errorLines(new PlanError(['jobs[0].source.database: required']))
 *   // ['strongbox: error: jobs[0].source.database: required']
 */
export function errorLines(error: unknown, context: ErrorContext = {}, operation = ''): string[] {
  const lead = operation ? `${operation}: ` : '';
  if (error instanceof PlanError && error.issues.length > 1) {
    const more = ` (and ${error.issues.length - 1} more, listed above)`;
    return [
      ...error.issues.map((issue) => `  ${oneLine(issue)}`),
      errorLine(lead + oneLine(error.issues[0] as string), more),
    ];
  }
  return [errorLine(lead + oneLine(describeError(error, context)), '')];
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' | ');
}

/** `strongbox: error: <message><suffix>`, the message cut with `…` to keep the line within the cap. */
function errorLine(message: string, suffix: string): string {
  const room = ERROR_LINE_CHARS - AGENT_ERROR_PREFIX.length - suffix.length;
  return `${AGENT_ERROR_PREFIX}${message.length > room ? `${message.slice(0, room - 1)}…` : message}${suffix}`;
}
