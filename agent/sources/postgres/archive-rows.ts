/**
 * Row counts read from a pg_dump custom-format archive as it streams by (`pg_dump -Fc -Z0` written to
 * a pipe): the archive's table of contents names each `TABLE DATA` entry's schema and table, and each
 * entry's data block is its table's COPY text, one line per row (a newline inside a value is written as
 * `\n`), so the newlines of a block are its table's rows — exactly what `count(*)` of that table in the
 * dump's snapshot returns, without a second backend reading every table again.
 *
 * The layout read here is pg_dump's (src/bin/pg_dump/pg_backup_archiver.c WriteHead/WriteToc,
 * pg_backup_custom.c): header `PGDMP`, version, int and offset sizes, format; the TOC; then data blocks
 * (type byte, dump id, chunks of `int length + bytes` ending with length 0; large objects are
 * `oid, chunks, 0` repeated until oid 0). Integers are a sign byte then `intSize` bytes, least
 * significant first; strings an int length (-1 for none) then the bytes. Archive versions 1.12–1.16
 * (pg_dump 11–17) are understood; anything else — or compressed data — makes the counter give up
 * (`failure`), and the caller counts with SQL instead, so a count is never a guess.
 *
 * Memory: the TOC while it is read (it is the archive's head; capped at {@link MAX_TOC_BYTES}) and a
 * few bytes of a field split between two chunks. Cost: one `indexOf` per row, in the chunk that holds it.
 */

/** A TOC larger than this is not buffered; row counts are then taken with SQL. */
export const MAX_TOC_BYTES = 64 * 1024 * 1024;

const MAGIC = 'PGDMP';
const BLK_DATA = 1;
const BLK_BLOBS = 3;
const FORMAT_CUSTOM = 1;

/** Thrown while parsing the head when more bytes are needed. */
export class NeedMore extends Error {}

/** Reading position over the buffered head of the archive. */
class HeadReader {
  pos = 0;
  intSize = 4;
  constructor(readonly buf: Buffer) {}

  byte(): number {
    if (this.pos >= this.buf.length) throw new NeedMore();
    return this.buf[this.pos++] as number;
  }

  int(): number {
    if (this.pos + 1 + this.intSize > this.buf.length) throw new NeedMore();
    return readInt(this.buf, this.pos, this.intSize, (next) => (this.pos = next));
  }

  str(): string | undefined {
    const length = this.int();
    if (length < 0) return undefined;
    if (this.pos + length > this.buf.length) throw new NeedMore();
    const text = this.buf.toString('utf8', this.pos, this.pos + length);
    this.pos += length;
    return text;
  }

  skip(bytes: number): void {
    if (this.pos + bytes > this.buf.length) throw new NeedMore();
    this.pos += bytes;
  }
}

/** pg_dump's ReadInt at `pos` (sign byte, then `intSize` bytes LSB first); `moved` gets the next offset. */
export function readInt(buf: Buffer, pos: number, intSize: number, moved: (next: number) => void): number {
  const negative = buf[pos] !== 0;
  let value = 0;
  for (let i = 0; i < intSize; i++) value += (buf[pos + 1 + i] as number) * 2 ** (8 * i);
  moved(pos + 1 + intSize);
  return negative ? -value : value;
}

/** What the archive's head says: int size, and the `TABLE DATA` entries by dump id. */
export interface ArchiveHead {
  intSize: number;
  tables: Map<number, { schema: string; name: string }>;
  /** Bytes of the head (header + TOC). */
  bytes: number;
}

/** Parses header and TOC from `buf`; throws NeedMore when it is not all there yet. */
export function parseHead(buf: Buffer): ArchiveHead {
  const r = new HeadReader(buf);
  r.skip(MAGIC.length);
  if (buf.toString('latin1', 0, MAGIC.length) !== MAGIC) throw new Error('not a pg_dump custom archive');
  const major = r.byte();
  const minor = r.byte();
  r.byte(); // revision
  const version = major * 100 + minor;
  if (major !== 1 || minor < 12 || minor > 16)
    throw new Error(`archive version ${major}.${minor} is not known`);
  r.intSize = r.byte();
  const offSize = r.byte();
  if (r.intSize < 1 || r.intSize > 8 || offSize < 1 || offSize > 16)
    throw new Error('bad int or offset size');
  if (r.byte() !== FORMAT_CUSTOM) throw new Error('not the custom format');
  // Compression: an int level before 1.15, an algorithm byte since; 0 is none either way.
  const compression = version >= 115 ? r.byte() : r.int();
  if (compression !== 0 && compression !== -1) throw new Error('the archive data is compressed');
  for (let i = 0; i < 7; i++) r.int(); // creation time
  r.str(); // database name
  r.str(); // server version
  r.str(); // pg_dump version
  const count = r.int();
  const tables = new Map<number, { schema: string; name: string }>();
  for (let i = 0; i < count; i++) {
    const dumpId = r.int();
    r.int(); // has data dumper
    r.str(); // tableoid
    r.str(); // oid
    const tag = r.str();
    const desc = r.str();
    r.int(); // section
    r.str(); // definition
    r.str(); // drop statement
    r.str(); // copy statement
    const namespace = r.str();
    r.str(); // tablespace
    if (version >= 114) r.str(); // table access method
    if (version >= 116) r.int(); // relkind
    r.str(); // owner
    r.str(); // "false" (was: with oids)
    while (r.str() !== undefined); // dependencies, ended by a null string
    r.skip(1 + offSize); // data state and offset (custom format's extra TOC fields)
    if (desc === 'TABLE DATA' && tag !== undefined && namespace !== undefined) {
      tables.set(dumpId, { schema: namespace, name: tag });
    }
  }
  return { intSize: r.intSize, tables, bytes: r.pos };
}

