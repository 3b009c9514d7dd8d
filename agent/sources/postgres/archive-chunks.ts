/**
 * A pg_dump custom-format archive with its data chunks joined. `pg_dump -Fc -Z0` writes every row of
 * a table's COPY text as a chunk of its own (`int length + bytes`), and pg_restore hands each chunk to
 * the server as one CopyData message: 7 million rows cost the backend 7 million messages, ~0.4 s of
 * its CPU on the bench's 1 GB restore (docs/adr/0015) — the backend that bounds a restore's data phase.
 * Joined into chunks of {@link JOINED_CHUNK_BYTES}, the same bytes reach the same COPY in ~64 KiB
 * messages, as they do from a compressed archive.
 *
 * Why this cannot change what is restored: pg_restore passes chunk bytes on without regard to where a
 * chunk ends (COPY data to PQputCopyData, large objects to lo_write, INSERT statements through its SQL
 * splitter), because a compressed archive's chunks end wherever the decompressor's buffer did. Only
 * chunk boundaries move; every byte of the archive outside the chunks (header, TOC, block types, dump
 * ids, large-object oids, the 0 that ends a block) is copied as it is. An archive this does not
 * understand (another version, compressed data, an unknown block type) passes through unchanged, from
 * the byte where it stopped understanding; a stream cut inside a chunk is still cut inside a chunk.
 *
 * Memory: the archive's head until its TOC is parsed (capped at MAX_TOC_BYTES, then passed through),
 * and one output buffer.
 */
import { pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import { MAX_TOC_BYTES, NeedMore, parseHead, readInt } from './archive-rows';

/** Size of the chunks written: smaller ones are joined up to it, a larger one is split into pieces of it. */
export const JOINED_CHUNK_BYTES = 64 * 1024;

const BLK_DATA = 1;
const BLK_BLOBS = 3;

type State = 'head' | 'block' | 'id' | 'oid' | 'length' | 'data' | 'through';

/**
 * Joins the data chunks of the archive written through it (see the module comment).
 * @example
 * pipeline(archive, joinArchiveChunks(), pgRestore.stdin)
 */
export function joinArchiveChunks(): Transform {
  return new ChunkJoiner();
}

/**
 * `archive` with its data chunks joined. A failure of `archive` fails the stream returned, and
 * destroying that stream destroys `archive`.
 */
export function joinedArchive(archive: Readable): Readable {
  return pipeline(archive, joinArchiveChunks(), () => {});
}

class ChunkJoiner extends Transform {
  #state: State = 'head';
  #head: Buffer[] = [];
  #headBytes = 0;
  /** Head bytes at the last parse attempt: parse again only once they doubled (a large TOC). */
  #triedAt = 0;
  #intSize = 4;
  #blob = false;
  /** Bytes of the current source chunk still to come. */
  #remaining = 0;
  /** A fixed-width field split between input chunks. */
  #partial: Buffer = Buffer.alloc(0);
  #out: Buffer = Buffer.allocUnsafe(JOINED_CHUNK_BYTES + 64);
  #at = 0;
  /** Where the open joined chunk's length field starts in #out; -1 when none is open. */
  #chunkAt = -1;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.#state === 'through') {
      done(null, chunk);
      return;
    }
    if (this.#state === 'head') {
      this.#head.push(chunk);
      this.#headBytes += chunk.length;
      if (this.#headBytes < 2 * this.#triedAt && this.#headBytes <= MAX_TOC_BYTES) {
        done();
        return;
      }
      this.#triedAt = this.#headBytes;
      const buffered = Buffer.concat(this.#head);
      this.#head = [buffered];
      let headBytes: number;
      try {
        const head = parseHead(buffered);
        this.#intSize = head.intSize;
        headBytes = head.bytes;
      } catch (error) {
        if (error instanceof NeedMore && this.#headBytes <= MAX_TOC_BYTES) {
          done();
          return;
        }
        this.#head = [];
        this.#state = 'through';
        done(null, buffered);
        return;
      }
      this.#head = [];
      this.#state = 'block';
      this.push(buffered.subarray(0, headBytes));
      this.#body(buffered, headBytes);
    } else {
      this.#body(chunk, 0);
    }
    this.#pushOut();
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.#state === 'head') {
      // Ended before its TOC did: not ours to judge; pg_restore says what is wrong.
      this.#state = 'through';
      done(null, Buffer.concat(this.#head));
      return;
    }
    // Cut inside a source chunk: the joined chunk's length counts the missing bytes too, so the
    // stream still ends inside a chunk and pg_restore fails on it as it would have.
    this.#closeChunk(this.#state === 'data' ? this.#remaining : 0);
    if (this.#partial.length > 0) this.#raw(this.#partial, 0, this.#partial.length);
    this.#pushOut();
    done();
  }

  #body(buf: Buffer, start: number): void {
    let pos = start;
    const width = 1 + this.#intSize;
    while (pos < buf.length) {
      switch (this.#state) {
        case 'block': {
          const type = buf[pos] as number;
          if (type !== BLK_DATA && type !== BLK_BLOBS) {
            this.#through(buf, pos);
            return;
          }
          this.#raw(buf, pos, pos + 1);
          pos += 1;
          this.#blob = type === BLK_BLOBS;
          this.#state = 'id';
          break;
        }
        case 'id':
        case 'oid': {
          const field = this.#field(buf, pos);
          if (field === undefined) return;
          pos = field.next;
          this.#raw(field.bytes, field.from, field.from + width);
          if (this.#state === 'id') this.#state = this.#blob ? 'oid' : 'length';
          else this.#state = field.value === 0 ? 'block' : 'length';
          break;
        }
        case 'length': {
          // The hot path: whole `length + bytes` chunks inside this buffer, their bytes appended.
          if (this.#partial.length === 0 && this.#intSize === 4) {
            while (pos + 5 <= buf.length && buf[pos] === 0) {
              const length = buf.readUInt32LE(pos + 1);
              if (length === 0 || pos + 5 + length > buf.length) break;
              this.#data(buf, pos + 5, pos + 5 + length);
              pos += 5 + length;
            }
            if (pos >= buf.length) break;
          }
          const field = this.#field(buf, pos);
          if (field === undefined) return;
          if (field.value < 0) {
            this.#raw(field.bytes, field.from, field.from + width);
            this.#through(buf, field.next);
            return;
          }
          pos = field.next;
          if (field.value === 0) {
            this.#raw(field.bytes, field.from, field.from + width);
            this.#state = this.#blob ? 'oid' : 'block';
          } else {
            this.#remaining = field.value;
            this.#state = 'data';
          }
          break;
        }
        case 'data': {
          const end = Math.min(buf.length, pos + this.#remaining);
          this.#data(buf, pos, end);
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
   * The fixed-width int at `pos`, joined with the bytes of it an earlier input held; undefined (the
   * bytes kept) when this input ends first. `bytes[from, from + width)` is the field as it was written.
   */
  #field(buf: Buffer, pos: number): { value: number; next: number; bytes: Buffer; from: number } | undefined {
    const width = 1 + this.#intSize;
    if (this.#partial.length === 0 && pos + width <= buf.length) {
      return { value: readInt(buf, pos, this.#intSize, () => {}), next: pos + width, bytes: buf, from: pos };
    }
    const take = Math.min(width - this.#partial.length, buf.length - pos);
    const bytes = Buffer.concat([this.#partial, buf.subarray(pos, pos + take)]);
    if (bytes.length < width) {
      this.#partial = bytes;
      return undefined;
    }
    this.#partial = Buffer.alloc(0);
    return { value: readInt(bytes, 0, this.#intSize, () => {}), next: pos + take, bytes, from: 0 };
  }

  /** Chunk bytes: appended to the open joined chunk, or opening one. */
  #data(buf: Buffer, from: number, to: number): void {
    let at = from;
    while (at < to) {
      if (this.#chunkAt < 0) {
        if (this.#at + 1 + this.#intSize + 1 > this.#out.length) this.#newOut();
        this.#chunkAt = this.#at;
        this.#at += 1 + this.#intSize;
      }
      const room = Math.min(
        this.#out.length - this.#at,
        JOINED_CHUNK_BYTES - (this.#at - this.#chunkAt - 1 - this.#intSize),
      );
      if (room === 0) {
        this.#newOut();
        continue;
      }
      const take = Math.min(room, to - at);
      buf.copy(this.#out, this.#at, at, at + take);
      this.#at += take;
      at += take;
    }
  }

  /** Writes the open joined chunk's length (its bytes, plus `missing` that never came). */
  #closeChunk(missing: number): void {
    if (this.#chunkAt < 0) return;
    const length = this.#at - this.#chunkAt - 1 - this.#intSize + missing;
    this.#out[this.#chunkAt] = 0;
    let value = length;
    for (let i = 0; i < this.#intSize; i++) {
      this.#out[this.#chunkAt + 1 + i] = value % 256;
      value = Math.floor(value / 256);
    }
    this.#chunkAt = -1;
  }

  /** Archive bytes outside the chunks, copied as they are. */
  #raw(buf: Buffer, from: number, to: number): void {
    this.#closeChunk(0);
    if (this.#at + (to - from) > this.#out.length) this.#newOut();
    buf.copy(this.#out, this.#at, from, to);
    this.#at += to - from;
  }

  /** Passes the rest of the archive on as it is, from `pos` of `buf`. */
  #through(buf: Buffer, pos: number): void {
    this.#closeChunk(0);
    if (this.#partial.length > 0) this.#raw(this.#partial, 0, this.#partial.length);
    this.#partial = Buffer.alloc(0);
    this.#pushOut();
    this.#state = 'through';
    if (pos < buf.length) this.push(buf.subarray(pos));
  }

  /** Pushes what #out holds and starts a fresh one — unless a joined chunk is open in it (its length is not known yet). */
  #pushOut(): void {
    if (this.#chunkAt >= 0 || this.#at === 0) return;
    this.push(this.#out.subarray(0, this.#at));
    this.#out = Buffer.allocUnsafe(JOINED_CHUNK_BYTES + 64);
    this.#at = 0;
  }

  /** A fresh output buffer, the closed bytes of the old one pushed. */
  #newOut(): void {
    this.#closeChunk(0);
    this.#pushOut();
  }
}
