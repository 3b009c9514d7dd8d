/**
 * A pass-through stage that counts bytes and hashes them with SHA-256: placed last before the vault,
 * it yields the stored size and digest the manifest records; placed first, the bytes a source produced.
 * Memory: none beyond the chunk in flight.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** Options of a Meter. */
export interface MeterOptions {
  /** Hash what passes (SHA-256). Counting alone costs nothing; hashing ~0.6 ms per MiB. @default true */
  hash?: boolean;
}

/**
 * Passes data through unchanged, counting and (unless `hash: false`) hashing it.
 * @example
 * const meter = new Meter();
 * await pipeline(source, meter, destination);
 * manifestObject.storedBytes = meter.bytes; manifestObject.sha256 = meter.sha256();
 */
export class Meter extends Transform {
  /** Bytes that passed so far. */
  bytes = 0;
  readonly #hash: Hash | undefined;
  #digest: string | undefined;

  constructor(options: MeterOptions = {}) {
    super();
    this.#hash = options.hash === false ? undefined : createHash('sha256');
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.#hash?.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#digest = this.#hash?.digest('hex');
    callback();
  }

  /**
   * SHA-256 (hex) of everything that passed.
   * @throws Error when called before the stream ended (the digest is not known yet) or on a Meter made
   *   with `hash: false`.
   */
  sha256(): string {
    if (this.#digest === undefined)
      throw new Error('Meter.sha256(): not hashing, or the stream has not ended');
    return this.#digest;
  }
}
