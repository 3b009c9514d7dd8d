/**
 * Joining tar archives into one: {@link ArchiveEndCut} passes an archive through without its end — the
 * zero blocks that say "nothing follows" and the zero padding of the last record — so that another
 * archive written after it continues the same archive. The result is one plain POSIX archive that any
 * tar reads whole without `--ignore-zeros`.
 *
 * Where the end is: a tar archive is a sequence of 512-byte blocks, each member a header block followed
 * by its data (`size` bytes, padded to whole blocks); the first all-zero block where a header is due is
 * the end. The walk reads only headers: their checksum (a block that is not a header is an error, never
 * a guess), their `size` field (octal, or base-256 when its first byte has the high bit set), and the
 * `size` record of a pax extended header (`x`), which overrides the next header's field (GNU tar writes
 * it for members of 8 GiB and more). Data blocks pass through untouched.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { SourceError } from '#core/errors';

const BLOCK = 512;
const SIZE_FIELD = [124, 136] as const;
const CHECKSUM_FIELD = [148, 156] as const;
const TYPEFLAG = 156;
const PAX_EXTENDED = 0x78; // 'x': records for the next member

/** A pass-through of a tar archive that leaves out its end (see the module comment). */
export class ArchiveEndCut extends Transform {
  /** The header being assembled when it spans chunks. */
  readonly #header = Buffer.alloc(BLOCK);
  #headerBytes = 0;
  /** Data bytes (padded to whole blocks) still to pass before the next header. */
  #dataLeft = 0;
  /** The data of a pax extended header being collected, and how much of it has arrived. */
  #pax: Buffer | undefined;
  #paxBytes = 0;
  /** The size a pax `size` record gave the next member. */
  #nextSize: number | undefined;
  #ended = false;
  /** Bytes of the archive read so far, for messages. */
  #offset = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#walk(chunk);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    callback(
      this.#ended
        ? null
        : new SourceError(`the tar archive ended at byte ${this.#offset} without its end-of-archive blocks`),
    );
  }

  #walk(chunk: Buffer): void {
    let at = 0;
    // Bytes from `passFrom` up to `at` go out as they are; a header's bytes are held until it is known
    // not to be the end.
    let passFrom = 0;
    while (at < chunk.length) {
      if (this.#ended) {
        const stray = chunk.subarray(at).findIndex((byte) => byte !== 0);
        if (stray >= 0) {
          throw new SourceError(
            `the tar archive has data after its end, at byte ${this.#offset + at + stray}`,
          );
        }
        at = chunk.length;
        passFrom = at;
        break;
      }
      if (this.#dataLeft > 0) {
        const take = Math.min(this.#dataLeft, chunk.length - at);
        if (this.#pax) this.#collectPax(chunk.subarray(at, at + take));
        this.#dataLeft -= take;
        at += take;
        continue;
      }
      // A header is due: pass what came before it, then assemble it.
      if (at > passFrom) this.push(chunk.subarray(passFrom, at));
      const take = Math.min(BLOCK - this.#headerBytes, chunk.length - at);
      chunk.copy(this.#header, this.#headerBytes, at, at + take);
      this.#headerBytes += take;
      at += take;
      passFrom = at;
      if (this.#headerBytes < BLOCK) break;
      this.#headerBytes = 0;
      this.#readHeader(this.#offset + at - BLOCK);
      if (!this.#ended) this.push(Buffer.from(this.#header));
    }
    if (at > passFrom) this.push(chunk.subarray(passFrom, at));
    this.#offset += chunk.length;
  }

  #readHeader(position: number): void {
    const header = this.#header;
    if (header.every((byte) => byte === 0)) {
      this.#ended = true;
      return;
    }
    if (!hasValidChecksum(header)) {
      throw new SourceError(
        `the tar archive has a block that is not a header where one is due, at byte ${position}`,
      );
    }
    const size = this.#nextSize ?? sizeField(header);
    this.#nextSize = undefined;
    this.#dataLeft = Math.ceil(size / BLOCK) * BLOCK;
    if (header[TYPEFLAG] === PAX_EXTENDED) {
      this.#pax = Buffer.alloc(size);
      this.#paxBytes = 0;
      if (size === 0) this.#endPax();
    }
  }

  #collectPax(data: Buffer): void {
    const pax = this.#pax as Buffer;
    const take = Math.min(data.length, pax.length - this.#paxBytes);
    data.copy(pax, this.#paxBytes, 0, take);
    this.#paxBytes += take;
    if (this.#paxBytes === pax.length) this.#endPax();
  }

  #endPax(): void {
    const size = paxRecord(this.#pax as Buffer, 'size');
    this.#pax = undefined;
    if (size === undefined) return;
    if (!/^\d+$/.test(size))
      throw new SourceError(`the tar archive has a pax size record that is not a number: ${size}`);
    this.#nextSize = Number(size);
  }
}

/** Whether the header's checksum field matches its bytes (the field itself counted as spaces). */
function hasValidChecksum(header: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) {
    sum += i >= CHECKSUM_FIELD[0] && i < CHECKSUM_FIELD[1] ? 0x20 : (header[i] as number);
  }
  const field = octal(header.subarray(...CHECKSUM_FIELD));
  return field === sum;
}

/** The header's size field: octal digits, or base-256 (GNU) when the high bit of its first byte is set. */
function sizeField(header: Buffer): number {
  const field = header.subarray(...SIZE_FIELD);
  if (((field[0] as number) & 0x80) === 0) {
    const size = octal(field);
    if (size === undefined) throw new SourceError('the tar archive has a header whose size is not a number');
    return size;
  }
  let size = (field[0] as number) & 0x7f;
  for (let i = 1; i < field.length; i++) size = size * 256 + (field[i] as number);
  return size;
}

/** An octal field (digits, then NUL or space), or undefined when it holds something else. */
function octal(field: Buffer): number | undefined {
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
  return /^[0-7]+$/.test(text) ? Number.parseInt(text, 8) : undefined;
}

/**
 * The value of `key` in pax extended header data: records `<length> <key>=<value>\n`, the length (in
 * bytes, counting itself) read first, since values (xattrs) may hold any byte, newlines included.
 */
function paxRecord(data: Buffer, key: string): string | undefined {
  let at = 0;
  let found: string | undefined;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const length = space > at ? Number(data.toString('latin1', at, space)) : Number.NaN;
    if (!Number.isInteger(length) || length <= space - at || at + length > data.length) {
      throw new SourceError('the tar archive has a pax extended header that cannot be read');
    }
    const record = data.subarray(space + 1, at + length - 1);
    const equals = record.indexOf(0x3d);
    if (equals > 0 && record.toString('latin1', 0, equals) === key) {
      found = record.toString('latin1', equals + 1);
    }
    at += length;
  }
  return found;
}
