/**
 * A vault for tests of concurrent uploads: it counts the puts that run at once and holds chosen puts
 * until released (a held put still ends when its caller aborts it, as a real upload does).
 */
import type { Readable } from 'node:stream';
import type { PutOptions, Vault } from '#core/ports';

/** A vault that records how many puts run at once and can hold a key's put until released. */
export class GatedVault implements Vault {
  readonly url: string;
  inFlight = 0;
  maxInFlight = 0;
  /** How many puts each key got. */
  readonly puts = new Map<string, number>();
  readonly #gates = new Map<string, Promise<void>>();
  constructor(readonly inner: Vault) {
    this.url = inner.url;
  }
  /** Holds puts of keys ending in `suffix` until the returned function is called. */
  hold(suffix: string): () => void {
    let release = () => {};
    this.#gates.set(
      suffix,
      new Promise<void>((resolve) => {
        release = resolve;
      }),
    );
    return release;
  }
  async put(key: string, body: Readable, options?: PutOptions) {
    this.inFlight += 1;
    this.puts.set(key, (this.puts.get(key) ?? 0) + 1);
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      // A held put still ends when its caller aborts it, as a real upload does.
      for (const [suffix, gate] of this.#gates) if (key.endsWith(suffix)) await untilAborted(gate, options);
      await new Promise((resolve) => setTimeout(resolve, 50));
      return await this.inner.put(key, body, options);
    } finally {
      this.inFlight -= 1;
    }
  }
  get: Vault['get'] = (key, options) => this.inner.get(key, options);
  head: Vault['head'] = (key) => this.inner.head(key);
  list: Vault['list'] = (prefix) => this.inner.list(prefix);
  delete: Vault['delete'] = (keys) => this.inner.delete(keys);
}

/** `gate`, or the abort of `options.signal`, whichever comes first. */
function untilAborted(gate: Promise<void>, options: PutOptions | undefined): Promise<void> {
  const signal = options?.signal;
  if (!signal) return gate;
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    void gate.then(resolve);
  });
}
