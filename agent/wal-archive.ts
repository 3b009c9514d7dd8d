/**
 * The WAL archive of a job in its vault (core/ports `WalArchive`): each file PostgreSQL archives is
 * compressed, encrypted with a fresh data key of its own and stored as one `strongbox-wal-v1` object
 * (core/wal-format) under `wal/<job>/<timeline>/<name>`.
 *
 * A push resolves only once the vault's put resolved with exactly the bytes sent (the file vault fsyncs
 * file and directory before; S3 answers after storing): only then may `archive_command` exit 0. Pushing
 * a name already archived reads the archived file back (authenticated) and compares SHA-256 digests of
 * the contents: the same content is `exists`, other content an IntegrityError — never an overwrite.
 * Memory: the stages' buffers (about two encryption chunks and zstd's pipes), never a whole file.
 */
import { createHash } from 'node:crypto';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type CompressionAlgorithm, compressor, decompressor } from '#agent/pipeline/compress';
import { createDecryptStream, createEncryptStream } from '#agent/pipeline/encrypt';
import { settleAll } from '#agent/pipeline/flow';
import { Meter } from '#agent/pipeline/meter';
import { IntegrityError, PlanError, VaultError } from '#core/errors';
import { parseWalKey, walKey, walPrefix } from '#core/layout';
import type { KeyProvider, Vault, WalArchive, WalEntry } from '#core/ports';
import { timelineOfWalFile, WAL_FILE_NAME } from '#core/wal';
import {
  decodeWalHeader,
  encodeWalHeader,
  WAL_FORMAT,
  walEncryptionContext,
  walHeaderLength,
} from '#core/wal-format';

/** How files are stored. */
export interface VaultWalArchiveOptions {
  compression: CompressionAlgorithm;
  level?: number;
}

/** A job's WAL archive in a vault. */
export class VaultWalArchive implements WalArchive {
  readonly #vault: Vault;
  readonly #keys: KeyProvider;
  readonly #job: string;
  readonly #options: VaultWalArchiveOptions;

  constructor(vault: Vault, keys: KeyProvider, job: string, options: VaultWalArchiveOptions) {
    this.#vault = vault;
    this.#keys = keys;
    this.#job = job;
    this.#options = options;
  }

  /** The location of the vault the archive is in (its `url`). */
  get vaultUrl(): string {
    return this.#vault.url;
  }

