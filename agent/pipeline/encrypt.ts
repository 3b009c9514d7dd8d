/**
 * Streaming encryption and decryption in the `strongbox-stream-v1` format (core/stream-format): a
 * header with a fresh random salt, then AES-256-GCM chunks whose nonce binds the chunk index and a
 * final-chunk flag.
 *
 * Memory: each stream holds at most one chunk plus the buffer that just arrived (about two chunks,
 * 128 KiB at the default 64 KiB chunk size), whatever the length of the stream.
 */
import { randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from '#core/errors';
import {
  DEFAULT_CHUNK_LOG2,
  decodeHeader,
  deriveStreamKey,
  encodeHeader,
  HEADER_BYTES,
  openChunk,
  SALT_BYTES,
  type StreamHeader,
  sealChunkParts,
  TAG_BYTES,
} from '#core/stream-format';
import { ByteQueue } from './byte-queue';

/** Options of an encrypting stream. */
export interface EncryptOptions {
  /** log2 of the chunk size, 10–24. @default 16 (64 KiB) */
  chunkLog2?: number;
}

/**
 * A Transform that encrypts what is written to it: the header, then sealed chunks. A chunk is sealed
 * only once it is known whether more data follows, so the last one carries the final flag; an empty
 * input yields one empty final chunk.
 * @param dataKey the backup's 32-byte data key; every stream derives its own key from it and a fresh salt.
 * @example await pipeline(source, createEncryptStream(dataKey.plaintext), destination)
 */
export function createEncryptStream(dataKey: Buffer, options: EncryptOptions = {}): Transform {
  const header = encodeHeader(randomBytes(SALT_BYTES), options.chunkLog2 ?? DEFAULT_CHUNK_LOG2);
  return new EncryptStream(deriveStreamKey(dataKey, header), header);
}

class EncryptStream extends Transform {
  readonly #key: Buffer;
  readonly #header: StreamHeader;
  readonly #queue = new ByteQueue();
  #index = 0;
  #headerSent = false;

  constructor(key: Buffer, header: StreamHeader) {
    super();
    this.#key = key;
    this.#header = header;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#sendHeader();
      this.#queue.push(chunk);
      const chunkBytes = this.#header.chunkBytes;
      // Strictly more than a chunk: then this chunk is certainly not the last.
      while (this.#queue.length > chunkBytes) this.#seal(this.#queue.take(chunkBytes), false);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.#sendHeader();
      this.#seal(this.#queue.takeAll(), true);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  #sendHeader(): void {
    if (this.#headerSent) return;
    this.#headerSent = true;
    this.push(this.#header.bytes);
  }

  #seal(plain: Buffer, final: boolean): void {
    const [ciphertext, tag] = sealChunkParts(this.#key, this.#header, this.#index, final, plain);
    this.#index += 1;
    if (ciphertext.length > 0) this.push(ciphertext);
    this.push(tag);
  }
}

/**
 * A Transform that decrypts a `strongbox-stream-v1` stream. Each chunk is authenticated before any of
 * its plaintext is pushed; the stream errors with an IntegrityError on a bad header, a chunk that does
 * not authenticate (altered, reordered, wrong key), a stream that ends without its final chunk
 * (truncated), or data after the final chunk (extended).
 * @example await pipeline(await vault.get(key), createDecryptStream(dataKey), target)
 */
export function createDecryptStream(dataKey: Buffer): Transform {
  return new DecryptStream(dataKey);
}

class DecryptStream extends Transform {
  readonly #dataKey: Buffer;
  readonly #queue = new ByteQueue();
  #header: StreamHeader | undefined;
  #key: Buffer | undefined;
  #index = 0;

  constructor(dataKey: Buffer) {
    super();
    this.#dataKey = dataKey;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#queue.push(chunk);
      if (this.#readHeader()) {
        const sealedBytes = (this.#header as StreamHeader).chunkBytes + TAG_BYTES;
        // Exactly one sealed chunk left may be the final one: keep it until the input ends.
        while (this.#queue.length > sealedBytes) this.#open(this.#queue.take(sealedBytes), false);
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (!this.#readHeader()) {
        throw new IntegrityError(
          this.#queue.length === 0
            ? 'encrypted stream is empty: no header'
            : `encrypted stream is truncated: ${this.#queue.length} of ${HEADER_BYTES} header bytes`,
        );
      }
      if (this.#queue.length < TAG_BYTES) {
        throw new IntegrityError(
          this.#index === 0
            ? 'encrypted stream is truncated: it ends after the header, without any chunk'
            : `encrypted stream is truncated: it ends after chunk ${this.#index - 1} without a final chunk`,
        );
      }
      this.#open(this.#queue.takeAll(), true);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  /** Reads the header once enough bytes are queued; whether it has been read. */
  #readHeader(): boolean {
    if (this.#header) return true;
    if (this.#queue.length < HEADER_BYTES) return false;
    this.#header = decodeHeader(this.#queue.take(HEADER_BYTES));
    this.#key = deriveStreamKey(this.#dataKey, this.#header);
    return true;
  }

  #open(sealed: Buffer, final: boolean): void {
    const plain = openChunk(this.#key as Buffer, this.#header as StreamHeader, this.#index, final, sealed);
    this.#index += 1;
    if (plain.length > 0) this.push(plain);
  }
}
