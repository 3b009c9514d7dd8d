import { createCipheriv, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '#core/errors';
import {
  chunkNonce,
  DATA_KEY_BYTES,
  DEFAULT_CHUNK_LOG2,
  decodeHeader,
  deriveStreamKey,
  encodeHeader,
  encryptedSize,
  HEADER_BYTES,
  openChunk,
  SALT_BYTES,
  STREAM_SCHEME,
  sealChunk,
  sealChunkParts,
  TAG_BYTES,
} from '#core/stream-format';

const SALT = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
const OTHER_SALT = Buffer.from('f0e0d0c0b0a090807060504030201000', 'hex');
const DATA_KEY = Buffer.alloc(DATA_KEY_BYTES, 0x42);
const OTHER_DATA_KEY = Buffer.alloc(DATA_KEY_BYTES, 0x43);
const PLAIN = Buffer.from('row 1\nrow 2\nrow 3\n');

/** The header bytes with one byte set to `value`. */
function headerWith(offset: number, value: number): Buffer {
  const bytes = Buffer.from(encodeHeader(SALT).bytes);
  bytes[offset] = value;
  return bytes;
}

describe('encodeHeader', () => {
  it('lays out magic, version, chunk size, two zero bytes and the salt in 24 bytes', () => {
    // Act
    const header = encodeHeader(SALT);

    // Assess
    expect(header.bytes.toString('hex')).toBe(`5342585301100000${SALT.toString('hex')}`);
    expect(header.bytes).toHaveLength(HEADER_BYTES);
    expect(header.chunkBytes).toBe(65_536);
    expect(header.salt.equals(SALT)).toBe(true);
  });

  it.each([
    [10, 1024],
    [20, 1_048_576],
    [24, 16_777_216],
  ])('writes chunk size 2^%i as its exponent', (log2, bytes) => {
    // Act
    const header = encodeHeader(SALT, log2);

    // Assess
    expect(header.bytes[5]).toBe(log2);
    expect(header.chunkBytes).toBe(bytes);
  });

  it('keeps its own copy of the salt', () => {
    // Prepare
    const salt = Buffer.from(SALT);
    const header = encodeHeader(salt);

    // Act
    salt.fill(0);

    // Assess
    expect(header.salt.equals(SALT)).toBe(true);
    expect(header.bytes.subarray(8).equals(SALT)).toBe(true);
  });

  it.each([
    ['a short salt', Buffer.alloc(SALT_BYTES - 1), DEFAULT_CHUNK_LOG2],
    ['a long salt', Buffer.alloc(SALT_BYTES + 1), DEFAULT_CHUNK_LOG2],
    ['chunks under 1 KiB', SALT, 9],
    ['chunks over 16 MiB', SALT, 25],
  ])('refuses %s', (_, salt, log2) => {
    // Act
    const act = () => encodeHeader(salt, log2);

    // Assess
    expect(act).toThrow(RangeError);
  });
});

describe('decodeHeader', () => {
  it('reads back what encodeHeader wrote', () => {
    // Prepare
    const written = encodeHeader(SALT, 12);

    // Act
    const read = decodeHeader(written.bytes);

    // Assess
    expect(read).toEqual(written);
  });

  it('reads the header at the start of a longer buffer', () => {
    // Prepare
    const stream = Buffer.concat([encodeHeader(SALT).bytes, Buffer.from('first chunk')]);

    // Act
    const header = decodeHeader(stream);

    // Assess
    expect(header.bytes.equals(encodeHeader(SALT).bytes)).toBe(true);
  });

  it.each([
    ['an empty buffer', Buffer.alloc(0), 'encrypted stream is truncated: header incomplete'],
    [
      '23 bytes',
      encodeHeader(SALT).bytes.subarray(0, 23),
      'encrypted stream is truncated: header incomplete',
    ],
    ['another magic', headerWith(0, 0x00), 'not a strongbox encrypted stream (bad magic)'],
    [
      'a gzip stream',
      Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(20)]),
      'not a strongbox encrypted stream (bad magic)',
    ],
    ['version 0', headerWith(4, 0), 'unsupported encrypted stream version 0'],
    ['version 2', headerWith(4, 2), 'unsupported encrypted stream version 2'],
    ['chunk size 2^9', headerWith(5, 9), 'encrypted stream header is corrupt'],
    ['chunk size 2^25', headerWith(5, 25), 'encrypted stream header is corrupt'],
    ['a set reserved byte 6', headerWith(6, 1), 'encrypted stream header is corrupt'],
    ['a set reserved byte 7', headerWith(7, 0x80), 'encrypted stream header is corrupt'],
  ])('rejects %s with an IntegrityError', (_, bytes, message) => {
    // Act
    const act = () => decodeHeader(bytes);

    // Assess
    expect(act).toThrow(new IntegrityError(message));
    expect(act).toThrow(IntegrityError);
  });
});

