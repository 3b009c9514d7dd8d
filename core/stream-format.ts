/**
 * The encrypted-stream format, `strongbox-stream-v1` (docs/format.md specifies it byte by byte).
 *
 * A stream is a 24-byte header followed by chunks. Each chunk is at most `chunkBytes` of plaintext
 * sealed with AES-256-GCM (16-byte tag appended). The key of a stream is derived from the backup's data
 * key and the header's random salt (HKDF-SHA256), so every object of a backup has its own key and nonces
 * never repeat. The nonce of chunk i is i as 11 big-endian bytes plus a final-chunk flag byte (the STREAM
 * construction, as in age), and the header is the associated data of every chunk: reordering, truncation,
 * extension, a flipped bit or a changed header all fail authentication.
 *
 * These functions are pure; the streaming transforms live in agent/pipeline.
 */
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { IntegrityError } from './errors';

export const STREAM_SCHEME = 'strongbox-stream-v1';
export const HEADER_BYTES = 24;
export const TAG_BYTES = 16;
export const SALT_BYTES = 16;
export const DATA_KEY_BYTES = 32;
/** Default chunk size: 64 KiB (log2 16). */
export const DEFAULT_CHUNK_LOG2 = 16;
const MAGIC = Buffer.from('SBXS', 'ascii');
const VERSION = 1;
const MIN_CHUNK_LOG2 = 10;
const MAX_CHUNK_LOG2 = 24;
const HKDF_INFO = Buffer.from(STREAM_SCHEME, 'ascii');

/** What a header says. */
export interface StreamHeader {
  /** The header bytes, bound into every chunk as associated data. */
  bytes: Buffer;
  chunkBytes: number;
  salt: Buffer;
}

/** Builds a header from a fresh random salt. */
export function encodeHeader(salt: Buffer, chunkLog2 = DEFAULT_CHUNK_LOG2): StreamHeader {
  if (salt.length !== SALT_BYTES) throw new RangeError(`salt must be ${SALT_BYTES} bytes`);
  if (chunkLog2 < MIN_CHUNK_LOG2 || chunkLog2 > MAX_CHUNK_LOG2)
    throw new RangeError(`chunk log2 ${chunkLog2} out of range`);
  const bytes = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(bytes, 0);
  bytes[4] = VERSION;
  bytes[5] = chunkLog2;
  salt.copy(bytes, 8);
  return { bytes, chunkBytes: 2 ** chunkLog2, salt: Buffer.from(salt) };
}

/** Reads a header. @throws IntegrityError when the bytes are not a strongbox-stream-v1 header. */
export function decodeHeader(bytes: Buffer): StreamHeader {
  if (bytes.length < HEADER_BYTES)
    throw new IntegrityError('encrypted stream is truncated: header incomplete');
  if (!bytes.subarray(0, 4).equals(MAGIC))
    throw new IntegrityError('not a strongbox encrypted stream (bad magic)');
  if (bytes[4] !== VERSION) throw new IntegrityError(`unsupported encrypted stream version ${bytes[4]}`);
  const log2 = bytes[5] as number;
  if (log2 < MIN_CHUNK_LOG2 || log2 > MAX_CHUNK_LOG2 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new IntegrityError('encrypted stream header is corrupt');
  }
  const header = Buffer.from(bytes.subarray(0, HEADER_BYTES));
  return { bytes: header, chunkBytes: 2 ** log2, salt: header.subarray(8, 8 + SALT_BYTES) };
}

/** The AES-256 key of one stream: HKDF-SHA256(data key, salt, "strongbox-stream-v1"). */
export function deriveStreamKey(dataKey: Buffer, header: StreamHeader): Buffer {
  if (dataKey.length !== DATA_KEY_BYTES) throw new RangeError(`data key must be ${DATA_KEY_BYTES} bytes`);
  return Buffer.from(hkdfSync('sha256', dataKey, header.salt, HKDF_INFO, 32));
}

/** Nonce of chunk `index`: 11-byte big-endian counter, then 1 for the final chunk or 0. */
export function chunkNonce(index: number, final: boolean): Buffer {
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`bad chunk index ${index}`);
  const nonce = Buffer.alloc(12);
  nonce.writeUIntBE(index, 5, 6); // bytes 0-4 stay zero: 2^48 chunks of 64 KiB is far beyond any backup
  nonce[11] = final ? 1 : 0;
  return nonce;
}

/** Seals one chunk: ciphertext followed by the 16-byte tag. */
export function sealChunk(
  key: Buffer,
  header: StreamHeader,
  index: number,
  final: boolean,
  plain: Buffer,
): Buffer {
  return Buffer.concat(sealChunkParts(key, header, index, final, plain));
}

/**
 * Seals one chunk as its two parts, ciphertext and 16-byte tag, stored one after the other. Same bytes
 * as {@link sealChunk} without copying the ciphertext again: streams push both parts.
 */
export function sealChunkParts(
  key: Buffer,
  header: StreamHeader,
  index: number,
  final: boolean,
  plain: Buffer,
): [ciphertext: Buffer, tag: Buffer] {
  const cipher = createCipheriv('aes-256-gcm', key, chunkNonce(index, final));
  cipher.setAAD(header.bytes);
  const body = cipher.update(plain);
  cipher.final();
  return [body, cipher.getAuthTag()];
}

/**
 * Opens one chunk. @throws IntegrityError when it does not authenticate (wrong key, altered byte,
 * wrong position, or a final flag that does not match).
 */
export function openChunk(
  key: Buffer,
  header: StreamHeader,
  index: number,
  final: boolean,
  sealed: Buffer,
): Buffer {
  if (sealed.length < TAG_BYTES) throw new IntegrityError(`chunk ${index} is truncated`);
  const decipher = createDecipheriv('aes-256-gcm', key, chunkNonce(index, final));
  decipher.setAAD(header.bytes);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
  try {
    decipher.final();
  } catch (error) {
    throw new IntegrityError(
      `chunk ${index}${final ? ' (final)' : ''} failed authentication: the data was altered, truncated or reordered, or the key is wrong`,
      { cause: error },
    );
  }
  return plain;
}

/** Stored size of a plaintext of `plainBytes` bytes. */
export function encryptedSize(plainBytes: number, chunkBytes = 2 ** DEFAULT_CHUNK_LOG2): number {
  const chunks = Math.max(1, Math.ceil(plainBytes / chunkBytes));
  return HEADER_BYTES + plainBytes + chunks * TAG_BYTES;
}
