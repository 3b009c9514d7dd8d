/**
 * The files source: a tar stream (node-tar, no external tool) of configured absolute paths — configs,
 * media, models, volumes — stored relative to `/` (`etc/app/app.yaml`) with modes, owners, mtimes and
 * symbolic links as they are, and excludes as globs. Restore extracts into a new or empty directory and
 * never overwrites a file.
 */
import { chmod, lstat, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { create, extract, type Unpack } from 'tar';
import tarPackage from 'tar/package.json' with { type: 'json' };
import type { Finding } from '#core/checks';
import { RestoreError, SourceError } from '#core/errors';
import type { SourceBackup, TargetCheck } from '#core/ports';
import type { FilesDetails, FilesSourceConfig } from '#core/sources/index';
import type { SourceContext } from '../context';
import { oneObject } from '../kit';
import { excluder } from './glob';

/** Entry types that are regular files on disk once extracted (a hard link is one more path to a file). */
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Link']);

/**
 * Starts a tar stream of `config.paths`. Symbolic links are stored as links (never followed), sockets,
 * FIFOs and device files are left out, and a path matched by an `exclude` glob (against its absolute path
 * or its base name) is left out with everything below it. Any read error fails the backup (node-tar's
 * strict mode): a file that cannot be read must not silently be missing from a "complete" backup.
 * `done` resolves with the count and bytes of regular files once the consumer has read the whole stream,
 * and rejects with a SourceError when anything failed; the stream then errors too.
 * Memory: node-tar reads files in 16 MiB blocks at most, one file at a time.
 * @example
 * const backup = await backupFiles(job.source, { env });
 * for await (const object of backup.objects) await pipeline(object.stream, compress, encrypt, upload);
 * await backup.done;
 * @throws SourceError naming a configured path that does not exist or cannot be read.
 */
export async function backupFiles(
  config: FilesSourceConfig,
  ctx: SourceContext,
): Promise<SourceBackup<FilesDetails>> {
  const paths = topLevelPaths(config.paths);
  for (const path of paths) {
    try {
      await lstat(path);
    } catch (error) {
      throw new SourceError(`path ${path} of the files source cannot be read: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }
  const isExcluded = excluder(config.exclude);
  let fileCount = 0;
  let fileBytes = 0;
  const pack = create(
    {
      cwd: '/',
      portable: false,
      follow: false,
      strict: true,
      filter: (path, stat) => {
        if (!('isFile' in stat)) return true;
        const absolute = `/${path.replace(/^\.?\/+/, '')}`;
        if (isExcluded(absolute)) return false;
        if (!(stat.isFile() || stat.isDirectory() || stat.isSymbolicLink())) return false;
        if (stat.isFile()) {
          fileCount++;
          fileBytes += stat.size;
        }
        return true;
      },
    },
    paths.map((path) => (path === '/' ? '.' : path.replace(/^\/+/, ''))),
  );

  let settle: { resolve: (details: FilesDetails) => void; reject: (error: unknown) => void } | undefined;
  const finished = new Promise<FilesDetails>((resolve, reject) => {
    settle = { resolve, reject };
  });
  async function* archive(): AsyncGenerator<Buffer> {
    let complete = false;
    try {
      for await (const chunk of pack) yield chunk as Buffer;
      complete = true;
      settle?.resolve({
        kind: 'files',
        paths: [...config.paths],
        excluded: [...config.exclude],
        fileCount,
        fileBytes,
      });
    } catch (error) {
      const failure =
        error instanceof SourceError
          ? error
          : new SourceError(`tar of ${paths.join(', ')} failed: ${messageOf(error)}`, { cause: error });
      settle?.reject(failure);
      throw failure;
    } finally {
      if (!complete) settle?.reject(new SourceError(`tar of ${paths.join(', ')} was stopped before its end`));
    }
  }
  const stream = Readable.from(archive(), { objectMode: false });
  const onAbort = () => stream.destroy(ctx.signal?.reason);
  if (ctx.signal?.aborted) onAbort();
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  const done = finished
    .then((details) => ({ details, tools: { tar: `node-tar ${tarPackage.version}` } }))
    .finally(() => ctx.signal?.removeEventListener('abort', onAbort));
  done.catch(() => {});
  return { objects: oneObject(stream), done };
}

/** Options of {@link restoreFiles}. */
export interface FilesRestoreOptions {
  /** Directory to extract into: it must not exist or be empty. Paths land below it (`<dir>/etc/app/…`). */
  targetDir: string;
  /** Stops the extraction; what was extracted is removed. */
  signal?: AbortSignal;
}

/**
 * Extracts a tar stream into `targetDir`, which must not exist or be an empty directory (never overwrite
 * existing files). Modes are kept exactly (whatever the umask), owners too when running as root, file
 * mtimes as stored;
 * absolute paths and `..` entries fail the restore (strict mode) instead of escaping the target. On any
 * failure — the input erroring, a bad entry, an abort — what was extracted is removed (the directory
 * itself only when this call created it) and the original error is rethrown.
 * @example await restoreFiles(decrypted, { targetDir: '/srv/restore/app-config' })
 * @throws RestoreError when the target exists and is not an empty directory (it is left untouched), or
 *   the archive is bad; the input's own error when the input fails.
 */
export async function restoreFiles(
  input: Readable,
  options: FilesRestoreOptions,
): Promise<{ fileCount: number }> {
  const target = options.targetDir;
  let created = false;
  let claimed = false;
  try {
    created = await claimTarget(target);
    claimed = true;
    let fileCount = 0;
    // New files and directories get the process umask applied by the OS; node-tar's chmod option only
    // fixes entries that existed before. Entries whose mode the umask cuts are chmodded afterwards.
    const umask = await processUmask();
    const modeFixes: { path: string; mode: number }[] = [];
    const unpack = extract({
      cwd: target,
      strict: true,
      preserveOwner: process.getuid?.() === 0,
      onReadEntry: (entry) => {
        if (FILE_TYPES.has(entry.type)) fileCount++;
        const mode = (entry.mode ?? 0) & 0o7777;
        if ((mode & umask) !== 0 && (FILE_TYPES.has(entry.type) || entry.type === 'Directory')) {
          modeFixes.push({ path: join(target, entry.path), mode });
        }
      },
    });
    await feedUnpack(input, unpack, options.signal);
    for (const fix of modeFixes) await chmod(fix.path, fix.mode);
    return { fileCount };
  } catch (error) {
    stopInput(input, error);
    if (claimed) {
      try {
        if (created) await rm(target, { recursive: true, force: true });
        else await emptyDirectory(target);
      } catch (cleanupError) {
        throw new RestoreError(
          `restore into ${target} failed (${messageOf(error)}) and what was extracted could not be removed: ${messageOf(cleanupError)}`,
          { cause: error },
        );
      }
    }
    throw error;
  }
}

/**
 * Checks a restored directory against the manifest: the number of regular files and their bytes (one
 * check, `file-count`). Findings carry `job: ''` for the caller to fill in.
 * @example (await checkFiles(manifest.source, '/srv/restore/app-config'))[0].passed // true
 */
export async function checkFiles(details: FilesDetails, targetDir: string): Promise<TargetCheck[]> {
  const found = await countFiles(targetDir);
  const findings: Finding[] = [];
  if (found.fileCount !== details.fileCount) {
    findings.push({
      job: '',
      severity: 'critical',
      check: 'file-count',
      message: `${targetDir} holds ${found.fileCount} files, the backup recorded ${details.fileCount}`,
    });
  }
  if (found.fileBytes !== details.fileBytes) {
    findings.push({
      job: '',
      severity: 'critical',
      check: 'file-bytes',
      message: `${targetDir} holds ${found.fileBytes} bytes of files, the backup recorded ${details.fileBytes}`,
    });
  }
  const passed = findings.length === 0;
  const detail = passed
    ? `${found.fileCount} files, ${found.fileBytes} bytes, as the backup recorded`
    : findings.map((f) => f.message).join('; ');
  return [{ check: 'file-count', passed, detail, findings }];
}

/** Regular files below a directory (symbolic links not followed) and their bytes. */
export async function countFiles(dir: string): Promise<{ fileCount: number; fileBytes: number }> {
  let fileCount = 0;
  let fileBytes = 0;
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    fileCount++;
    fileBytes += (await lstat(join(entry.parentPath, entry.name))).size;
  }
  return { fileCount, fileBytes };
}

/**
 * Makes `target` ours to extract into: creates it (returns true) or accepts an existing empty directory
 * (returns false). @throws RestoreError for anything else.
 */
async function claimTarget(target: string): Promise<boolean> {
  try {
    await mkdir(target, { recursive: false, mode: 0o700 });
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      await mkdir(target, { recursive: true, mode: 0o700 });
      return true;
    }
    if (code !== 'EEXIST') {
      throw new RestoreError(`cannot create restore target ${target}: ${messageOf(error)}`, { cause: error });
    }
  }
  const stat = await lstat(target);
  if (!stat.isDirectory()) {
    throw new RestoreError(`restore target ${target} exists and is not a directory: it was left untouched`);
  }
  if ((await readdir(target)).length > 0) {
    throw new RestoreError(
      `restore target ${target} is not empty: restore never overwrites files (choose a new or empty directory)`,
    );
  }
  return false;
}

/**
 * Writes the input into node-tar's Unpack with backpressure and waits until every entry is on disk
 * (Unpack emits 'finish' once its last file system operation is done).
 */
async function feedUnpack(input: Readable, unpack: Unpack, signal?: AbortSignal): Promise<void> {
  const closed = new Promise<void>((resolve, reject) => {
    unpack.on('error', (error: Error) =>
      reject(
        error instanceof RestoreError
          ? error
          : new RestoreError(`extracting the archive failed: ${messageOf(error)}`, { cause: error }),
      ),
    );
    unpack.on('finish', () => resolve());
  });
  closed.catch(() => {});
  const onAbort = () => input.destroy(signal?.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const failed = closed.then(() => 'closed' as const);
    failed.catch(() => {});
    for await (const chunk of input) {
      if (unpack.write(chunk as Buffer)) continue;
      const event = await Promise.race([
        new Promise<'drain'>((resolve) => unpack.once('drain', () => resolve('drain'))),
        failed,
      ]);
      if (event === 'closed') throw new RestoreError('tar stopped reading before the end of the archive');
    }
    unpack.end();
    await closed;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** The process umask, read from /proc (process.umask() without arguments is deprecated). */
async function processUmask(): Promise<number> {
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const match = /^Umask:\s*([0-7]+)/m.exec(status);
  return match ? Number.parseInt(match[1] as string, 8) : 0o022;
}

/**
 * Destroys an input we will not read to its end, with the error that stopped us, so the stages feeding it
 * stop with the real cause. Our listener keeps an input nobody else listens to from crashing the process.
 */
function stopInput(input: Readable, error: unknown): void {
  if (input.destroyed) return;
  input.on('error', () => {});
  input.destroy(error instanceof Error ? error : new Error(String(error)));
}

/** Removes everything inside a directory, keeping the directory. */
async function emptyDirectory(dir: string): Promise<void> {
  for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true });
}

/** The configured paths without those inside another configured path (tar would store them twice). */
function topLevelPaths(paths: readonly string[]): string[] {
  const normal = [...new Set(paths.map((p) => (p.length > 1 ? p.replace(/\/+$/, '') : p)))];
  const inside = (path: string, dir: string) => {
    const rel = relative(dir, path);
    return rel !== '' && rel !== '..' && !rel.startsWith('../');
  };
  return normal.filter((path) => !normal.some((other) => inside(path, other)));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
