/**
 * Reads what a server-compressed base backup says about itself: a pass-through Transform over a
 * `.tar.zst` archive (BASE_BACKUP with `COMPRESSION 'zstd'`) that hands a copy of every chunk to a
 * `zstd -d` child and runs {@link TarWatch} over what comes out, which it then drops. The archive itself
 * goes on compressed, so the uncompressed bytes cross Node once, read-only; the facts are exactly those
 * of an uncompressed tar (backup_label, the WAL segments inside, file counts). It ends only once zstd
 * exited 0, the tar parsed and `verdict` resolved; it errors otherwise, so a corrupt or cut archive never
 * ends cleanly.
 *
 * Memory: the child's pipes (64 KiB each way), the streams' high-water marks and what TarWatch keeps
 * (about 130 KiB), whatever the size of the archive.
 */
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { spawnTool, type ToolProcess } from '#agent/pipeline/child';
import { drainedOrClosed, settleAll } from '#agent/pipeline/flow';
import { SourceError } from '#core/errors';
import { type TarFacts, TarWatch } from './tar-watch';

/** A pass-through over a zstd-compressed tar that learns its {@link TarFacts} on the side. */
export class ZstdTarWatch extends Transform {
  /** Bytes of the tar once decompressed (complete when the stream has ended). */
  tarBytes = 0;
  readonly #watch = new TarWatch();
  readonly #tool: ToolProcess;
  readonly #inspected: Promise<void>;
  readonly #verdict: () => Promise<void>;

  /**
   * @param verdict resolves when the server confirmed the backup; the stream ends only after it.
   * @param signal kills the `zstd -d` child.
   */
  constructor(verdict: () => Promise<void> = async () => {}, signal?: AbortSignal) {
    super();
    this.#verdict = verdict;
    this.#tool = spawnTool('zstd', ['-d', '-q', '-c'], { signal, name: 'zstd -d' });
    const stdout = this.#tool.stdout;
    const count = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        this.tarBytes += chunk.length;
        callback();
      },
    });
    const controller = new AbortController();
    this.#inspected = stdout
      ? settleAll([pipeline(stdout, this.#watch, count), this.#tool.done], controller).then(() => {})
      : Promise.reject(new SourceError('zstd -d was started without pipes'));
    this.#inspected.catch(() => {});
  }

  /** What the tar said; complete once the stream has ended. */
  get facts(): TarFacts {
    return this.#watch.facts;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const stdin = this.#tool.stdin;
    if (!stdin) {
      callback(new SourceError('zstd -d was started without pipes'));
    } else if (stdin.write(chunk)) {
      callback(null, chunk);
    } else {
      // Backpressure from the side: wait for zstd, or learn why it stopped reading.
      drainedOrClosed(stdin).then((more) => {
        if (more) callback(null, chunk);
        else
          this.#inspected.then(
            () => callback(new SourceError('zstd -d ended before the archive did')),
            (error: unknown) => callback(this.#failure(error)),
          );
      });
    }
  }

  override _flush(callback: TransformCallback): void {
    this.#tool.stdin?.end();
    this.#inspected
      .then(() => this.#verdict())
      .then(
        () => callback(),
        (error: unknown) => callback(this.#failure(error)),
      );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const child = this.#tool.child;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    callback(error);
  }

  #failure(error: unknown): Error {
    return error instanceof Error ? error : new SourceError(String(error));
  }
}