type State = 'head' | 'block' | 'id' | 'length' | 'data' | 'oid' | 'failed';

/**
 * Counts the rows of every table whose data passes through `write`, as the archive streams by.
 * @example
 * const rows = new ArchiveRowCounter();
 * for await (const chunk of dumpStdout) rows.write(chunk);
 * rows.counts() // Map { '["public","orders"]' => 1204 }
 */
export class ArchiveRowCounter {
  /** Why counting stopped, when the stream was not an archive this counter understands. */
  failure: string | undefined;
  #state: State = 'head';
  #head: Buffer[] = [];
  #headBytes = 0;
  #intSize = 4;
  #tables = new Map<number, { schema: string; name: string }>();
  #rows = new Map<string, number>();
  /** The table whose data block is being read (undefined for large objects and other data). */
  #current: string | undefined;
  #blob = false;
  /** Bytes of the current data chunk still to come. */
  #remaining = 0;
  /** A fixed-width field split between chunks. */
  #partial = Buffer.alloc(0);
  #ended = false;
  #counted = 0;
  /** The last 5 bytes of the current table's data. */
  #tail = 0;

  /** Feeds the next bytes of the archive. Never throws: a parse failure sets `failure`. */
  write(chunk: Buffer): void {
    if (this.#state === 'failed') return;
    try {
      if (this.#state === 'head') {
        this.#head.push(chunk);
        this.#headBytes += chunk.length;
        const buffered = this.#head.length === 1 ? chunk : Buffer.concat(this.#head);
        this.#head = [buffered];
        let head: ArchiveHead;
        try {
          head = parseHead(buffered);
        } catch (error) {
          if (!(error instanceof NeedMore)) throw error;
          if (this.#headBytes > MAX_TOC_BYTES)
            throw new Error(`the TOC is larger than ${MAX_TOC_BYTES} bytes`);
          return;
        }
        this.#head = [];
        this.#intSize = head.intSize;
        this.#tables = head.tables;
        for (const table of head.tables.values()) this.#rows.set(keyOf(table), 0);
        this.#state = 'block';
        this.#body(buffered, head.bytes);
        return;
      }
      this.#body(chunk, 0);
    } catch (error) {
      this.#fail(error instanceof Error ? error.message : String(error));
    }
  }

  /** Marks the end of the archive; a stream cut inside a block or the TOC is a failure. */
  end(): void {
    if (this.#state === 'failed') return;
    this.#ended = true;
    if (this.#state === 'head') this.#fail('the archive ended inside its TOC');
    else if (this.#state !== 'block' || this.#partial.length > 0)
      this.#fail('the archive ended inside a data block');
  }

  /**
   * Rows per table (keyed `JSON.stringify([schema, name])`), every `TABLE DATA` entry of the TOC
   * included (0 when its block had no rows).
   * @throws Error when counting failed or the archive has not ended.
   */
  counts(): Map<string, number> {
    if (this.failure !== undefined) throw new Error(this.failure);
    if (!this.#ended) throw new Error('the archive has not ended');
    return this.#rows;
  }

  #fail(reason: string): void {
    this.failure = reason;
    this.#state = 'failed';
    this.#head = [];
    this.#partial = Buffer.alloc(0);
  }

  /** Reads a fixed-width int at `pos`, joining a split one; undefined when the chunk ended first. */
  #int(buf: Buffer, pos: number, onNext: (next: number) => void): number | undefined {
    const width = 1 + this.#intSize;
    if (this.#partial.length === 0 && pos + width <= buf.length)
      return readInt(buf, pos, this.#intSize, onNext);
    const take = Math.min(width - this.#partial.length, buf.length - pos);
    this.#partial = Buffer.concat([this.#partial, buf.subarray(pos, pos + take)]);
    if (this.#partial.length < width) {
      onNext(buf.length);
      return undefined;
    }
    const value = readInt(this.#partial, 0, this.#intSize, () => {});
    this.#partial = Buffer.alloc(0);
    onNext(pos + take);
    return value;
  }

  #body(buf: Buffer, start: number): void {
    let pos = start;
    const at = (next: number) => {
      pos = next;
    };
    const width = 1 + this.#intSize;
    // The first newline at or after the position scanned last; buf.length when there is none.
    let newline = -1;
    while (pos < buf.length) {
      switch (this.#state) {
        case 'block': {
          const type = buf[pos++];
          if (type !== BLK_DATA && type !== BLK_BLOBS) throw new Error(`unknown block type ${type}`);
          this.#blob = type === BLK_BLOBS;
          this.#state = 'id';
          break;
        }
        case 'id': {
          const id = this.#int(buf, pos, at);
          if (id === undefined) break;
          const table = this.#blob ? undefined : this.#tables.get(id);
          this.#current = table ? keyOf(table) : undefined;
          this.#counted = 0;
          this.#tail = 0;
          this.#state = this.#blob ? 'oid' : 'length';
          break;
        }
        case 'oid': {
          const oid = this.#int(buf, pos, at);
          if (oid === undefined) break;
          this.#state = oid === 0 ? 'block' : 'length';
          break;
        }
        case 'length': {
          // The hot path: a table's rows, one chunk per COPY line, each wholly inside this buffer.
          if (this.#current !== undefined && this.#partial.length === 0 && this.#intSize === 4) {
            let counted = this.#counted;
            let tail = this.#tail;
            // The end of the last chunk of at least 5 bytes, whose last 5 bytes are the tail unless a
            // shorter chunk follows: read once, when needed, not once per row.
            let tailEnd = -1;
            while (pos + width <= buf.length && buf[pos] === 0) {
              const length = buf.readUInt32LE(pos + 1);
              const end = pos + width + length;
              if (length === 0 || end > buf.length) break;
              pos += width;
              for (;;) {
                if (newline < pos) {
                  newline = buf.indexOf(10, pos);
                  if (newline === -1) newline = buf.length;
                }
                if (newline >= end) break;
                counted += 1;
                pos = newline + 1;
              }
              if (length >= TAIL_BYTES) tailEnd = end;
              else {
                if (tailEnd >= 0) tail = lastFive(buf, tailEnd);
                tailEnd = -1;
                tail = shiftTail(tail, buf, end - length, end);
              }
              pos = end;
            }
            this.#counted = counted;
            this.#tail = tailEnd >= 0 ? lastFive(buf, tailEnd) : tail;
            if (pos >= buf.length) break;
          }
          const length = this.#int(buf, pos, at);
          if (length === undefined) break;
          if (length < 0) throw new Error(`negative data chunk length ${length}`);
          if (length === 0) {
            if (this.#current !== undefined) this.#endTable();
            this.#state = this.#blob ? 'oid' : 'block';
          } else {
            this.#remaining = length;
            this.#state = 'data';
          }
          break;
        }
        case 'data': {
          const end = Math.min(buf.length, pos + this.#remaining);
          if (this.#current !== undefined) {
            let from = pos;
            for (;;) {
              if (newline < from) {
                newline = buf.indexOf(10, from);
                if (newline === -1) newline = buf.length;
              }
              if (newline >= end) break;
              this.#counted += 1;
              from = newline + 1;
            }
            this.#tail = shiftTail(this.#tail, buf, pos, end);
          }
          this.#remaining -= end - pos;
          pos = end;
          if (this.#remaining === 0) this.#state = 'length';
          break;
        }
        default:
          return;
      }
    }
  }

  /**
   * A table's block ended: pg_dump ends its COPY text with the terminator line `\.` and two empty
   * lines (`\.\n\n\n`), three newlines that are not rows. A block that does not end so is not
   * understood.
   */
  #endTable(): void {
    const key = this.#current as string;
    if (this.#tail !== TERMINATOR) throw new Error(`the data of ${key} does not end with COPY's terminator`);
    this.#rows.set(key, this.#counted - 3);
  }
}

/** `\.\n\n\n`, the end of a table's COPY text in the archive, as a 5-byte big-endian number. */
const TAIL_BYTES = 5;
const TERMINATOR = 0x5c2e0a0a0a;

/** The last 5 bytes seen, after the bytes buf[from, to) (a number below 2^40). */
function shiftTail(tail: number, buf: Buffer, from: number, to: number): number {
  if (to - from >= TAIL_BYTES) return lastFive(buf, to);
  let value = tail;
  for (let i = from; i < to; i++) value = (value % 2 ** 32) * 256 + (buf[i] as number);
  return value;
}

/** The 5 bytes before `to` as a big-endian number (`readUIntBE` is several times slower here). */
function lastFive(buf: Buffer, to: number): number {
  return (
    (buf[to - 5] as number) * 2 ** 32 +
    (((buf[to - 4] as number) << 24) >>> 0) +
    (((buf[to - 3] as number) << 16) | ((buf[to - 2] as number) << 8) | (buf[to - 1] as number))
  );
}

function keyOf(table: { schema: string; name: string }): string {
  return JSON.stringify([table.schema, table.name]);
}