  /** Whether the vault holds a WAL file of this name now (a head request, nothing read). */
  async has(name: string): Promise<boolean> {
    return (await this.#vault.head(this.keyOf(name))) !== undefined;
  }

  /** The vault key of a WAL file of this job. @throws PlanError for a name that is not a WAL file's. */
  keyOf(name: string): string {
    if (!WAL_FILE_NAME.test(name))
      throw new PlanError([`'${name}' is not the name of a WAL segment or history file`]);
    return walKey(this.#job, name.slice(0, 8), name);
  }

  async push(
    name: string,
    body: () => Readable,
    options: { signal?: AbortSignal } = {},
  ): Promise<'stored' | 'exists'> {
    const key = this.keyOf(name);
    if (await this.#vault.head(key)) {
      const [archived, local] = await Promise.all([digest(await this.fetch(name, options)), digest(body())]);
      if (archived === local) return 'exists';
      throw new IntegrityError(
        `WAL file ${name} is already archived in ${this.#vault.url} with different content (SHA-256 ${archived.slice(0, 16)}… archived, ${local.slice(0, 16)}… here): refusing to overwrite it. Two servers may be archiving into job '${this.#job}'.`,
      );
    }
    const { compression, level } = this.#options;
    const context = walEncryptionContext(this.#job, name, compression);
    const dataKey = await this.#keys.generateDataKey(context);
    try {
      const controller = new AbortController();
      const signal = options.signal
        ? AbortSignal.any([options.signal, controller.signal])
        : controller.signal;
      const header = encodeWalHeader({
        format: WAL_FORMAT,
        name,
        compression,
        key: dataKey.key,
        wrappedKey: dataKey.wrapped,
        context,
      });
      const compress = compressor(compression, level, signal);
      const meter = new Meter({ hash: false });
      const out = new PassThrough();
      out.write(header);
      const putting = this.#vault.put(key, out, { signal, contentType: 'application/octet-stream' });
      // A put that fails closes its body first: report the vault's error, not the "premature close" or
      // the zstd killed by the torn-down pipeline.
      const piping = pipeline(body(), compress.stream, createEncryptStream(dataKey.plaintext), meter, out, {
        signal,
      }).catch(async (error: unknown) => {
        await putting;
        throw error;
      });
      const compressing = compress.done.catch(async (error: unknown) => {
        await putting;
        throw error;
      });
      const [, , stored] = await settleAll([piping, compressing, putting], controller);
      if (stored.sizeBytes !== header.length + meter.bytes) {
        await this.#vault.delete([key]).catch(() => {});
        throw new VaultError(
          `${key}: the vault stored ${stored.sizeBytes} bytes but ${header.length + meter.bytes} were sent`,
        );
      }
      return 'stored';
    } finally {
      dataKey.plaintext.fill(0);
    }
  }

  async fetch(name: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    const key = this.keyOf(name);
    const raw = await this.#vault.get(key, options);
    const what = `WAL file ${name} (${key})`;
    const { prefix, rest } = await splitPrefix(raw, what);
    const header = decodeWalHeader(prefix, this.#job, name, what);
    const dataKey = await this.#keys.decryptDataKey(
      header.wrappedKey,
      header.key,
      walEncryptionContext(this.#job, name, header.compression),
    );
    const decompress = decompressor(header.compression, options.signal);
    const out = new PassThrough();
    const decrypt = createDecryptStream(dataKey);
    // The data key is wiped once the body was read, whatever the outcome (the stream derives its key lazily).
    void settleAll([pipeline(rest, decrypt, decompress.stream, out), decompress.done], new AbortController())
      .catch((error: unknown) => {
        if (!out.destroyed) out.destroy(error as Error);
      })
      .finally(() => dataKey.fill(0));
    return out;
  }

  async *list(options: { from?: string } = {}): AsyncIterable<WalEntry> {
    const entries: WalEntry[] = [];
    for await (const object of this.#vault.list(walPrefix(this.#job))) {
      const parsed = parseWalKey(object.key);
      if (!parsed || parsed.job !== this.#job || !WAL_FILE_NAME.test(parsed.segment)) continue;
      if (options.from && parsed.segment < options.from) continue;
      entries.push({
        name: parsed.segment,
        timeline: timelineOfWalFile(parsed.segment),
        storedBytes: object.sizeBytes,
        archivedAt: object.lastModified,
      });
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    yield* entries;
  }
}

/** SHA-256 of a stream's bytes, hex. */
async function digest(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(
    stream,
    new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        callback();
      },
    }),
  );
  return hash.digest('hex');
}

/** Reads the `strongbox-wal-v1` prefix off a stream; the rest continues as its own stream. */
export async function splitPrefix(raw: Readable, what: string): Promise<{ prefix: Buffer; rest: Readable }> {
  const iterator = (raw as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  let length: number | undefined;
  while (length === undefined || head.length < length) {
    const next = await iterator.next();
    if (next.done) throw new IntegrityError(`${what} is truncated: it ends inside its header`);
    head = Buffer.concat([head, next.value]);
    length ??= walHeaderLength(head, what);
  }
  const prefix = head.subarray(0, length);
  const first = head.subarray(length);
  async function* remaining(): AsyncGenerator<Buffer> {
    if (first.length > 0) yield first;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value;
    }
  }
  return { prefix, rest: Readable.from(remaining(), { objectMode: false }) };
}
