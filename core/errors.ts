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

/** Turns anything thrown into a one-line message that is safe to print. */
export function describeError(error: unknown): string {
  if (error instanceof PlanError) return error.message;
  if (error instanceof Error) {
    const cause = error.cause instanceof Error && !error.message.includes(error.cause.message);
    return cause ? `${error.message}: ${(error.cause as Error).message}` : error.message;
  }
  return String(error);
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
 * (`… (and 2 more, listed above)`); anything else is the one error line. Line breaks inside a message
 * become ` | `, so the error line stays one line.
 * @example errorLines(new PlanError(['jobs[0].source.database: required']))
 *   // ['strongbox: error: jobs[0].source.database: required']
 */
export function errorLines(error: unknown): string[] {
  if (error instanceof PlanError && error.issues.length > 1) {
    const more = ` (and ${error.issues.length - 1} more, listed above)`;
    return [
      ...error.issues.map((issue) => `  ${oneLine(issue)}`),
      errorLine(oneLine(error.issues[0] as string), more),
    ];
  }
  return [errorLine(oneLine(describeError(error)), '')];
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' | ');
}

/** `strongbox: error: <message><suffix>`, the message cut with `…` to keep the line within the cap. */
function errorLine(message: string, suffix: string): string {
  const room = ERROR_LINE_CHARS - AGENT_ERROR_PREFIX.length - suffix.length;
  return `${AGENT_ERROR_PREFIX}${message.length > room ? `${message.slice(0, room - 1)}…` : message}${suffix}`;
}