describe('deriveStreamKey', () => {
  it('is HKDF-SHA256 of the data key with the header salt and the scheme name as info', () => {
    // Prepare: RFC 5869 by hand, one block of output
    const prk = createHmac('sha256', SALT).update(DATA_KEY).digest();
    const expected = createHmac('sha256', prk)
      .update(Buffer.concat([Buffer.from('strongbox-stream-v1'), Buffer.from([1])]))
      .digest();

    // Act
    const key = deriveStreamKey(DATA_KEY, encodeHeader(SALT));

    // Assess
    expect(STREAM_SCHEME).toBe('strongbox-stream-v1');
    expect(key.toString('hex')).toBe(expected.toString('hex'));
  });

  it('gives every salt its own key under one data key', () => {
    // Act
    const keys = [SALT, OTHER_SALT].map((salt) =>
      deriveStreamKey(DATA_KEY, encodeHeader(salt)).toString('hex'),
    );

    // Assess
    expect(keys[0]).not.toBe(keys[1]);
  });

  it.each([16, 31, 33])('refuses a data key of %i bytes', (length) => {
    // Act
    const act = () => deriveStreamKey(Buffer.alloc(length), encodeHeader(SALT));

    // Assess
    expect(act).toThrow(RangeError);
  });
});

describe('chunkNonce', () => {
  it.each([
    [0, false, '000000000000000000000000'],
    [0, true, '000000000000000000000001'],
    [1, false, '000000000000000000000100'],
    [0x0102030405, true, '000000000000010203040501'],
    [2 ** 48 - 1, false, '0000000000ffffffffffff00'],
  ])('is chunk %i as 11 big-endian bytes, then the final flag (%s)', (index, final, hex) => {
    // Act
    const nonce = chunkNonce(index, final);

    // Assess
    expect(nonce.toString('hex')).toBe(hex);
  });

  it.each([-1, 1.5, Number.NaN, 2 ** 53])('refuses the index %d', (index) => {
    // Act
    const act = () => chunkNonce(index, false);

    // Assess
    expect(act).toThrow(RangeError);
  });

  it('refuses an index beyond 48 bits', () => {
    // Act
    const act = () => chunkNonce(2 ** 48, false);

    // Assess
    expect(act).toThrow(RangeError);
  });
});

