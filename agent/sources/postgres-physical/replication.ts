/**
 * BASE_BACKUP over a physical replication connection (PostgreSQL 15+), for clusters with tablespaces:
 * pg_basebackup writes several tars only into a directory (`-Ft -D -` takes a single tablespace, and it
 * refuses a directory that holds anything, so named pipes cannot stand in), while the protocol sends
 * every archive one after another in one COPY stream — `n` starts an archive (its name and tablespace
 * location), `d` carries its bytes, `m` starts the backup manifest. Each archive becomes one stream,
 * ended when the next starts; the socket is paused while the current stream is full, so nothing is
 * buffered beyond the stream's high-water mark (no local copy, as with pg_basebackup on stdout).
 */
import { PassThrough } from 'node:stream';
import type pg from 'pg';
import { SourceError } from '#core/errors';

/** One archive of the backup as it arrives: `base.tar`, `<oid>.tar` or `backup_manifest`. */
export interface ArrivingArchive {
  name: string;
  /** The tablespace's location on the server; empty for base.tar and the manifest. */
  location: string;
  stream: PassThrough;
}

/** What BASE_BACKUP reported besides the archives. */
export interface BaseBackupResult {
  startLsn: string;
  startTimeline: number;
  stopLsn: string;
  stopTimeline: number;
  /** The tablespaces the server sent, besides the data directory (`spcoid`, `spclocation`). */
  tablespaces: { oid: number; location: string }[];
}

/**
 * The BASE_BACKUP command: `pg_basebackup -X fetch -c fast --manifest-checksums=CRC32C` in protocol form;
 * with `zstdLevel`, `--compress=server-zstd:level=N` too: the server sends each archive as one zstd
 * frame (`base.tar.zst`, `<oid>.tar.zst`) and the manifest uncompressed.
 * @example baseBackupCommand(1) // "BASE_BACKUP (…, COMPRESSION 'zstd', COMPRESSION_DETAIL 'level=1')"
 */
export function baseBackupCommand(zstdLevel?: number): string {
  if (zstdLevel !== undefined && !(Number.isInteger(zstdLevel) && zstdLevel >= 1 && zstdLevel <= 22))
    throw new RangeError(`zstd level must be 1–22, got ${zstdLevel}`);
  const compression =
    zstdLevel === undefined ? '' : `, COMPRESSION 'zstd', COMPRESSION_DETAIL 'level=${zstdLevel}'`;
  return `BASE_BACKUP (LABEL 'strongbox', CHECKPOINT 'fast', WAL true, WAIT true, MANIFEST 'yes'${compression})`;
}

/**
 * Runs BASE_BACKUP on a replication connection. `archives` yields each archive once it starts (the one
 * before has ended by then); `done` resolves after the server's final result, and rejects — erroring
 * the archive being sent — when the server or the connection fails.
 * @param zstdLevel have the server compress the archives with zstd at this level (see {@link baseBackupCommand}).
 */
export function runBaseBackup(
  client: pg.Client,
  zstdLevel?: number,
): {
  archives: AsyncIterable<ArrivingArchive>;
  done: Promise<BaseBackupResult>;
} {
  const query = new BaseBackupQuery(baseBackupCommand(zstdLevel));
  client.query(query as unknown as pg.QueryConfig);
  return { archives: query.archives(), done: query.done };
}

/** What node-postgres hands a Submittable: the protocol connection and its socket. */
interface Connection {
  stream: { pause(): void; resume(): void };
  query(text: string): void;
}

/** A node-postgres Submittable that demultiplexes BASE_BACKUP's COPY stream. */
class BaseBackupQuery {
  readonly text: string;
  readonly done: Promise<BaseBackupResult>;
  #resolve!: (result: BaseBackupResult) => void;
  #reject!: (error: Error) => void;
  #resultSet = -1;
  #rows: (string | null)[][][] = [];
  #current: ArrivingArchive | undefined;
  #queue: ArrivingArchive[] = [];
  #wake: (() => void) | undefined;
  #finished = false;
  #failure: Error | undefined;
  #connection: Connection | undefined;
  #paused = false;

