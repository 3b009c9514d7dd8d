import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileVault } from '#adapters/vaults/file';
import { type RetryEvent, RetryingVault, retryDelayMs } from '#adapters/vaults/retrying';
import { IntegrityError, NotFoundError, VaultError } from '#core/errors';
import type { PutOptions, StoredObject, Vault } from '#core/ports';

let dir: string;
let vaultNumber = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-retrying-vault-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Verb = 'put' | 'get' | 'head' | 'list' | 'delete';

/**
 * A real FileVault behind a script of failures: each call of a verb takes the next entry of that verb's
 * script (an error to throw, or for list the number of objects to yield first), then runs for real.
 */
class ScriptedVault implements Vault {
  readonly calls: Verb[] = [];
  readonly script: Record<Verb, { error: unknown; afterObjects?: number }[]> = {
    put: [],
    get: [],
    head: [],
    list: [],
    delete: [],
  };
  constructor(readonly real: FileVault) {}
  get url() {
    return this.real.url;
  }
  count(verb: Verb): number {
    return this.calls.filter((c) => c === verb).length;
  }
  #next(verb: Verb) {
    this.calls.push(verb);
    return this.script[verb].shift();
  }
  async put(key: string, body: Readable, options?: PutOptions) {
    const fault = this.#next('put');
    if (fault) {
      body.resume();
      throw fault.error;
    }
    return this.real.put(key, body, options);
  }
  async get(key: string, options?: { signal?: AbortSignal }) {
    const fault = this.#next('get');
    if (fault) throw fault.error;
    return this.real.get(key, options);
  }
  async head(key: string) {
    const fault = this.#next('head');
    if (fault) throw fault.error;
    return this.real.head(key);
  }
  async *list(prefix: string): AsyncIterable<StoredObject> {
    const fault = this.#next('list');
    let yielded = 0;
    for await (const object of this.real.list(prefix)) {
      if (fault && yielded === (fault.afterObjects ?? 0)) throw fault.error;
      yielded += 1;
      yield object;
    }
    if (fault) throw fault.error;
  }
  async delete(keys: readonly string[]) {
    const fault = this.#next('delete');
    if (fault) throw fault.error;
    return this.real.delete(keys);
  }
}

const transient = (n = 1) => new VaultError(`SlowDown (HTTP 503) #${n}`, { retryable: true });

async function setUp(options: ConstructorParameters<typeof RetryingVault>[1] = {}) {
  vaultNumber += 1;
  const real = new FileVault(join(dir, `v${vaultNumber}`));
  for (const key of ['d/a', 'd/b', 'd/c', 'd/e']) await real.put(key, Readable.from([Buffer.from(key)]));
  const inner = new ScriptedVault(real);
  const sleeps: number[] = [];
  const events: RetryEvent[] = [];
  const vault = new RetryingVault(inner, {
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    onRetry: (event) => events.push(event),
    ...options,
  });
  return { inner, real, vault, sleeps, events };
}

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

async function keys(vault: Vault, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const object of vault.list(prefix)) out.push(object.key);
  return out;
}

/** Each retried verb, called so that its result can be compared. */
const calls: Record<Exclude<Verb, 'put'>, (vault: Vault) => Promise<unknown>> = {
  get: async (vault) => text(await vault.get('d/a')),
  head: async (vault) => (await vault.head('d/b'))?.sizeBytes,
  list: (vault) => keys(vault, 'd/'),
  delete: async (vault) => {
    await vault.delete(['d/c']);
    return keys(vault, 'd/');
  },
};
const verbs = Object.keys(calls) as (keyof typeof calls)[];

