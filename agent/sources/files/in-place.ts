/**
 * In-place restore of a files backup: the archive (or the chosen paths of it) is extracted whole into a
 * staging directory beside the original locations, checked, and only then moved into place entry by
 * entry with rename(2) — each entry atomic, and every entry it overwrites moved first into a kept
 * directory beside (`.strongbox-kept-<time>`), never deleted. A failure while moving undoes every move
 * made, in reverse, so the tree is as it was; a failure before that changed nothing.
 *
 * Decisions: what exists now but is not in the backup stays (default) or, with `delete`, is moved into
 * the kept directory too (never what the job excludes, never outside the restored paths). Directories
 * that exist keep their own mode, owner and times (only their contents are restored); directories that
 * do not are placed as archived. Staging, kept directory and targets must be on one file system (rename
 * is atomic only there): a target on another one is refused before anything moves.
 */
import { lstat, mkdir, readdir, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import { RestoreError } from '#core/errors';
import type { FilesDetails } from '#core/sources/files';
import { countFiles } from './check';
import { excluder, globToRegExp } from './glob';
import { INCOMPLETE_MARKER, removeAbandonedRestores, removeTree, restoreFiles, writeMarker } from './restore';

/** Options of {@link restoreInPlace}. */
export interface InPlaceOptions {
  /** Absolute paths (globs allowed) to restore; every path of the backup by default. */
  paths?: readonly string[];
  /** Move what exists below the restored paths but is not in the backup into the kept directory. */
  delete?: boolean;
  /** The job's excludes: never deleted (they were left out of the backup on purpose). */
  exclude?: readonly string[];
  /** The manifest's details: its paths, and the counts the staged tree is checked against. */
  details: FilesDetails;
  /** Names the staging and kept directories (`.strongbox-restore-<stamp>`, `.strongbox-kept-<stamp>`). */
  stamp: string;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** What an in-place restore did. */
export interface InPlaceResult {
  /** The directory holding everything it overwrote or moved away, or undefined when it touched nothing. */
  keptAs?: string;
  /** Entries moved into place (each with what is below it). */
  placed: number;
  /** Entries that existed and were moved into the kept directory (replaced, or deleted with `delete`). */
  kept: number;
  /** Regular files and bytes of the staged tree, counted before anything moved. */
  staged: { fileCount: number; fileBytes: number };
}

/** One move, and how to undo it. */
type Move = { from: Buffer; to: Buffer };

/**
 * Restores a tar stream over the original locations (see the module comment).
 * @example await restoreInPlace(input, { details, stamp: '20261202T010000Z', paths: ['/etc/app'] })
 * @throws RestoreError when extraction fails (nothing changed), the staged tree does not match the
 *   manifest (full restores; nothing changed), a target is on another file system (nothing changed), or
 *   a move fails (every move undone; the message says if undoing failed too).
 */
export async function restoreInPlace(input: Readable, options: InPlaceOptions): Promise<InPlaceResult> {
  const roots = options.paths?.length ? [...options.paths] : options.details.paths;
  const base = commonParent(roots.map(anchorOf));
  const prefix = base === '/' ? '' : base;
  const staging = `${prefix}/.strongbox-restore-${options.stamp}`;
  const keptAs = `${prefix}/.strongbox-kept-${options.stamp}`;
  // A killed in-place restore's staging directory (its marker names a process that is gone) goes first.
  for (const gone of await removeAbandonedRestores(base, '.strongbox-restore-'))
    options.log?.(`removed ${gone}, left by an in-place restore that was killed`);
  await restoreFiles(input, {
    targetDir: staging,
    signal: options.signal,
    members: options.paths?.length ? options.paths.map(memberOf) : undefined,
  });
  let keep = false;
  try {
    // Marked again while moving: a restore killed now leaves a staging directory the next one removes.
    await writeMarker(staging, false);
    const counted = await countFiles(staging);
    const marker = await lstat(join(Buffer.from(staging), Buffer.from(INCOMPLETE_MARKER)));
    const staged = { fileCount: counted.fileCount - 1, fileBytes: counted.fileBytes - marker.size };
    if (!options.paths?.length) {
      const { fileCount, fileBytes } = options.details;
      if (staged.fileCount !== fileCount || staged.fileBytes !== fileBytes) {
        throw new RestoreError(
          `the extracted backup holds ${staged.fileCount} files (${staged.fileBytes} bytes), the manifest recorded ${fileCount} (${fileBytes} bytes): nothing was restored in place`,
        );
      }
    }
    const stagingPath = Buffer.from(staging);
    const keptPath = Buffer.from(keptAs);
    const moves = await planMoves(stagingPath, keptPath, {
      deleteExtra: options.delete === true,
      inRoots: rootMatcher(roots),
      excluded: excluder(options.exclude ?? []),
    });
    await checkOneFileSystem(staging, moves);
    const done: Move[] = [];
    try {
      for (const move of moves) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (isBelow(move.to, keptPath)) await mkdir(parentOf(move.to), { recursive: true, mode: 0o700 });
        await rename(move.from, move.to);
        done.push(move);
      }
    } catch (error) {
      const failed = await undoMoves(done);
      keep = failed.length > 0;
      throw new RestoreError(
        `restoring in place failed (${messageOf(error)}); ${
          failed.length === 0
            ? `every change was undone (${done.length} move${done.length === 1 ? '' : 's'})`
            : `${failed.length} of ${done.length} moves could not be undone (${failed.slice(0, 3).join('; ')}): what was overwritten is in ${keptAs}`
        }`,
        { cause: error },
      );
    }
    const kept = moves.filter((m) => isBelow(m.to, keptPath)).length;
    keep = kept > 0;
    return { ...(keep ? { keptAs } : {}), placed: moves.length - kept, kept, staged };
  } finally {
    await removeTree(staging);
    if (!keep) await removeTree(keptAs);
  }
}

/**
 * The moves that put a staged tree in place, parents before children: an entry whose target does not
 * exist is moved in whole; one whose target exists is moved in after the target was moved to the kept
 * directory — except a directory over a directory, which is merged (its children are planned in turn).
 * With `deleteExtra`, a merged directory's children that the backup does not hold go to the kept
 * directory, when inside the restored roots and not excluded.
 */
async function planMoves(
  staging: Buffer,
  kept: Buffer,
  rules: { deleteExtra: boolean; inRoots: (path: string) => boolean; excluded: (path: string) => boolean },
): Promise<Move[]> {
  const moves: Move[] = [];
  // `dest` is an absolute directory (`/` at the top); its staged copy is `staging` + `dest`.
  const visit = async (dest: Buffer, src: Buffer): Promise<void> => {
    const top = dest.length === 1;
    // In byte order, so a restore moves (and a failure undoes) in the same order every time.
    const names = (await readdir(src, { encoding: 'buffer' }))
      .filter((n) => !(top && n.toString('latin1') === INCOMPLETE_MARKER))
      .sort(Buffer.compare);
    const stagedNames = new Set(names.map((n) => n.toString('latin1')));
    for (const name of names) {
      const to = join(dest, name);
      const from = join(src, name);
      const existing = await lstat(to).catch(() => undefined);
      if (!existing) {
        moves.push({ from, to });
        continue;
      }
      if (existing.isDirectory() && (await lstat(from)).isDirectory()) {
        await visit(to, from);
        continue;
      }
      moves.push({ from: to, to: Buffer.concat([kept, to]) }, { from, to });
    }
    if (!rules.deleteExtra || !rules.inRoots(dest.toString())) return;
    for (const name of (await readdir(dest, { encoding: 'buffer' })).sort(Buffer.compare)) {
      if (stagedNames.has(name.toString('latin1')) || isStrongboxName(name)) continue;
      const path = join(dest, name);
      if (rules.excluded(path.toString())) continue;
      moves.push({ from: path, to: Buffer.concat([kept, path]) });
    }
  };
  await visit(Buffer.from('/'), staging);
  return moves;
}

/** Refuses targets on another file system than the staging directory (rename would fail half-way). */
async function checkOneFileSystem(staging: string, moves: readonly Move[]): Promise<void> {
  const dev = (await stat(staging)).dev;
  const other = new Set<string>();
  for (const move of moves) {
    const parent = parentOf(move.to);
    const parentStat = await stat(parent).catch(() => undefined);
    if (parentStat && parentStat.dev !== dev) other.add(parent.toString());
    if (isBelow(move.from, Buffer.from(staging))) continue;
    const fromStat = await lstat(move.from).catch(() => undefined);
    if (fromStat && fromStat.dev !== dev) other.add(move.from.toString());
  }
  if (other.size > 0) {
    throw new RestoreError(
      `an in-place restore moves entries with rename, on one file system: ${[...other].slice(0, 3).join(', ')} ${other.size === 1 ? 'is' : 'are'} on another file system than ${staging} (nothing was changed; restore into a --target and copy)`,
    );
  }
}

/** Undoes moves in reverse order; returns what could not be undone. */
async function undoMoves(done: readonly Move[]): Promise<string[]> {
  const failed: string[] = [];
  for (const move of [...done].reverse()) {
    try {
      await rename(move.to, move.from);
    } catch (error) {
      failed.push(`${move.to.toString()}: ${messageOf(error)}`);
    }
  }
  return failed;
}

/** Whether an absolute path is one of the roots or below one (globs as in the plan's paths). */
function rootMatcher(roots: readonly string[]): (path: string) => boolean {
  const regexps = roots.map((r) => globToRegExp(r.replace(/\/+$/, '') || '/'));
  return (path) => {
    for (let p = path; ; p = dirname(p)) {
      if (regexps.some((re) => re.test(p))) return true;
      if (p === '/') return false;
    }
  };
}

/** The directory a root's entries are in: its parent, or the directory before its first glob segment. */
function anchorOf(root: string): string {
  const segments = root.split('/').filter(Boolean);
  const glob = segments.findIndex((s) => /[*?[]/.test(s));
  const fixed = glob < 0 ? segments.slice(0, -1) : segments.slice(0, glob);
  return `/${fixed.join('/')}`;
}

/** The deepest directory every path is in. */
function commonParent(paths: readonly string[]): string {
  const split = paths.map((p) => p.split('/').filter(Boolean));
  const first = split[0] ?? [];
  let n = 0;
  while (n < first.length && split.every((s) => s[n] === first[n])) n++;
  return `/${first.slice(0, n).join('/')}`;
}

/** An archive member name for a path: relative to `/`, as the backup stored it. */
export function memberOf(path: string): string {
  return path.replace(/^\/+/, '').replace(/\/+$/, '');
}

/** Our own staging and kept directories beside the roots: never deleted as "not in the backup". */
function isStrongboxName(name: Buffer): boolean {
  return /^\.strongbox-(restore|kept)-/.test(name.toString('latin1'));
}

function join(dir: Buffer, name: Buffer): Buffer {
  if (dir.length === 1 && dir[0] === 0x2f) return Buffer.concat([dir, name]);
  return Buffer.concat([dir, Buffer.from('/'), name]);
}

function parentOf(path: Buffer): Buffer {
  const slash = path.lastIndexOf(0x2f);
  return slash <= 0 ? Buffer.from('/') : path.subarray(0, slash);
}

function isBelow(path: Buffer, dir: Buffer): boolean {
  return path.length > dir.length && path[dir.length] === 0x2f && path.subarray(0, dir.length).equals(dir);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
