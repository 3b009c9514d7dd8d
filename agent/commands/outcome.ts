/** What a command hands back to the CLI, and how a failure reads in `--json`. */
import type { AgentError, AgentErrorKind } from '#core/agent-output';
import { AGENT_ERROR_PREFIX } from '#core/deployment';
import {
  describeError,
  type ErrorContext,
  IntegrityError,
  InterruptedError,
  JobLockedError,
  KeyError,
  NotFoundError,
  PlanError,
  RestoreError,
  SourceError,
  UsageError,
  VaultError,
} from '#core/errors';

/** What a command hands back to the CLI: an exit status, a JSON value for `--json`, and text for people. */
export interface Outcome {
  /** 0 ok, 1 warning, 2 error — what monitoring systems read. */
  exitCode: 0 | 1 | 2 | 3;
  json: unknown;
  text: string;
  /**
   * A run over several jobs that reported every job and still failed (one of them failed): the CLI
   * prints the report, then this error's `strongbox: error: …` line.
   */
  failure?: unknown;
}

/** The kind of an error, by its type (core/errors), for the `--json` error object. */
export function errorKindOf(error: unknown): AgentErrorKind {
  const kinds: [new (...args: never[]) => Error, AgentErrorKind][] = [
    [UsageError, 'usage'],
    [PlanError, 'plan'],
    [SourceError, 'source'],
    [VaultError, 'vault'],
    [IntegrityError, 'integrity'],
    [KeyError, 'key'],
    [NotFoundError, 'not-found'],
    [RestoreError, 'restore'],
    [InterruptedError, 'interrupted'],
    [JobLockedError, 'locked'],
  ];
  return kinds.find(([type]) => error instanceof type)?.[1] ?? 'internal';
}

/**
 * The `--json` error object of a failure (core/agent-output `agentErrorSchema`). `lines` are the
 * error lines the CLI printed on stderr: the message is the last one without its prefix, so stdout and
 * stderr say the same thing.
 */
export function errorJson(error: unknown, lines?: readonly string[], context: ErrorContext = {}): AgentError {
  const last = lines?.at(-1)?.replace(AGENT_ERROR_PREFIX, '');
  const message = last || describeError(error, context) || 'failed';
  const issues = error instanceof PlanError && error.issues.length > 1 ? [...error.issues] : undefined;
  return { kind: errorKindOf(error), message, ...(issues ? { issues } : {}) };
}
