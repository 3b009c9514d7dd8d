/**
 * Restore of a files backup: GNU tar extracts the archive into a new or empty directory. Until the
 * extraction is complete the directory carries a marker file that says so; a restore that fails or is
 * stopped removes what it extracted, and one that was killed (so could not) is cleaned up by the next
 * restore into the same directory.
 */
import { chmod, lstat, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { processRuns, spawnTool } from '#agent/pipeline/child';
import { settleAll } from '#agent/pipeline/flow';
import { RestoreError, SourceError } from '#core/errors';
import { extractArgs } from './gnu-tar';

/** The marker a restore keeps in its target until the extraction is complete. */
export const INCOMPLETE_MARKER = '.strongbox-restore-incomplete';

/** Options of {@link restoreFiles}. */
export interface FilesRestoreOptions {
  /** Directory to extract into: it must not exist or be empty. Paths land below it (`<dir>/etc/app/…`). */
  targetDir: string;
  /** Stops the extraction; what was extracted is removed. */
  signal?: AbortSignal;
  /** Archive members to extract (relative to `/`, globs as GNU tar's `--wildcards`); all by default. */
  members?: readonly string[];
}

/** What the marker file holds: who is restoring, and whether that restore created the directory. */
interface Marker {
  pid: number;
  startedAt: string;
  created: boolean;
}

/**
 * Extracts a tar stream into `targetDir`, which must not exist or be an empty directory (never overwrite
 * existing files) — or hold only what a killed restore left (its marker names a process that is gone),
 * which is removed first. Permissions, xattrs, ACLs, sparse files, FIFOs, sub-second times are restored
 * as archived; owners and device nodes too when running as root; `..` and absolute names are refused
 * by tar. On any failure — the input erroring, a bad entry, tar failing, an abort — what was extracted is
 * removed (the directory itself only when a restore created it) and the original error is rethrown.
 * @example await restoreFiles(decrypted, { targetDir: '/srv/restore/app-config' })
 * @throws RestoreError when the target exists and is not an empty directory (it is left untouched), or
 *   tar fails; the input's own error when the input fails.
 */
export async function restoreFiles(input: Readable, options: FilesRestoreOptions): Promise<void> {
  const target = options.targetDir;
  let created = false;
  let claimed = false;
  const controller = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
  try {
    created = await claimTarget(target);
    claimed = true;
    await writeMarker(target, created);
    const root = process.getuid?.() === 0;
    const tar = spawnTool('tar', extractArgs(target, { root, members: options.members }), {
      signal,
      stdout: 'ignore',
    });
    const fed = tar.stdin ? feedTar(input, tar.stdin) : Promise.reject(new SourceError('tar has no stdin'));
    fed.catch(() => {});
    try {
      // The input's error (an IntegrityError) wins over tar's complaint about the cut archive.
      await settleAll([fed, tar.done], controller);
    } catch (error) {
      const inputError = input.errored;
      if (inputError) throw inputError;
      if (error instanceof SourceError) {
        throw new RestoreError(`extracting the archive into ${target} failed: ${error.message}`, {
          cause: error,
        });
      }
      throw error;
    }
    await rm(join(target, INCOMPLETE_MARKER));
  } catch (error) {
    stopInput(input, error);
    if (claimed) {
      try {
        if (created) await removeTree(target);
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
 * Writes the input into tar's stdin with backpressure. tar stops reading at the archive's end marker,
 * which may come before the input's end: the rest is still read (and dropped), because the input ends
 * only once it is authenticated whole — a restore must not succeed on a backup that fails verification.
 */
async function feedTar(input: Readable, stdin: Writable): Promise<void> {
  let open = true;
  const closed = new Promise<void>((resolve) => {
    stdin.once('close', () => {
      open = false;
      resolve();
    });
  });
  stdin.on('error', () => {
    open = false;
  });
  for await (const chunk of input) {
    if (!open) continue;
    if (!stdin.write(chunk as Buffer)) {
      await Promise.race([new Promise<void>((resolve) => stdin.once('drain', () => resolve())), closed]);
    }
  }
  if (open) stdin.end();
}

/**
 * Makes `target` ours to extract into: creates it (returns true), accepts an existing empty directory
 * (returns false), or cleans up after a killed restore (returns whether that one created it).
 * @throws RestoreError for anything else.
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
  const names = await readdir(target);
  if (names.length === 0) return false;
  const marker = names.includes(INCOMPLETE_MARKER) ? await readMarker(target) : undefined;
  if (!marker) {
    throw new RestoreError(
      `restore target ${target} is not empty: restore never overwrites files (choose a new or empty directory)`,
    );
  }
  if (restoringElsewhere(marker)) {
    throw new RestoreError(
      `restore target ${target} is being restored into by process ${marker.pid} (since ${marker.startedAt}); wait for it, or stop it`,
    );
  }
  // A restore that was killed: what it left is incomplete by its own marker, so it goes.
  for (const name of names) {
    if (name !== INCOMPLETE_MARKER) await removeTree(join(target, name));
  }
  return marker.created;
}

/** Marks `dir` as being restored into by this process (the marker {@link claimTarget} reads). */
export async function writeMarker(dir: string, created: boolean): Promise<void> {
  const marker: Marker = { pid: process.pid, startedAt: new Date().toISOString(), created };
  await writeFile(join(dir, INCOMPLETE_MARKER), `${JSON.stringify(marker)}\n`, { mode: 0o600 });
}

/**
 * Removes the directories in `parent` whose names start with `prefix` and whose marker names a process
 * that is gone (restores that were killed); returns their paths. Directories without our marker, or
 * whose restore still runs, are left alone.
 */
export async function removeAbandonedRestores(parent: string, prefix: string): Promise<string[]> {
  const names = await readdir(parent).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const dir = join(parent, name);
    const marker = await readMarker(dir);
    if (!marker || restoringElsewhere(marker)) continue;
    await removeTree(dir);
    removed.push(dir);
  }
  return removed;
}

async function readMarker(target: string): Promise<Marker | undefined> {
  try {
    const value = JSON.parse(await readFile(join(target, INCOMPLETE_MARKER), 'utf8')) as Partial<Marker>;
    if (typeof value.pid !== 'number' || typeof value.startedAt !== 'string') return undefined;
    return { pid: value.pid, startedAt: value.startedAt, created: value.created === true };
  } catch {
    return undefined;
  }
}

/** Whether another process than this one, which wrote the marker, still runs. */
function restoringElsewhere(marker: Marker): boolean {
  return marker.pid !== process.pid && processRuns(marker.pid);
}

/**
 * Removes a tree, also when it holds directories without write or search permission (mode 000 restored
 * as archived): those are opened up first.
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EACCES') throw error;
    await openUp(path);
    await rm(path, { recursive: true, force: true });
  }
}

async function openUp(dir: string): Promise<void> {
  const stat = await lstat(dir).catch(() => undefined);
  if (!stat?.isDirectory()) return;
  await chmod(dir, 0o700);
  for (const name of await readdir(dir)) await openUp(join(dir, name));
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
  for (const name of await readdir(dir)) await removeTree(join(dir, name));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
