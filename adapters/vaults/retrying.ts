/**
 * A {@link Vault} wrapper that retries the idempotent verbs of another vault (restic's `RetryBackend`):
 * `get`, `head`, `list` and `delete` are tried again when they fail with a {@link VaultError} whose
 * `retryable` is true (throttling, 5xx and network errors, as adapters/aws/errors classifies them).
 * Anything else — a NotFoundError, a non-retryable VaultError (access denied, a bad key, a full disk),
 * an error of another type — passes through at once. `put` is never retried: its body is a one-shot
 * stream that the first attempt has consumed, so it passes straight through.
 *
 * Waits between attempts grow exponentially from `baseDelayMs`, are capped at `maxDelayMs`, and carry
 * "equal jitter": each wait is between half and all of its step, so many hosts that failed together do
 * not retry together. The S3 SDK retries single requests on its own; this wrapper retries whole verbs
 * on top (a listing of many pages, a stream that could not be opened).
 *
 * What is retried, exactly:
 * - `get`: opening the stream. Once the stream is returned, an error while reading it reaches the
 *   caller (the port has no ranged reads to resume from).
 * - `list`: a listing that fails before yielding anything starts again. One that fails midway resumes
 *   after the last key it yielded: the port lists in key (byte) order, so the wrapper lists again and
 *   skips every key up to and including that one. Memory stays constant (no set of seen keys); every
 *   key is yielded once, in order. The attempt count starts over after each failure that made progress.
 * - `delete`: the whole call (keys that no longer exist are ignored by every vault).
 */
import type { Readable } from 'node:stream';
import { VaultError } from '#core/errors';
import type { ObjectLockState, PutOptions, StoredObject, Vault } from '#core/ports';

/** Why and when a call is tried again, passed to {@link RetryOptions.onRetry}. */
export interface RetryEvent {
  /** The vault verb that failed. */
  verb: 'get' | 'head' | 'list' | 'delete';
  /** The key (get, head), prefix (list) or first key (delete) of the call. */
  target: string;
  /** The attempt that failed, from 1. */
  attempt: number;
  /** The attempts the call gets in all. */
  maxAttempts: number;
  /** How long the wrapper waits before the next attempt. */
  delayMs: number;
  error: VaultError;
}

/**
 * One progress line for a retry, safe to print (vault errors carry no secrets).
 * @example describeRetry(event) // 'vault: get backups/db/x/manifest.json failed (attempt 1 of 4), retrying in 0.5 s: …'
 */
export function describeRetry(event: RetryEvent): string {
  const seconds = (event.delayMs / 1000).toFixed(1);
  return `vault: ${event.verb} ${event.target} failed (attempt ${event.attempt} of ${event.maxAttempts}), retrying in ${seconds} s: ${event.error.message}`;
}

/** Options of a {@link RetryingVault}. */
export interface RetryOptions {
  /** Attempts of one call, the first included. @default 4 */
  readonly maxAttempts?: number;
  /** Wait before the first retry; each further retry doubles it. @default 500 */
  readonly baseDelayMs?: number;
  /** Longest single wait. @default 10_000 */
  readonly maxDelayMs?: number;
  /**
   * Waits `ms`, rejecting with the signal's reason as soon as it aborts.
   * @default a timer
   */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** A number in [0, 1) for the jitter. @default Math.random */
  readonly random?: () => number;
  /**
   * Stops every pending retry of the vault when aborted (the agent's interrupt): the wait rejects with
   * the signal's reason. Per-call signals (`get`'s) stop that call's retries too.
   * @default none
   */
  readonly signal?: AbortSignal;
  /** Told before each wait, e.g. to log a progress line. @default nothing */
  readonly onRetry?: (event: RetryEvent) => void;
}

/** The defaults of {@link RetryOptions}. */
export const RETRY_DEFAULTS = { maxAttempts: 4, baseDelayMs: 500, maxDelayMs: 10_000 } as const;

/**
 * The wait before retry number `retry` (1 for the first retry): `min(maxDelayMs, baseDelayMs × 2^(retry-1))`,
 * of which the upper half is random.
 * @example retryDelayMs(3, { baseDelayMs: 500, maxDelayMs: 10_000 }, () => 0.5) // 1500 (between 1000 and 2000)
 */
export function retryDelayMs(
  retry: number,
  options: { baseDelayMs: number; maxDelayMs: number },
  random: () => number = Math.random,
): number {
  const step = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (retry - 1));
  return Math.round(step / 2 + (random() * step) / 2);
}

/** Whether a failed call may succeed when tried again: only a VaultError that says so. */
export function isRetryable(error: unknown): error is VaultError {
  return error instanceof VaultError && error.retryable;
}