describe('RetryingVault', () => {
  it.each(verbs)('retries %s on retryable vault errors until it succeeds', async (verb) => {
    // Prepare
    const { inner, vault, sleeps, events } = await setUp({ baseDelayMs: 100 });
    inner.script[verb].push({ error: transient(1) }, { error: transient(2) });

    // Act
    const result = await calls[verb](vault);

    // Assess
    expect(result).toEqual(await calls[verb](inner.real));
    expect(inner.count(verb)).toBe(3);
    expect(sleeps).toEqual([75, 150]); // 100 and 200, half fixed, half jitter (random 0.5)
    expect(events.map((e) => [e.verb, e.attempt, e.maxAttempts, e.error.message])).toEqual([
      [verb, 1, 4, 'SlowDown (HTTP 503) #1'],
      [verb, 2, 4, 'SlowDown (HTTP 503) #2'],
    ]);
  });

  it.each(verbs)('gives up on %s after maxAttempts with the last error', async (verb) => {
    const { inner, vault, sleeps } = await setUp({ maxAttempts: 3 });
    const errors = [transient(1), transient(2), transient(3), transient(4)];
    for (const error of errors) inner.script[verb].push({ error });

    await expect(calls[verb](vault)).rejects.toBe(errors[2]);
    expect(inner.count(verb)).toBe(3);
    expect(sleeps).toHaveLength(2);
  });

  it.each(
    verbs.flatMap((verb) => [
      [verb, 'a non-retryable VaultError', new VaultError('AccessDenied (HTTP 403)')],
      [verb, 'a NotFoundError', new NotFoundError('gone')],
      [verb, 'an IntegrityError', new IntegrityError('bad')],
      [verb, 'a plain Error', Object.assign(new Error('socket hang up'), { retryable: true })],
    ]),
  )('never retries %s after %s', async (verb, _what, error) => {
    const { inner, vault, sleeps } = await setUp();
    inner.script[verb as keyof typeof calls].push({ error });

    await expect(calls[verb as keyof typeof calls](vault)).rejects.toBe(error);
    expect(inner.count(verb as keyof typeof calls)).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it('never retries put, even on a retryable error, and passes a good put straight through', async () => {
    // Prepare
    const { inner, real, vault, sleeps } = await setUp();
    const error = transient();
    inner.script.put.push({ error });

    // Act
    const failed = vault.put('p/one', Readable.from([Buffer.from('once')]));
    await expect(failed).rejects.toBe(error);
    const stored = await vault.put('p/two', Readable.from([Buffer.from('twice')]), { contentType: 'x/y' });

    // Assess
    expect(inner.count('put')).toBe(2);
    expect(sleeps).toEqual([]);
    expect(stored).toEqual({ sizeBytes: 5 });
    expect(await real.head('p/one')).toBeUndefined();
    expect(await text(await real.get('p/two'))).toBe('twice');
  });

  it('resumes a listing that failed midway after the last key it yielded', async () => {
    const { inner, vault } = await setUp({ maxAttempts: 2 });
    // Fails after 2 objects, then after 3: each failure made progress, so 2 attempts are enough.
    inner.script.list.push(
      { error: transient(1), afterObjects: 2 },
      { error: transient(2), afterObjects: 3 },
    );

    expect(await keys(vault, 'd/')).toEqual(['d/a', 'd/b', 'd/c', 'd/e']);
    expect(inner.count('list')).toBe(3);
  });

  it('restarts a listing that failed before yielding anything, within maxAttempts', async () => {
    const { inner, vault } = await setUp({ maxAttempts: 2 });
    const errors = [transient(1), transient(2)];
    for (const error of errors) inner.script.list.push({ error, afterObjects: 0 });

    await expect(keys(vault, 'd/')).rejects.toBe(errors[1]);
    expect(inner.count('list')).toBe(2);
  });

  it("stops retrying get when the call's signal aborts during the wait", async () => {
    // Prepare: the real timer, a long wait, and an abort while it runs.
    const { inner, vault } = await setUp({ sleep: undefined, baseDelayMs: 60_000 });
    inner.script.get.push({ error: transient() });
    const controller = new AbortController();
    const reason = new Error('interrupted by SIGINT');
    setTimeout(() => controller.abort(reason), 20);
    const started = Date.now();

    // Act
    const got = vault.get('d/a', { signal: controller.signal });

    // Assess
    await expect(got).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(inner.count('get')).toBe(1);
  });

  it("stops every verb's retries when the vault's signal aborts", async () => {
    const controller = new AbortController();
    const { inner, vault, sleeps } = await setUp({ signal: controller.signal });
    const reason = new Error('interrupted by SIGTERM');
    inner.script.head.push({ error: transient() }, { error: transient() });
    inner.script.list.push({ error: transient(), afterObjects: 1 });
    controller.abort(reason);

    await expect(vault.head('d/a')).rejects.toBe(reason);
    await expect(keys(vault, 'd/')).rejects.toBe(reason);
    expect(inner.count('head')).toBe(1);
    expect(inner.count('list')).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it('names itself by the wrapped vault and refuses a policy without attempts', async () => {
    const { real } = await setUp();
    expect(new RetryingVault(real).url).toBe(real.url);
    expect(() => new RetryingVault(real, { maxAttempts: 0 })).toThrow(RangeError);
    expect(() => new RetryingVault(real, { baseDelayMs: -1 })).toThrow(RangeError);
  });
});

describe('retryDelayMs', () => {
  const policy = { baseDelayMs: 500, maxDelayMs: 10_000 };

  it.each([
    [1, 0, 250],
    [1, 0.999_999, 500],
    [2, 0, 500],
    [3, 0.5, 1500],
    [5, 0.999_999, 8000],
    [6, 0, 5000], // 16 s capped at 10 s
    [6, 0.999_999, 10_000],
    [40, 0.5, 7500],
  ])('retry %i with random %d waits %i ms', (retry, random, expected) => {
    expect(retryDelayMs(retry, policy, () => random)).toBe(expected);
  });
});
