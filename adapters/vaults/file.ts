/**
 * A vault in a local directory (a NAS mount, a second disk). Keys are paths below the root; a put
 * writes `.<name>.partial-<random>` beside its target, fsyncs it, hard-links it into place (create-only:
 * `link` fails when the key exists, as S3's `If-None-Match: *` does), removes the temp name and fsyncs the
 * directory, so an object is either absent or whole, also across a crash, and never replaced. Listings
 * skip partial files.
 * Tags and storage classes do not apply: file vaults apply retention with `strongbox prune`.
 */
import { randomBytes } from 'node:crypto';
import { type FileHandle, link, mkdir, open, readdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { addAbortSignal, type Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { NotFoundError, type StrongboxError, VaultError } from '#core/errors';
import type { PutOptions, StoredObject, Vault } from '#core/ports';
import { checkKey, PARTIAL_NAME } from './vault-key';

/** A {@link Vault} over a directory. */
export class FileVault implements Vault {
  /** `file:///absolute/path` */
  readonly url: string;
  /** The root directory. */
  readonly root: string;

  /**
   * @param location `file:///absolute/path` or an absolute path. The directory is created on first put.
   * @throws VaultError for a relative path or another URL scheme.
   */
  constructor(location: string) {
    const path = location.startsWith('file://') ? fileURLToPath(location) : location;
    if (!isAbsolute(path)) throw new VaultError(`file vault location must be absolute, got '${location}'`);
    this.root = resolve(path);
    this.url = pathToFileURL(this.root).href;
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<{ sizeBytes: number }> {
    checkKey(key);
    const target = this.#path(key);
    const temp = join(dirname(target), `.${basename(target)}.partial-${randomBytes(8).toString('hex')}`);
    const signal = options.signal;
    const onAbort = () => body.destroy(signal?.reason as Error);
    signal?.addEventListener('abort', onAbort, { once: true });
    let handle: FileHandle | undefined;
    try {
      signal?.throwIfAborted();
      handle = await this.#fs(key, this.#createTemp(temp));
      let sizeBytes = 0;
      // Chunks are collected up to WRITE_BATCH_BYTES and written with one writev: a stream's chunks are
      // 64 KiB or less (an encrypted chunk arrives as ciphertext and tag), and each write is a trip
      // through libuv's thread pool. Errors of the body (a failed source or stage) come out of this
      // loop unchanged; write errors become VaultErrors.
      let batch: Buffer[] = [];
      let batchBytes = 0;
      for await (const chunk of body as AsyncIterable<Buffer | string>) {
        const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        batch.push(data);
        batchBytes += data.length;
        if (batchBytes < WRITE_BATCH_BYTES) continue;
        await this.#fs(key, writeFully(handle, batch));
        sizeBytes += batchBytes;
        batch = [];
        batchBytes = 0;
      }
      await this.#fs(key, writeFully(handle, batch));
      sizeBytes += batchBytes;
      await this.#fs(key, handle.sync());
      await this.#fs(key, handle.close());
      handle = undefined;
      signal?.throwIfAborted();
      await this.#publish(key, temp, target);
      await this.#fs(key, syncDirectory(dirname(target)));
      return { sizeBytes };
    } catch (error) {
      body.destroy();
      await handle?.close().catch(() => {});
      await unlink(temp).catch(() => {});
      if (signal?.aborted) throw signal.reason;
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    checkKey(key);
    let handle: FileHandle;
    try {
      handle = await open(this.#path(key), 'r');
    } catch (error) {
      throw this.#readError(key, error);
    }
    const info = await handle.stat();
    if (!info.isFile()) {
      await handle.close();
      throw new NotFoundError(`${key} does not exist in ${this.url}`);
    }
    const stream = handle.createReadStream({ highWaterMark: 256 * 1024 });
    return options.signal ? addAbortSignal(options.signal, stream) : stream;
  }

  async head(key: string): Promise<StoredObject | undefined> {
    checkKey(key);
    try {
      const info = await stat(this.#path(key));
      return info.isFile() ? this.#stored(key, info) : undefined;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw this.#readError(key, error);
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    // The deepest directory that holds every key with this prefix.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash);
    if (base !== '') checkKey(base);
    yield* this.#walk(base, prefix);
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) checkKey(key);
    for (const key of keys) {
      try {
        await unlink(this.#path(key));
      } catch (error) {
        if (isMissing(error)) continue;
        throw new VaultError(`cannot delete ${key} in ${this.url}: ${describeFsError(error)}`, {
          cause: error,
        });
      }
      await this.#removeEmptyParents(key);
    }
  }

  async removeAbandoned(
    prefix: string,
    olderThan: Date,
    options: { dryRun?: boolean } = {},
  ): Promise<string[]> {
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash);
    if (base !== '') checkKey(base);
    const removed: string[] = [];
    const visit = async (dirKey: string): Promise<void> => {
      const dir = dirKey === '' ? this.root : this.#path(dirKey);
      const entries = await readdir(dir, { withFileTypes: true }).catch((error: unknown) => {
        if (isMissing(error)) return [];
        throw new VaultError(`cannot list ${dirKey || '/'} in ${this.url}: ${describeFsError(error)}`, {
          cause: error,
        });
      });
      for (const entry of entries) {
        const key = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
        if (entry.isDirectory()) {
          if (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`)) await visit(key);
          continue;
        }
        if (!entry.isFile() || !PARTIAL_NAME.test(entry.name)) continue;
        const target = `${dirKey === '' ? '' : `${dirKey}/`}${entry.name.slice(1).replace(/\.partial-[0-9a-f]{16}$/, '')}`;
        if (!target.startsWith(prefix)) continue;
        const info = await stat(join(dir, entry.name)).catch(() => undefined);
        if (!info || info.mtime >= olderThan) continue;
        if (!options.dryRun) await unlink(join(dir, entry.name)).catch(() => {});
        removed.push(target);
      }
    };
    await visit(base);
    return removed.sort();
  }

  /** Yields files below `dirKey` whose key starts with `prefix`, in key (byte) order. */
  async *#walk(dirKey: string, prefix: string): AsyncGenerator<StoredObject> {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(dirKey === '' ? this.root : this.#path(dirKey), { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw new VaultError(`cannot list ${dirKey || '/'} in ${this.url}: ${describeFsError(error)}`, {
        cause: error,
      });
    }
    // A directory sorts as its name plus '/', so that keys below it come out in S3's order.
    const sorted = entries
      .filter((e) => (e.isDirectory() || e.isFile()) && !PARTIAL_NAME.test(e.name))
      .map((e) => ({ entry: e, sortKey: Buffer.from(e.isDirectory() ? `${e.name}/` : e.name) }))
      .sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
    for (const { entry } of sorted) {
      const key = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
      if (entry.isDirectory()) {
        const below = `${key}/`;
        if (below.startsWith(prefix) || prefix.startsWith(below)) yield* this.#walk(key, prefix);
      } else if (key.startsWith(prefix)) {
        try {
          yield this.#stored(key, await stat(this.#path(key)));
        } catch (error) {
          if (!isMissing(error)) throw error; // deleted while listing
        }
      }
    }
  }

  #stored(key: string, info: { size: number; mtime: Date }): StoredObject {
    return { key, sizeBytes: info.size, lastModified: info.mtime, storageClass: 'STANDARD' };
  }

  #path(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  async #createTemp(temp: string): Promise<FileHandle> {
    // A concurrent delete may remove the empty directory between mkdir and open: try twice.
    for (let attempt = 0; ; attempt++) {
      await mkdir(dirname(temp), { recursive: true });
      try {
        return await open(temp, 'wx');
      } catch (error) {
        if (attempt > 0 || !isMissing(error)) throw error;
      }
    }
  }

  /**
   * Puts the finished temp file under its key, never over an object that is there: a hard link fails with
   * EEXIST when the key exists. File systems without hard links (some SMB and FAT mounts) get a check then
   * a rename, which a concurrent writer of the same key could race; Strongbox never writes a key twice.
   * @throws VaultError when the key exists.
   */
  async #publish(key: string, temp: string, target: string): Promise<void> {
    const exists = () =>
      new VaultError(
        `put ${key} in ${this.url} refused: the object already exists, and Strongbox writes every object once, never over another`,
      );
    try {
      await link(temp, target);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw exists();
      if (!NO_HARD_LINKS.has(code ?? '')) throw this.#writeError(key, error);
      if (await this.head(key)) throw exists();
      await this.#fs(key, rename(temp, target));
      return;
    }
    await this.#fs(key, unlink(temp));
  }

  /** Removes directories left empty by a delete, up to (not including) the root. */
  async #removeEmptyParents(key: string): Promise<void> {
    const segments = key.split('/').slice(0, -1);
    while (segments.length > 0) {
      try {
        await rmdir(join(this.root, ...segments));
      } catch {
        return; // not empty (or already gone): stop
      }
      segments.pop();
    }
  }

  /** Runs a file system step of a write, turning its failure into a VaultError. */
  async #fs<T>(key: string, step: Promise<T>): Promise<T> {
    try {
      return await step;
    } catch (error) {
      throw this.#writeError(key, error);
    }
  }

  #writeError(key: string, error: unknown): VaultError {
    return new VaultError(`cannot write ${key} in ${this.url}: ${describeFsError(error)}`, { cause: error });
  }

  #readError(key: string, error: unknown): StrongboxError {
    if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'EISDIR')
      return new NotFoundError(`${key} does not exist in ${this.url}`, { cause: error });
    return new VaultError(`cannot read ${key} in ${this.url}: ${describeFsError(error)}`, { cause: error });
  }
}

/**
 * Bytes a put collects before writing them (one writev). Memory: at most this plus one chunk per put.
 * Measured in docs/adr/0010-backup-pipeline-overhead.md.
 */
export const WRITE_BATCH_BYTES = 1024 * 1024;

/** Writes every byte of `buffers`, in order, at the file's position (writev, again after a short write). */
async function writeFully(handle: FileHandle, buffers: Buffer[]): Promise<void> {
  let rest = buffers.filter((b) => b.length > 0);
  while (rest.length > 0) {
    let { bytesWritten } = await handle.writev(rest);
    while (rest.length > 0 && bytesWritten >= (rest[0] as Buffer).length) {
      bytesWritten -= (rest[0] as Buffer).length;
      rest = rest.slice(1);
    }
    if (bytesWritten > 0) rest[0] = (rest[0] as Buffer).subarray(bytesWritten);
  }
}

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Errors of `link` on file systems that have no hard links. */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const hints: Record<string, string> = {
    ENOSPC: 'no space left on the device',
    EACCES: 'permission denied',
    EROFS: 'read-only file system',
    EDQUOT: 'disk quota exceeded',
  };
  return (code && hints[code]) ?? (error instanceof Error ? error.message : String(error));
}
