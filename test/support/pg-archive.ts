/**
 * pg_dump custom archives built field by field as pg_dump writes them
 * (src/bin/pg_dump/pg_backup_archiver.c, pg_backup_custom.c): 4-byte ints, uncompressed data.
 */

/** pg_dump's WriteInt with 4-byte ints: a sign byte, then the value least significant byte first. */
export function int(value: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = value < 0 ? 1 : 0;
  b.writeUInt32LE(Math.abs(value), 1);
  return b;
}
/** pg_dump's WriteStr: the length as an int (-1 for none), then the bytes. */
export function str(text: string | undefined): Buffer {
  if (text === undefined) return int(-1);
  const bytes = Buffer.from(text);
  return Buffer.concat([int(bytes.length), bytes]);
}

/** A TOC entry of {@link archive}. */
export interface Entry {
  id: number;
  desc: string;
  schema?: string;
  tag: string;
}

/** A custom archive (version 1.14, uncompressed) with `entries` and then `blocks`. */
export function archive(entries: Entry[], blocks: Buffer[], version = 14): Buffer {
  const head: Buffer[] = [Buffer.from('PGDMP'), Buffer.from([1, version, 0, 4, 8, 1])];
  head.push(version >= 15 ? Buffer.from([0]) : int(0));
  for (let i = 0; i < 7; i++) head.push(int(1));
  head.push(str('app'), str('15.18'), str('15.18'), int(entries.length));
  for (const e of entries) {
    head.push(int(e.id), int(1), str('1259'), str(String(e.id)), str(e.tag), str(e.desc), int(2));
    head.push(str(''), str(''), str('COPY x FROM stdin;\n'), str(e.schema), str(''));
    if (version >= 14) head.push(str('heap'));
    if (version >= 16) head.push(int(114));
    head.push(str('owner'), str('false'), str('1'), str(undefined), Buffer.alloc(9));
  }
  return Buffer.concat([...head, ...blocks]);
}

/** A data block of COPY text: one chunk per line, then pg_dump's terminator. */
export function dataBlock(id: number, lines: string[], terminator = '\\.\n\n\n'): Buffer {
  const chunks = [...lines, terminator].filter((l) => l !== '').map((l) => str(l));
  return Buffer.concat([Buffer.from([1]), int(id), ...chunks, int(0)]);
}
