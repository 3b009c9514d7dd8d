/**
 * A {@link Vault} wrapper for tests that injects faults (restic's fault-injecting backend): it wraps any
 * vault and makes chosen calls fail the way real storage fails — a put refused before anything is
 * stored, a put stored whole whose answer is lost, a put whose stream breaks after some bytes (an upload
 * that fails after some parts), a put that reports fewer bytes than it stored, a read, head or listing
 * that fails, a read or listing that breaks midway, a delete that is refused. Calls without a matching
 * fault pass straight through to the wrapped vault.
 *
 * Faults are listed per verb and tried in order: the first one that matches the call's key and is not
 * spent applies. Each fault applies to `times` matching calls (default: all of them). What was injected
 * is recorded in {@link FaultyVault.injected}, so a test can assert that its fault really fired.
 *
 * @example
 * // The manifest put is refused: a backup must not look complete.
 * const vault = new FaultyVault(new FileVault(dir), {
 *   put: [{ when: (key) => key.endsWith('manifest.json'), fail: 'before' }],
 * });
 */
import { PassThrough, type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { VaultError } from '#core/errors';
import type { PutOptions, StoredObject, Vault } from '#core/ports';

/** Which calls a fault hits, how often, and with what error. */
export interface FaultTarget {
  /**
   * The keys the fault applies to (for list: the prefix; for delete: each key of the call).
   * @default every key
   */
  readonly when?: (key: string) => boolean;
  /** How many matching calls the fault hits before it is spent. @default Infinity */
  readonly times?: number;
  /**
   * The error the call fails with.
   * @default a VaultError `injected fault: <verb> <key>` with `retryable: false`
   */
  readonly error?: Error | ((key: string) => Error);
}

/**
 * A fault of `put`, by `fail`:
 * - `before`: the put is refused before anything is stored (the body is destroyed, as vaults do).
 * - `after`: the wrapped vault stores the whole object, then the call fails (the answer was lost).
 * - `cut`: the body reaching the wrapped vault fails after `afterBytes` bytes, so the upload fails
 *   midway (after some parts of a multipart upload); the wrapped vault then leaves nothing, and the
 *   caller's body is destroyed. A body of at most `afterBytes` bytes is stored whole.
 * - `misreport`: the wrapped vault stores the object, and the call resolves with `reportBytes(stored)`
 *   instead of the bytes stored ("the vault stores N but says N-1").
 */
export type PutFault = FaultTarget &
  (
    | { readonly fail: 'before' | 'after' }
    | { readonly fail: 'cut'; readonly afterBytes: number }
    | { readonly fail: 'misreport'; readonly reportBytes: (storedBytes: number) => number }
  );

/** A fault of `get`: the call fails, or with `afterBytes` the stream it returns fails after that many bytes. */
export interface GetFault extends FaultTarget {
  readonly afterBytes?: number;
}

/** A fault of `list`: the listing fails after yielding `afterObjects` objects (default 0). */
export interface ListFault extends FaultTarget {
  readonly afterObjects?: number;
}

/** A fault of `head`: the call fails. */
export type HeadFault = FaultTarget;

/**
 * A fault of `delete`, as Object Lock refuses one: the call's keys that match `when` are refused, the
 * others are deleted, then the call fails.
 */
export type DeleteFault = FaultTarget;

/** The faults of each verb, tried in order. */
export interface Faults {
  readonly put?: readonly PutFault[];
  readonly get?: readonly GetFault[];
  readonly head?: readonly HeadFault[];
  readonly list?: readonly ListFault[];
  readonly delete?: readonly DeleteFault[];
}

type Verb = keyof Faults;

/** A fault that took effect. */
export interface InjectedFault {
  verb: Verb;
  /** The key of the call (list: the prefix; delete: the first refused key). */
  key: string;
  /** What happened, e.g. `put before`, `put cut after 1024 bytes`, `list after 3 objects`. */
  what: string;
}

/** A fault and how many more calls it hits. */
interface Armed<F extends FaultTarget> {
  fault: F;
  remaining: number;
}

/**
 * A vault that fails where its {@link Faults} say and otherwise is the vault it wraps. For tests only.
 * @example
 * const vault = new FaultyVault(inner, { put: [{ when: (k) => k.endsWith('.sbx'), fail: 'misreport', reportBytes: (n) => n - 1 }] });
 */
export class FaultyVault implements Vault {
  /** The wrapped vault. */
  readonly inner: Vault;
  readonly url: string;
  /** Every fault that took effect, in order. */
  readonly injected: InjectedFault[] = [];
  readonly #faults: { [V in Verb]: Armed<NonNullable<Faults[V]>[number]>[] };

  /** @throws RangeError for a negative `times`, `afterBytes` or `afterObjects`. */
  constructor(inner: Vault, faults: Faults = {}) {
    const arm = <F extends FaultTarget>(list: readonly F[] | undefined): Armed<F>[] =>
      (list ?? []).map((fault) => {
        const counts = [fault.times, 'afterBytes' in fault ? fault.afterBytes : undefined];
        if ('afterObjects' in fault) counts.push(fault.afterObjects as number | undefined);
        if (counts.some((n) => n !== undefined && !(Number(n) >= 0)))
          throw new RangeError('fault counts (times, afterBytes, afterObjects) must be ≥ 0');
        return { fault, remaining: fault.times ?? Number.POSITIVE_INFINITY };
      });
    this.inner = inner;
    this.url = inner.url;
    this.#faults = {
      put: arm(faults.put),
      get: arm(faults.get),
      head: arm(faults.head),
      list: arm(faults.list),
      delete: arm(faults.delete),
    };
  }

  async put(key: string, body: Readable, options?: PutOptions): Promise<{ sizeBytes: number }> {
    const fault = this.#take('put', key);
    if (!fault) return this.inner.put(key, body, options);
    switch (fault.fail) {
      case 'before':
        body.destroy();
        throw this.#inject('put', key, 'put before', fault);
      case 'after':
        await this.inner.put(key, body, options);
        throw this.#inject('put', key, 'put after', fault);
      case 'misreport': {
        const stored = await this.inner.put(key, body, options);
        const reported = fault.reportBytes(stored.sizeBytes);
        this.#record('put', key, `put misreport ${reported} of ${stored.sizeBytes} bytes`);
        return { sizeBytes: reported };
      }
      case 'cut': {
        const cut = cutAfter(fault.afterBytes, () =>
          this.#inject('put', key, `put cut after ${fault.afterBytes} bytes`, fault),
        );
        // The caller's body is torn down with the cut, as a vault's failed upload tears it down.
        const feeding = pipeline(body, cut).catch(() => {});
        try {
          return await this.inner.put(key, cut, options);
        } catch (error) {
          cut.destroy(); // a vault that failed before reading (a bad key) leaves the body to us
          throw error;
        } finally {
          await feeding;
        }
      }
    }
  }

  /** Passes straight through. */
  removeAbandoned(prefix: string, olderThan: Date, options?: { dryRun?: boolean }): Promise<string[]> {
    return this.inner.removeAbandoned?.(prefix, olderThan, options) ?? Promise.resolve([]);
  }

  async get(key: string, options?: { signal?: AbortSignal }): Promise<Readable> {
    const fault = this.#take('get', key);
    if (!fault) return this.inner.get(key, options);
    if (fault.afterBytes === undefined) throw this.#inject('get', key, 'get', fault);
    const stream = await this.inner.get(key, options);
    const cut = cutAfter(fault.afterBytes, () =>
      this.#inject('get', key, `get cut after ${fault.afterBytes} bytes`, fault),
    );
    const out = new PassThrough();
    pipeline(stream, cut, out).catch(() => {});
    return out;
  }

  async head(key: string): Promise<StoredObject | undefined> {
    const fault = this.#take('head', key);
    if (fault) throw this.#inject('head', key, 'head', fault);
    return this.inner.head(key);
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    const fault = this.#take('list', prefix);
    if (!fault) {
      yield* this.inner.list(prefix);
      return;
    }
    const after = fault.afterObjects ?? 0;
    let yielded = 0;
    const fail = () => this.#inject('list', prefix, `list after ${yielded} objects`, fault);
    if (after === 0) throw fail();
    for await (const object of this.inner.list(prefix)) {
      yield object;
      yielded += 1;
      if (yielded === after) throw fail();
    }
    // Fewer objects than `afterObjects`: the listing still fails, at its end.
    throw fail();
  }

  async delete(keys: readonly string[]): Promise<void> {
    const armed = this.#faults.delete.find(
      (a) => a.remaining > 0 && keys.some((key) => a.fault.when?.(key) ?? true),
    );
    if (!armed) return this.inner.delete(keys);
    armed.remaining -= 1;
    const refused = keys.filter((key) => armed.fault.when?.(key) ?? true);
    const allowed = keys.filter((key) => !refused.includes(key));
    if (allowed.length > 0) await this.inner.delete(allowed);
    throw this.#inject(
      'delete',
      refused[0] as string,
      `delete refused for ${refused.length} of ${keys.length} keys`,
      armed.fault,
    );
  }

  /** The first unspent fault of `verb` that matches `key`, spending one of its calls. */
  #take<V extends Exclude<Verb, 'delete'>>(verb: V, key: string): NonNullable<Faults[V]>[number] | undefined {
    const armed = (this.#faults[verb] as Armed<NonNullable<Faults[V]>[number]>[]).find(
      (a) => a.remaining > 0 && (a.fault.when?.(key) ?? true),
    );
    if (!armed) return undefined;
    armed.remaining -= 1;
    return armed.fault;
  }

  #record(verb: Verb, key: string, what: string): void {
    this.injected.push({ verb, key, what });
  }

  /** Records a fault and makes its error. */
  #inject(verb: Verb, key: string, what: string, fault: FaultTarget): Error {
    this.#record(verb, key, what);
    if (typeof fault.error === 'function') return fault.error(key);
    return fault.error ?? new VaultError(`injected fault: ${what} ${key}`);
  }
}

/**
 * Passes the first `bytes` bytes, then fails with `fail()` when a byte beyond them arrives; a stream of
 * at most `bytes` bytes passes whole.
 */
function cutAfter(bytes: number, fail: () => Error): Transform {
  let passed = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      const room = bytes - passed;
      if (chunk.length <= room) {
        passed += chunk.length;
        callback(null, chunk);
        return;
      }
      if (room > 0) this.push(chunk.subarray(0, room));
      passed = bytes;
      callback(fail());
    },
  });
}
