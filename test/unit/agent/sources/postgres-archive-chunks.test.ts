/**
 * Joining a pg_dump custom archive's data chunks (agent/sources/postgres/archive-chunks): the same
 * bytes in fewer chunks, every byte outside the chunks as it was, whatever way the input is split, and
 * anything not understood passed on unchanged. test/integration/postgres-archive-chunks.test.ts runs
 * real pg_dump archives through pg_restore.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { JOINED_CHUNK_BYTES, joinArchiveChunks } from '#agent/sources/postgres/archive-chunks';
import { parseHead } from '#agent/sources/postgres/archive-rows';
import { archive, dataBlock, type Entry, int, str } from '#test/support/pg-archive';

/** `bytes` through the joiner, written in pieces of the given sizes (repeated). */
async function join(bytes: Buffer, pieces: number[] = [bytes.length]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = pieces[i % pieces.length] as number;
    parts.push(bytes.subarray(at, at + size));
    at += size;
  }
  const out: Buffer[] = [];
  for await (const chunk of Readable.from(parts).pipe(joinArchiveChunks())) out.push(chunk as Buffer);
  return Buffer.concat(out);
}

interface Run {
  /** The large object's oid, for a BLOBS block. */
  oid?: number;
  data: Buffer;
  chunks: number[];
}

/** The blocks after the head: type, dump id and each run of chunks (their bytes joined, their sizes). */
function decode(bytes: Buffer): { head: Buffer; blocks: { type: number; id: number; runs: Run[] }[] } {
  const headBytes = parseHead(bytes).bytes;
  let pos = headBytes;
  const int4 = () => {
    const value = bytes.readUInt32LE(pos + 1) * (bytes[pos] === 0 ? 1 : -1);
    pos += 5;
    return value;
  };
  const chunks = (oid?: number): Run => {
    const run: Run = { ...(oid === undefined ? {} : { oid }), data: Buffer.alloc(0), chunks: [] };
    const data: Buffer[] = [];
    for (let length = int4(); length !== 0; length = int4()) {
      data.push(bytes.subarray(pos, pos + length));
      run.chunks.push(length);
      pos += length;
    }
    run.data = Buffer.concat(data);
    return run;
  };
  const blocks = [];
  while (pos < bytes.length) {
    const type = bytes[pos++] as number;
    const id = int4();
    const runs: Run[] = [];
    if (type === 3) for (let oid = int4(); oid !== 0; oid = int4()) runs.push(chunks(oid));
    else runs.push(chunks());
    blocks.push({ type, id, runs });
  }
  return { head: bytes.subarray(0, headBytes), blocks };
}

const entries: Entry[] = [
  { id: 7, desc: 'TABLE DATA', schema: 'public', tag: 'orders' },
  { id: 8, desc: 'TABLE DATA', schema: 'sales', tag: 'empty' },
  { id: 9, desc: 'BLOBS', tag: 'BLOBS' },
];
const rows = Array.from({ length: 2000 }, (_, i) => `${i}\trow ${'x'.repeat(i % 90)}\n`);
const blob = Buffer.concat([
  Buffer.from([3]),
  int(9),
  int(16384),
  str('large'),
  str(' object'),
  int(0),
  int(16385),
  str('another'),
  int(0),
  int(0),
]);
const whole = archive(entries, [dataBlock(7, rows), dataBlock(8, []), blob]);

/** What decode gives without the chunk sizes: the archive's meaning to pg_restore. */
function meaning(bytes: Buffer) {
  const { head, blocks } = decode(bytes);
  return { head, blocks: blocks.map((b) => ({ ...b, runs: b.runs.map(({ chunks: _, ...run }) => run) })) };
}

describe('joinArchiveChunks', () => {
  it('joins each run of chunks into few, keeping the bytes and everything outside the chunks', async () => {
    const joined = await join(whole);
    expect(meaning(joined)).toEqual(meaning(whole));
    const before = decode(whole).blocks.map((b) => b.runs.map((r) => r.chunks.length));
    const after = decode(joined).blocks.map((b) => b.runs.map((r) => r.chunks.length));
    expect(before).toEqual([[2001], [1], [2, 1]]);
    // The table's 2001 chunks (2000 rows and COPY's terminator) in 2 of at most 64 KiB.
    expect(after).toEqual([[2], [1], [1, 1]]);
    expect(decode(joined).blocks[0]?.runs[0]?.chunks).toEqual([
      JOINED_CHUNK_BYTES,
      (decode(whole).blocks[0]?.runs[0]?.data.length ?? 0) - JOINED_CHUNK_BYTES,
    ]);
    expect(joined.length).toBeLessThan(whole.length);
  });

  it('writes the same bytes however its input is split', async () => {
    const once = await join(whole);
    for (const pieces of [[1], [2], [3], [5, 1], [7], [4096], [65537, 3]]) {
      expect((await join(whole, pieces)).equals(once), `pieces of ${pieces.join(', ')}`).toBe(true);
    }
  });

  it('passes a chunk larger than the joined size on in pieces of it, bytes unchanged', async () => {
    const big = `1\t${'y'.repeat(3 * JOINED_CHUNK_BYTES + 17)}\n`;
    const bytes = archive(entries.slice(0, 1), [dataBlock(7, [big, '2\tsmall\n'])]);
    const joined = await join(bytes, [1000]);
    expect(meaning(joined)).toEqual(meaning(bytes));
    expect(Math.max(...(decode(joined).blocks[0]?.runs[0]?.chunks ?? []))).toBe(JOINED_CHUNK_BYTES);
  });

  it('passes an archive of compressed data through unchanged', async () => {
    const compressed = archive(entries.slice(0, 1), [dataBlock(7, rows.slice(0, 50))], 15);
    compressed[11] = 1; // the compression algorithm byte of version 1.15: gzip
    expect((await join(compressed, [100])).equals(compressed)).toBe(true);
  });

  it('passes everything from a block it does not know on as it is', async () => {
    const unknown = Buffer.concat([Buffer.from([9]), int(12), Buffer.from('whatever follows')]);
    const bytes = Buffer.concat([whole, unknown]);
    const joined = await join(bytes, [333]);
    expect(joined.subarray(joined.length - unknown.length).equals(unknown)).toBe(true);
    expect(meaning(joined.subarray(0, joined.length - unknown.length))).toEqual(meaning(whole));
  });

  it('ends a stream cut inside a chunk inside a chunk, so pg_restore still finds it cut', async () => {
    const big = `1\t${'z'.repeat(100_000)}\n`;
    const bytes = archive(entries.slice(0, 1), [dataBlock(7, ['0\tfirst\n', big])]);
    const cut = bytes.subarray(0, bytes.length - 50_000);
    const joined = await join(cut, [4096]);
    const headBytes = parseHead(joined).bytes;
    // Type, dump id, then one joined chunk whose length runs past the end of the stream.
    const length = joined.readUInt32LE(headBytes + 1 + 5 + 1);
    expect(length).toBe('0\tfirst\n'.length + big.length);
    expect(joined.length).toBeLessThan(headBytes + 1 + 5 + 5 + length);
  });
});
