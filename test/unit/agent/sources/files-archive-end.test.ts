/**
 * ArchiveEndCut against archives GNU tar wrote and headers made by hand: what it passes is the archive
 * without its end, whatever the chunking, so a second archive written after it is read as part of one
 * archive by a plain `tar` — never by guessing at trailing zeros, which a member's own data can end with.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { ArchiveEndCut } from '#agent/sources/files/archive-end';
import { SourceError } from '#core/errors';
import { tempDirSync } from '#test/support/temp';

const work = tempDirSync('strongbox-archive-end-');

/** A posix archive GNU tar writes of `files` (name → content), in that order. */
function tarOf(dir: string, files: Record<string, Buffer | string>): Buffer {
  mkdirSync(join(work, dir));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(work, dir, name), content);
  return execFileSync(
    'tar',
    ['-c', '--format=posix', '-f', '-', '-C', join(work, dir), ...Object.keys(files)],
    {
      maxBuffer: 64 * 1024 * 1024,
    },
  );
}

/** The archive through the cut, fed in chunks of `size` bytes. */
async function cut(archive: Buffer, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let at = 0; at < archive.length; at += size) chunks.push(archive.subarray(at, at + size));
  return buffer(Readable.from(chunks).pipe(new ArchiveEndCut()));
}

/** `tar -tv` of an archive: one line per member with its size and name. */
function listing(archive: Buffer): string[] {
  return execFileSync('tar', ['-tv', '-f', '-'], { input: archive })
    .toString()
    .trim()
    .split('\n')
    .map((line) => line.replace(/^\S+\s+\S+\s+(\d+)\s+\S+\s+\S+\s+/, '$1 '));
}

/** A ustar header block by hand: name, typeflag, the size field's 12 bytes, a valid checksum. */
function header(name: string, type: string, sizeField: Buffer): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 'latin1');
  block.write('0000644\0', 100, 'latin1');
  block.write('0000000\0', 108, 'latin1');
  block.write('0000000\0', 116, 'latin1');
  sizeField.copy(block, 124);
  block.write('00000000000\0', 136, 'latin1');
  block.write(type, 156, 'latin1');
  block.write('ustar\x0000', 257, 'latin1');
  block.fill(0x20, 148, 156);
  const sum = block.reduce((total, byte) => total + byte, 0);
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

function octalSize(size: number): Buffer {
  return Buffer.from(`${size.toString(8).padStart(11, '0')}\0`, 'latin1');
}

/** `data` padded to whole blocks. */
function blocks(data: Buffer | string): Buffer {
  const bytes = Buffer.from(data);
  return Buffer.concat([bytes, Buffer.alloc((512 - (bytes.length % 512)) % 512)]);
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = body.length + 1;
  while (`${length}${body}`.length !== length) length++;
  return `${length}${body}`;
}

const END = Buffer.alloc(1024);

describe('ArchiveEndCut', () => {
  const first = tarOf('first', { 'a.txt': 'alpha\n', 'zeros.bin': Buffer.alloc(5000) });
  const second = tarOf('second', { 'b.txt': 'beta\n' });

  it.each([1, 7, 511, 512, 513, 10240, 1 << 20])(
    'passes everything up to the end, in chunks of %i bytes, so an archive after it continues it',
    async (size) => {
      const joined = Buffer.concat([await cut(first, size), second]);

      expect(listing(joined)).toEqual(['6 a.txt', '5000 zeros.bin', '5 b.txt']);
    },
  );

  it('keeps the zero blocks a last member’s data ends with (the end is found where a header is due)', async () => {
    const passed = await cut(first, 4096);

    // zeros.bin is last: its 5000 zero bytes fill ten blocks that look like the end but are data.
    expect(passed.length % 512).toBe(0);
    expect(listing(Buffer.concat([passed, END]))).toEqual(['6 a.txt', '5000 zeros.bin']);
    expect(
      execFileSync('tar', ['-xO', '-f', '-', 'zeros.bin'], { input: Buffer.concat([passed, END]) }),
    ).toEqual(Buffer.alloc(5000));
  });

  it('takes a member’s size from a pax size record over its header’s field', async () => {
    // GNU tar writes `size` in a pax header for members of 8 GiB and more; here the field says 0.
    const records = paxRecord('size', '600');
    const archive = Buffer.concat([
      header('PaxHeaders/big', 'x', octalSize(records.length)),
      blocks(records),
      header('big', '0', octalSize(0)),
      blocks(Buffer.alloc(600, 0x61)),
      header('after', '0', octalSize(3)),
      blocks('abc'),
      END,
    ]);

    const passed = await cut(archive, 100);

    expect(passed).toEqual(archive.subarray(0, archive.length - END.length));
    expect(listing(archive)).toEqual(['600 big', '3 after']);
  });

  it('reads a base-256 size field', async () => {
    const field = Buffer.alloc(12);
    field[0] = 0x80;
    field.writeUInt16BE(700, 10);
    const archive = Buffer.concat([header('b256', '0', field), blocks(Buffer.alloc(700, 0x62)), END]);

    expect(await cut(archive, 333)).toEqual(archive.subarray(0, archive.length - END.length));
  });

  it('fails on a block that is not a header where one is due', async () => {
    const broken = Buffer.from(first);
    broken[1024 + 10] = (broken[1024 + 10] as number) ^ 0xff; // in a.txt's header, after its pax header and the pax records' block

    await expect(cut(broken, 512)).rejects.toThrow(SourceError);
    await expect(cut(broken, 512)).rejects.toThrow(/not a header where one is due, at byte 1024/);
  });

  it('fails on an archive cut before its end, and on data after its end', async () => {
    const trailing = Buffer.concat([first, Buffer.from('x')]);

    await expect(cut(first.subarray(0, 4096), 1000)).rejects.toThrow(
      /ended at byte \d+ without its end-of-archive blocks/,
    );
    await expect(cut(trailing, 1000)).rejects.toThrow(`has data after its end, at byte ${first.length}`);
  });
});
