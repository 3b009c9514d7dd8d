/**
 * Row counts from a pg_dump custom archive's bytes: archives built here field by field as pg_dump
 * writes them (src/bin/pg_dump/pg_backup_archiver.c), fed whole and split at every byte.
 */
import { describe, expect, it } from 'vitest';
import { ArchiveRowCounter } from '#agent/sources/postgres/archive-rows';
import { archive, dataBlock, type Entry, int, str } from '#test/support/pg-archive';

function countAll(bytes: Buffer, pieces: number[] = [bytes.length]): ArchiveRowCounter {
  const counter = new ArchiveRowCounter();
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = pieces[i % pieces.length] as number;
    counter.write(bytes.subarray(at, at + size));
    at += size;
  }
  counter.end();
  return counter;
}

const entries: Entry[] = [
  { id: 7, desc: 'TABLE DATA', schema: 'public', tag: 'orders' },
  { id: 8, desc: 'TABLE DATA', schema: 'sales', tag: 'empty' },
  { id: 9, desc: 'BLOBS', tag: 'BLOBS' },
];
const rows = ['1\tone\n', '2\ttwo\\nlines\n', '3\t\\\\.\n', '4\t\\N\n'];
const blob = Buffer.concat([Buffer.from([3]), int(9), int(16384), str('\n\n\n'), int(0), int(0)]);
const whole = archive(entries, [dataBlock(7, rows), dataBlock(8, []), blob]);

describe('ArchiveRowCounter', () => {
  it('counts each table data block’s COPY lines, not its terminator nor large objects’ bytes', () => {
    const counter = countAll(whole);
    expect(counter.failure).toBeUndefined();
    expect([...counter.counts()]).toEqual([
      ['["public","orders"]', 4],
      ['["sales","empty"]', 0],
    ]);
  });

  it('counts the same whatever the chunk boundaries', () => {
    for (const pieces of [[1], [2], [3], [7], [5, 1, 9]]) {
      const counter = countAll(whole, pieces);
      expect(counter.failure).toBeUndefined();
      expect(counter.counts().get('["public","orders"]')).toBe(4);
    }
  });

  it('also reads archive versions 1.15 (algorithm byte) and 1.16 (relkind)', () => {
    for (const version of [15, 16]) {
      const counter = countAll(archive(entries.slice(0, 1), [dataBlock(7, rows)], version));
      expect(counter.counts().get('["public","orders"]')).toBe(4);
    }
  });

  it('gives up on a data block that does not end with COPY’s terminator', () => {
    const counter = countAll(archive(entries.slice(0, 1), [dataBlock(7, rows, '5\tfive\n')]));
    expect(counter.failure).toMatch(/does not end with COPY's terminator/);
    expect(() => counter.counts()).toThrow(/terminator/);
  });

  it('reads the terminator across short chunks after long rows, and sees a short chunk after it', () => {
    const split = archive(entries.slice(0, 1), [dataBlock(7, ['1\tone\n', '2\ttwo\n', '\\.\n', '\n\n'], '')]);
    expect(countAll(split).counts().get('["public","orders"]')).toBe(2);
    const after = archive(entries.slice(0, 1), [dataBlock(7, ['1\tone\n', 'x\\.\n\n\n', 'z\n'], '')]);
    for (const pieces of [[after.length], [3], [7]]) {
      expect(countAll(after, pieces).failure).toMatch(/does not end with COPY's terminator/);
    }
  });

  it('gives up on a truncated archive, a compressed one and an unknown version', () => {
    expect(countAll(whole.subarray(0, whole.length - 3)).failure).toMatch(/ended inside a data block/);
    expect(countAll(whole.subarray(0, 40)).failure).toMatch(/ended inside its TOC/);
    const compressed = Buffer.from(whole);
    compressed.writeUInt32LE(6, 12); // the compression level int of a 1.14 header
    expect(countAll(compressed).failure).toMatch(/compressed/);
    expect(countAll(archive(entries, [], 17)).failure).toMatch(/version 1\.17 is not known/);
    expect(countAll(Buffer.from('-- plain SQL\n')).failure).toMatch(/not a pg_dump custom archive/);
  });
});
