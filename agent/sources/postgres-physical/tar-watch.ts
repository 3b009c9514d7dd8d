/**
 * Reads what a base backup says about itself while it streams past: a pass-through Transform over the
 * tar that pg_basebackup writes, which parses the tar headers (never the data) and keeps `backup_label`,
 * the tail of `backup_manifest` (where its `WAL-Ranges` are) and the names of the WAL segments below
 * `pg_wal/`. Memory: one 512-byte header, `backup_label` (at most {@link LABEL_MAX_BYTES}) and the last
 * {@link MANIFEST_TAIL_BYTES} of `backup_manifest`, whatever the size of the cluster.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { SourceError } from '#core/errors';

const BLOCK = 512;
/** Bytes of backup_label kept (it is a few hundred bytes). */
export const LABEL_MAX_BYTES = 64 * 1024;
/** Bytes kept from the end of backup_manifest, which ends with its WAL-Ranges. */
export const MANIFEST_TAIL_BYTES = 64 * 1024;
const SEGMENT_ENTRY = /^(?:\.\/)?pg_wal\/([0-9A-F]{24})$/;

/** What the tar told about the backup. */
export interface TarFacts {
  backupLabel?: string;
  manifestTail?: string;
  /** WAL segments inside the backup, in tar order. */
  walSegments: string[];
  fileCount: number;
  fileBytes: number;
}

/**
 * A pass-through Transform that learns {@link TarFacts} from a tar stream. It ends only when `verdict`
 * resolves (the tool that writes the tar exited cleanly) and errors with its rejection otherwise.
 */
export class TarWatch extends Transform {
  readonly facts: TarFacts = { walSegments: [], fileCount: 0, fileBytes: 0 };
  readonly #verdict: () => Promise<void>;
  #header = Buffer.alloc(BLOCK);
  #headerFill = 0;
  #dataLeft = 0;
  #padLeft = 0;
  #capture: 'label' | 'manifest' | undefined;
  #captured: Buffer[] = [];
  #capturedBytes = 0;
  #ended = false;

  constructor(verdict: () => Promise<void> = async () => {}) {
    super();
    this.#verdict = verdict;
  }

  override _flush(callback: TransformCallback): void {
    this.#verdict().then(
      () => callback(),
      (error: unknown) => callback(error as Error),
    );
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#scan(chunk);
      callback(null, chunk);
    } catch (error) {
      callback(error as Error);
    }
  }

  #scan(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.#ended) {
      if (this.#dataLeft > 0) {
        const n = Math.min(this.#dataLeft, chunk.length - offset);
        if (this.#capture) this.#keep(chunk.subarray(offset, offset + n));
        this.#dataLeft -= n;
        offset += n;
        if (this.#dataLeft === 0) this.#finishCapture();
      } else if (this.#padLeft > 0) {
        const n = Math.min(this.#padLeft, chunk.length - offset);
        this.#padLeft -= n;
        offset += n;
      } else {
        const n = Math.min(BLOCK - this.#headerFill, chunk.length - offset);
        chunk.copy(this.#header, this.#headerFill, offset, offset + n);
        this.#headerFill += n;
        offset += n;
        if (this.#headerFill === BLOCK) {
          this.#headerFill = 0;
          this.#readHeader(this.#header);
        }
      }
    }
  }

  #readHeader(header: Buffer): void {
    if (header.every((b) => b === 0)) {
      this.#ended = true;
      return;
    }
    const name = cString(header, 0, 100);
    const prefix = header.toString('latin1', 257, 262) === 'ustar' ? cString(header, 345, 155) : '';
    const path = prefix ? `${prefix}/${name}` : name;
    const size = tarNumber(header.subarray(124, 136), path);
    const type = String.fromCharCode(header[156] ?? 0);
    this.#dataLeft = size;
    this.#padLeft = (BLOCK - (size % BLOCK)) % BLOCK;
    if (type === '0' || type === '\0') {
      this.facts.fileCount += 1;
      this.facts.fileBytes += size;
      const normalized = path.replace(/^\.\//, '');
      const segment = SEGMENT_ENTRY.exec(normalized);
      if (segment) this.facts.walSegments.push(segment[1] as string);
      this.#capture =
        normalized === 'backup_label' ? 'label' : normalized === 'backup_manifest' ? 'manifest' : undefined;
      this.#captured = [];
      this.#capturedBytes = 0;
      if (size === 0) this.#finishCapture();
    } else {
      this.#capture = undefined;
    }
  }

  #keep(data: Buffer): void {
    const limit = this.#capture === 'label' ? LABEL_MAX_BYTES : MANIFEST_TAIL_BYTES;
    this.#captured.push(Buffer.from(data));
    this.#capturedBytes += data.length;
    while (this.#capturedBytes - (this.#captured[0]?.length ?? 0) >= limit) {
      this.#capturedBytes -= this.#captured.shift()?.length ?? 0;
    }
  }

  #finishCapture(): void {
    if (!this.#capture) return;
    const text = Buffer.concat(this.#captured).toString('utf8');
    if (this.#capture === 'label') this.facts.backupLabel = text.slice(0, LABEL_MAX_BYTES);
    else this.facts.manifestTail = text.slice(-MANIFEST_TAIL_BYTES);
    this.#capture = undefined;
    this.#captured = [];
  }
}

function cString(buffer: Buffer, start: number, length: number): string {
  const field = buffer.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.toString('utf8', 0, end === -1 ? length : end);
}

/** A tar number field: octal text, or base-256 when the high bit of the first byte is set. */
function tarNumber(field: Buffer, path: string): number {
  if ((field[0] ?? 0) & 0x80) {
    let value = (field[0] ?? 0) & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] ?? 0);
    return value;
  }
  const text = cString(field, 0, field.length).trim();
  const value = text === '' ? 0 : Number.parseInt(text, 8);
  if (!Number.isSafeInteger(value) || value < 0)
    throw new SourceError(`pg_basebackup wrote a tar header with a bad size for ${path}`);
  return value;
}