/**
 * A vault whose idempotent verbs are retried on retryable vault errors; `put` is not.
 * @example const vault = new RetryingVault(new FileVault('/mnt/nas/strongbox'), { maxAttempts: 3 });
 */
export class RetryingVault implements Vault {
  /** The wrapped vault. */
  readonly inner: Vault;
  readonly url: string;
  readonly #maxAttempts: number;
  readonly #delays: { baseDelayMs: number; maxDelayMs: number };
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly #random: () => number;
  readonly #signal: AbortSignal | undefined;
  readonly #onRetry: ((event: RetryEvent) => void) | undefined;

  /** @throws RangeError for a maxAttempts below 1 or a negative delay. */
  constructor(inner: Vault, options: RetryOptions = {}) {
    const maxAttempts = options.maxAttempts ?? RETRY_DEFAULTS.maxAttempts;
    const baseDelayMs = options.baseDelayMs ?? RETRY_DEFAULTS.baseDelayMs;
    const maxDelayMs = options.maxDelayMs ?? RETRY_DEFAULTS.maxDelayMs;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1)
      throw new RangeError(`maxAttempts must be an integer ≥ 1, got ${maxAttempts}`);
    if (!(baseDelayMs >= 0) || !(maxDelayMs >= 0))
      throw new RangeError(`retry delays must be ≥ 0, got ${baseDelayMs} and ${maxDelayMs}`);
    this.inner = inner;
    this.url = inner.url;
    this.#maxAttempts = maxAttempts;
    this.#delays = { baseDelayMs, maxDelayMs };
    this.#sleep = options.sleep ?? abortableSleep;
    this.#random = options.random ?? Math.random;
    this.#signal = options.signal;
    this.#onRetry = options.onRetry;
  }

  /** Passes straight through (doctor reports a failure as it is). */
  objectLock(): Promise<ObjectLockState> {
    if (!this.inner.objectLock) return Promise.reject(new VaultError(`${this.url} cannot lock objects`));
    return this.inner.objectLock();
  }

  /** Passes straight through (the next backup or prune tries again). */
  removeAbandoned(prefix: string, olderThan: Date, options?: { dryRun?: boolean }): Promise<string[]> {
    return this.inner.removeAbandoned?.(prefix, olderThan, options) ?? Promise.resolve([]);
  }

  /** Passes straight through: the body cannot be read twice. */
  put(key: string, body: Readable, options?: PutOptions): Promise<{ sizeBytes: number }> {
    return this.inner.put(key, body, options);
  }

  get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    return this.#retry('get', key, options.signal, () => this.inner.get(key, options));
  }

  head(key: string): Promise<StoredObject | undefined> {
    return this.#retry('head', key, undefined, () => this.inner.head(key));
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    let last: Buffer | undefined;
    let attempt = 1;
    for (;;) {
      let progressed = false;
      try {
        for await (const object of this.inner.list(prefix)) {
          const key = Buffer.from(object.key);
          if (last !== undefined && Buffer.compare(key, last) <= 0) continue;
          last = key;
          progressed = true;
          yield object;
        }
        return;
      } catch (error) {
        if (progressed) attempt = 1;
        await this.#beforeRetry('list', prefix, undefined, attempt, error);
        attempt += 1;
      }
    }
  }

  delete(keys: readonly string[]): Promise<void> {
    return this.#retry('delete', keys[0] ?? '', undefined, () => this.inner.delete(keys));
  }

  async #retry<T>(
    verb: RetryEvent['verb'],
    target: string,
    signal: AbortSignal | undefined,
    call: () => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        await this.#beforeRetry(verb, target, signal, attempt, error);
      }
    }
  }

  /** Rethrows `error` unless another attempt may help; else reports and waits. */
  async #beforeRetry(
    verb: RetryEvent['verb'],
    target: string,
    signal: AbortSignal | undefined,
    attempt: number,
    error: unknown,
  ): Promise<void> {
    if (!isRetryable(error) || attempt >= this.#maxAttempts) throw error;
    for (const s of [signal, this.#signal]) s?.throwIfAborted();
    const delayMs = retryDelayMs(attempt, this.#delays, this.#random);
    this.#onRetry?.({ verb, target, attempt, maxAttempts: this.#maxAttempts, delayMs, error });
    const signals = [signal, this.#signal].filter((s): s is AbortSignal => s !== undefined);
    await this.#sleep(delayMs, signals.length > 1 ? AbortSignal.any(signals) : signals[0]);
  }
}

/** Waits `ms`; rejects with the signal's reason when it aborts first. */
function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