describe('sealChunk and openChunk', () => {
  const header = encodeHeader(SALT);
  const key = deriveStreamKey(DATA_KEY, header);

  it('round-trips a chunk', () => {
    // Prepare
    const sealed = sealChunk(key, header, 3, false, PLAIN);

    // Act
    const opened = openChunk(key, header, 3, false, sealed);

    // Assess
    expect(opened.equals(PLAIN)).toBe(true);
    expect(sealed).toHaveLength(PLAIN.length + TAG_BYTES);
  });

  it('round-trips an empty final chunk as a bare tag', () => {
    // Prepare
    const sealed = sealChunk(key, header, 0, true, Buffer.alloc(0));

    // Act
    const opened = openChunk(key, header, 0, true, sealed);

    // Assess
    expect(sealed).toHaveLength(TAG_BYTES);
    expect(opened).toHaveLength(0);
  });

  it('is AES-256-GCM with the chunk nonce and the header as associated data', () => {
    // Prepare
    const cipher = createCipheriv('aes-256-gcm', key, Buffer.from('000000000000000000000701', 'hex'));
    cipher.setAAD(header.bytes);
    const expected = Buffer.concat([cipher.update(PLAIN), cipher.final(), cipher.getAuthTag()]);

    // Act
    const sealed = sealChunk(key, header, 7, true, PLAIN);

    // Assess
    expect(sealed.toString('hex')).toBe(expected.toString('hex'));
  });

  it('seals the same bytes in two parts as in one', () => {
    // Act
    const [ciphertext, tag] = sealChunkParts(key, header, 5, false, PLAIN);

    // Assess
    expect(Buffer.concat([ciphertext, tag]).equals(sealChunk(key, header, 5, false, PLAIN))).toBe(true);
    expect(tag).toHaveLength(TAG_BYTES);
  });

  const sealed = sealChunk(key, header, 2, false, PLAIN);
  const flipped = (offset: number) => {
    const copy = Buffer.from(sealed);
    copy[offset] = (copy[offset] as number) ^ 0x01;
    return copy;
  };
  const otherHeader = encodeHeader(OTHER_SALT);

  it.each([
    ['a chunk moved to another position', key, header, 1, false, sealed],
    ['a non-final chunk opened as the final one (truncation)', key, header, 2, true, sealed],
    ['a bit flipped in the ciphertext', key, header, 2, false, flipped(0)],
    ['a bit flipped in the tag', key, header, 2, false, flipped(sealed.length - 1)],
    ['a chunk cut short', key, header, 2, false, sealed.subarray(0, sealed.length - 1)],
    ['a chunk with a byte appended', key, header, 2, false, Buffer.concat([sealed, Buffer.from([0])])],
    ['the key of another backup', deriveStreamKey(OTHER_DATA_KEY, header), header, 2, false, sealed],
    ['another header under the same key', key, otherHeader, 2, false, sealed],
    [
      'another header and its own key (a swapped header)',
      deriveStreamKey(DATA_KEY, otherHeader),
      otherHeader,
      2,
      false,
      sealed,
    ],
    ['the header with a different chunk size', key, encodeHeader(SALT, 20), 2, false, sealed],
  ])('fails with an IntegrityError for %s', (_, openKey, openHeader, index, final, bytes) => {
    // Act
    const act = () => openChunk(openKey, openHeader, index, final, bytes);

    // Assess
    expect(act).toThrow(IntegrityError);
    expect(act).toThrow(`chunk ${index}${final ? ' (final)' : ''} failed authentication`);
  });

  it('opens a final chunk only as the final one (extension)', () => {
    // Prepare
    const last = sealChunk(key, header, 4, true, PLAIN);

    // Act
    const act = () => openChunk(key, header, 4, false, last);

    // Assess
    expect(act).toThrow(IntegrityError);
  });

  it.each([0, 15])('says a chunk of %i bytes is truncated, shorter than a tag', (length) => {
    // Act
    const act = () => openChunk(key, header, 9, false, sealed.subarray(0, length));

    // Assess
    expect(act).toThrow(new IntegrityError('chunk 9 is truncated'));
  });
});

describe('encryptedSize', () => {
  const C = 65_536;

  it.each([
    ['nothing, as one empty final chunk', 0, HEADER_BYTES + TAG_BYTES],
    ['one byte', 1, HEADER_BYTES + 1 + TAG_BYTES],
    ['exactly one chunk', C, HEADER_BYTES + C + TAG_BYTES],
    ['a byte over one chunk', C + 1, HEADER_BYTES + C + 1 + 2 * TAG_BYTES],
    ['exactly two chunks, the second full and final', 2 * C, HEADER_BYTES + 2 * C + 2 * TAG_BYTES],
    ['a gibibyte', 2 ** 30, HEADER_BYTES + 2 ** 30 + 2 ** 14 * TAG_BYTES],
  ])('stores %s in header + plaintext + one tag per chunk', (_, plainBytes, stored) => {
    // Act
    const size = encryptedSize(plainBytes);

    // Assess
    expect(size).toBe(stored);
  });

  it('counts chunks of the size given', () => {
    // Act
    const size = encryptedSize(4096, 1024);

    // Assess
    expect(size).toBe(HEADER_BYTES + 4096 + 4 * TAG_BYTES);
  });

  it('matches the bytes of a stream sealed chunk by chunk', () => {
    // Prepare
    const header = encodeHeader(SALT, 10);
    const key = deriveStreamKey(DATA_KEY, header);
    const plain = Buffer.alloc(2500, 7);
    const chunks = [plain.subarray(0, 1024), plain.subarray(1024, 2048), plain.subarray(2048)];

    // Act
    const stream = Buffer.concat([
      header.bytes,
      ...chunks.map((chunk, i) => sealChunk(key, header, i, i === chunks.length - 1, chunk)),
    ]);

    // Assess
    expect(stream).toHaveLength(encryptedSize(plain.length, 1024));
  });
});
