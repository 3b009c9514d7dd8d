import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { createDecryptStream, createEncryptStream } from '#agent/pipeline/encrypt';
import { IntegrityError } from '#core/errors';
import { encryptedSize, HEADER_BYTES, TAG_BYTES } from '#core/stream-format';

const CHUNK_LOG2 = 10;
const CHUNK = 2 ** CHUNK_LOG2;
const SEALED = CHUNK + TAG_BYTES;
const key = randomBytes(32);

/** Splits a buffer into pieces of the given sizes, cycling through them. */
function pieces(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  let i = 0;
  while (offset < data.length) {
    const size = sizes[i++ % sizes.length] as number;
    out.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return out;
}

async function encrypt(plain: Buffer, chunkLog2 = CHUNK_LOG2, sizes = [plain.length || 1]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(pieces(plain, sizes), { objectMode: false }),
    createEncryptStream(key, { chunkLog2 }),
    new Writable({
      write(chunk: Buffer, _e, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

/** Decrypts, collecting whatever plaintext the stream emitted, also when it fails. */
async function decrypt(
  sealed: Buffer,
  dataKey = key,
  sizes = [97],
): Promise<{ output: Buffer; error: unknown }> {
  const out: Buffer[] = [];
  let error: unknown;
  try {
    await pipeline(
      Readable.from(pieces(sealed, sizes), { objectMode: false }),
      createDecryptStream(dataKey),
      new Writable({
        write(chunk: Buffer, _e, cb) {
          out.push(chunk);
          cb();
        },
      }),
    );
  } catch (caught) {
    error = caught;
  }
  return { output: Buffer.concat(out), error };
}

/** Plaintext of the chunks before chunk `index`: all a decrypt stream may emit before it fails there. */
function verifiedPrefix(plain: Buffer, index: number): Buffer {
  return plain.subarray(0, Math.max(0, index) * CHUNK);
}

describe('encrypt and decrypt streams', () => {
  it.each([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 123])(
    'round-trips %i bytes with the stored size the format predicts',
    async (size) => {
      // Prepare
      const plain = randomBytes(size);

      // Act
      const sealed = await encrypt(plain, CHUNK_LOG2, [7, 300, 1500]);
      const { output, error } = await decrypt(sealed, key, [5, 1000, 3000]);

      // Assess
      expect(error).toBeUndefined();
      expect(sealed.length).toBe(encryptedSize(size, CHUNK));
      expect(output.equals(plain)).toBe(true);
    },
  );

  it('round-trips at the default 64 KiB chunk size with large and tiny writes', async () => {
    const plain = randomBytes(5 * 65_536 + 17);
    const sealed = await encrypt(plain, 16, [1, 200_000, 3]);
    expect(sealed.length).toBe(encryptedSize(plain.length));
    const { output, error } = await decrypt(sealed, key, [65_552, 1, 100_000]);
    expect(error).toBeUndefined();
    expect(output.equals(plain)).toBe(true);
  });

  it('uses a fresh salt, so the same plaintext never encrypts the same way twice', async () => {
    const plain = Buffer.alloc(3000, 1);
    const [a, b] = await Promise.all([encrypt(plain), encrypt(plain)]);
    expect(a.subarray(8, HEADER_BYTES).equals(b.subarray(8, HEADER_BYTES))).toBe(false);
    expect(a.subarray(HEADER_BYTES).equals(b.subarray(HEADER_BYTES))).toBe(false);
  });

  describe('tampering', () => {
    const plain = randomBytes(3 * CHUNK + 200);
    let sealed: Buffer;
    const sealedOnce = async () => {
      sealed ??= await encrypt(plain);
      return sealed;
    };

    it('rejects every single-byte flip, emitting only plaintext of the chunks before the flip', async () => {
      const original = await sealedOnce();
      expect(original.length).toBe(HEADER_BYTES + 4 * TAG_BYTES + plain.length);
      for (let position = 0; position < original.length; position++) {
        const altered = Buffer.from(original);
        altered[position] = (altered[position] as number) ^ 0x01;
        const { output, error } = await decrypt(altered);
        const chunk = position < HEADER_BYTES ? -1 : Math.floor((position - HEADER_BYTES) / SEALED);
        expect(error, `flip at byte ${position}`).toBeInstanceOf(IntegrityError);
        expect(output.equals(verifiedPrefix(plain, chunk)), `output after flip at byte ${position}`).toBe(
          true,
        );
      }
    });

    it('rejects truncation at every chunk boundary and in the middle of every chunk', async () => {
      const original = await sealedOnce();
      const cuts = [0, 1, HEADER_BYTES - 1, HEADER_BYTES];
      for (let i = 0; i < 4; i++) {
        const start = HEADER_BYTES + i * SEALED;
        cuts.push(start + 1, start + TAG_BYTES - 1, start + TAG_BYTES, start + 500, start + SEALED - 1);
        if (i < 3) cuts.push(start + SEALED); // a boundary after a non-final chunk
      }
      for (const cut of cuts.filter((c) => c < original.length)) {
        const { output, error } = await decrypt(original.subarray(0, cut));
        expect(error, `cut at byte ${cut}`).toBeInstanceOf(IntegrityError);
        const complete = Math.floor((cut - HEADER_BYTES) / SEALED);
        // Chunks before the cut may be emitted, except the last whole one that is held as a final candidate.
        expect(output.length % CHUNK, `cut at ${cut}`).toBe(0);
        expect(output.length).toBeLessThanOrEqual(Math.max(0, complete) * CHUNK);
        expect(output.equals(plain.subarray(0, output.length))).toBe(true);
      }
    });

    it('rejects two chunks swapped', async () => {
      const original = await sealedOnce();
      const chunk = (i: number) =>
        original.subarray(HEADER_BYTES + i * SEALED, HEADER_BYTES + (i + 1) * SEALED);
      const swapped = Buffer.concat([
        original.subarray(0, HEADER_BYTES),
        chunk(1),
        chunk(0),
        original.subarray(HEADER_BYTES + 2 * SEALED),
      ]);
      const { output, error } = await decrypt(swapped);
      expect(error).toBeInstanceOf(IntegrityError);
      expect(output.length).toBe(0);
    });

    it.each([
      ['one byte', Buffer.from([0])],
      ['a tag-sized block', Buffer.alloc(TAG_BYTES)],
      ['a whole chunk of zeros', Buffer.alloc(SEALED)],
    ])('rejects %s appended after the final chunk', async (_name, extra) => {
      const original = await sealedOnce();
      const { error } = await decrypt(Buffer.concat([original, extra]));
      expect(error).toBeInstanceOf(IntegrityError);
    });

    it('rejects the final chunk repeated', async () => {
      const original = await sealedOnce();
      const last = original.subarray(HEADER_BYTES + 3 * SEALED);
      const { error } = await decrypt(Buffer.concat([original, last]));
      expect(error).toBeInstanceOf(IntegrityError);
    });

    it('rejects a wrong data key before emitting anything', async () => {
      const { output, error } = await decrypt(await sealedOnce(), randomBytes(32));
      expect(error).toBeInstanceOf(IntegrityError);
      expect(output.length).toBe(0);
    });

    it('rejects data that is not an encrypted stream, naming the problem', async () => {
      const { error } = await decrypt(Buffer.from('PGDMP this is a plain dump, not a strongbox stream'));
      expect(error).toBeInstanceOf(IntegrityError);
      expect((error as Error).message).toMatch(/bad magic/);
      const empty = await decrypt(Buffer.alloc(0));
      expect((empty.error as Error).message).toMatch(/empty/);
    });
  });
});