  constructor(text: string) {
    this.text = text;
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.done.catch(() => {});
  }

  submit(connection: Connection): void {
    this.#connection = connection;
    connection.query(this.text);
  }

  handleRowDescription(): void {
    this.#resultSet += 1;
    this.#rows[this.#resultSet] = [];
  }

  handleDataRow(msg: { fields: (string | null)[] }): void {
    this.#rows[this.#resultSet]?.push(msg.fields);
  }

  handleCopyData(msg: { chunk: Buffer }): void {
    const chunk = msg.chunk;
    const type = String.fromCharCode(chunk[0] ?? 0);
    if (type === 'd') {
      const current = this.#current;
      if (!current) {
        this.#fail(new SourceError('BASE_BACKUP sent data before its first archive'));
        return;
      }
      // The parser may reuse its buffer: copy the bytes out before they are queued.
      // Messages already parsed still arrive after a pause: one drain listener per pause.
      if (!current.stream.write(Buffer.from(chunk.subarray(1))) && !this.#paused) {
        this.#paused = true;
        this.#connection?.stream.pause();
        current.stream.once('drain', this.#resume);
      }
    } else if (type === 'n') {
      const nameEnd = chunk.indexOf(0, 1);
      const locationEnd = chunk.indexOf(0, nameEnd + 1);
      if (nameEnd < 0 || locationEnd < 0) {
        this.#fail(new SourceError('BASE_BACKUP sent a malformed new-archive message'));
        return;
      }
      this.#start({
        name: chunk.toString('utf8', 1, nameEnd),
        location: chunk.toString('utf8', nameEnd + 1, locationEnd),
        stream: new PassThrough(),
      });
    } else if (type === 'm') {
      this.#start({ name: 'backup_manifest', location: '', stream: new PassThrough() });
    }
    // 'p' (progress) is only sent when asked for.
  }

  handleCommandComplete(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {
    this.#fail(new SourceError('BASE_BACKUP answered with COPY IN'));
  }

  handleError(error: Error): void {
    this.#fail(new SourceError(`BASE_BACKUP failed: ${error.message}`, { cause: error }));
  }

  handleReadyForQuery(): void {
    if (this.#failure) return;
    this.#current?.stream.end();
    this.#current = undefined;
    this.#finish();
    try {
      this.#resolve(this.#result());
    } catch (error) {
      this.#reject(error as Error);
    }
  }

  #result(): BaseBackupResult {
    const start = this.#rows[0]?.[0];
    const stop = this.#rows.at(-1)?.[0];
    if (this.#rows.length < 3 || !start || !stop)
      throw new SourceError(`BASE_BACKUP returned ${this.#rows.length} result sets, not 3`);
    return {
      startLsn: String(start[0]),
      startTimeline: Number(start[1]),
      stopLsn: String(stop[0]),
      stopTimeline: Number(stop[1]),
      tablespaces: (this.#rows[1] ?? [])
        .filter((row) => row[0] !== null)
        .map((row) => ({ oid: Number(row[0]), location: String(row[1]) })),
    };
  }

  /** Lets the socket flow again (the paused archive drained, or ended and takes no more). */
  readonly #resume = (): void => {
    if (!this.#paused) return;
    this.#paused = false;
    this.#connection?.stream.resume();
  };

  #start(archive: ArrivingArchive): void {
    // An ended stream never emits 'drain': the pause it caused ends with it (the next archive has
    // its own high-water mark and pauses the socket again if it fills).
    this.#current?.stream.off('drain', this.#resume);
    this.#current?.stream.end();
    this.#resume();
    this.#current = archive;
    this.#queue.push(archive);
    this.#wake?.();
  }

  #finish(): void {
    this.#finished = true;
    this.#wake?.();
  }

  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#current?.stream.destroy(error);
    this.#connection?.stream.resume();
    this.#finish();
    this.#reject(error);
  }

  async *archives(): AsyncGenerator<ArrivingArchive> {
    for (;;) {
      const next = this.#queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.#failure) throw this.#failure;
      if (this.#finished) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}
