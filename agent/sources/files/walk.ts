/**
 * The names a files backup hands to GNU tar: the configured paths (globs expanded) and everything below
 * them except what an exclude matches, as raw bytes relative to `/` — names that are not valid UTF-8
 * pass through unchanged. Symbolic links are listed, never followed.
 */
import { type Dir, lstatSync, opendirSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { SourceError } from '#core/errors';
import { excluder, globToRegExp } from './glob';

/** Whether a configured path holds glob characters (`*`, `?`, `[`). */
export function isGlob(path: string): boolean {
  return /[*?[]/.test(path);
}

/**
 * The absolute paths a configured path stands for: itself, or every existing path its glob matches
 * (segment by segment; `*` never crosses `/`), sorted. Paths are Buffers so any byte is kept.
 * @throws SourceError naming the path when it does not exist or its glob matches nothing.
 */
export async function expandPath(pattern: string): Promise<Buffer[]> {
  if (!isGlob(pattern)) {
    try {
      await lstat(pattern);
    } catch (error) {
      throw new SourceError(`path ${pattern} of the files source cannot be read: ${messageOf(error)}`, {
        cause: error,
      });
    }
    return [Buffer.from(normalize(pattern))];
  }
  let found: Buffer[] = [Buffer.from('/')];
  for (const segment of normalize(pattern).split('/').filter(Boolean)) {
    const next: Buffer[] = [];
    for (const dir of found) {
      if (!isGlob(segment)) {
        const path = join(dir, Buffer.from(segment));
        if (
          await lstat(path).then(
            () => true,
            () => false,
          )
        )
          next.push(path);
        continue;
      }
      const re = globToRegExp(segment);
      const names = await readdir(dir, { encoding: 'buffer' }).catch(() => [] as Buffer[]);
      for (const name of names) if (re.test(name.toString('utf8'))) next.push(join(dir, name));
    }
    found = next;
  }
  if (found.length === 0) throw new SourceError(`path ${pattern} of the files source matches nothing`);
  return found.sort(Buffer.compare);
}

/**
 * Which names of the walk to yield: `path` is absolute, `isDirectory` from the directory entry.
 * Directories are walked into whether or not their own name is kept.
 */
export type KeepName = (path: Buffer, isDirectory: boolean) => boolean;

/**
 * Yields every name to archive, relative to `/` (`etc/app`, `etc/app/app.yaml`; `.` for `/` itself),
 * parents before children, skipping what `exclude` matches (with everything below it), paths inside
 * another listed path, and names `keep` turns down. A directory that vanishes or cannot be listed while
 * walking is left for tar to report. Memory: one open directory handle per level of depth, names
 * streamed.
 */
export async function* walkNames(
  roots: readonly Buffer[],
  exclude: readonly string[],
  keep: KeepName = () => true,
): AsyncGenerator<Buffer> {
  const isExcluded = excluder(exclude);
  const tops = topLevel(roots);
  for (const root of tops) {
    if (isExcluded(root.toString('utf8'))) continue;
    const stat = await lstat(root).catch(() => undefined);
    const isDirectory = stat?.isDirectory() ?? false;
    if (keep(root, isDirectory)) yield relative(root);
    if (isDirectory) yield* walkDir(root, isExcluded, keep);
  }
}

/**
 * The names below `dir`, depth first. Directories are read synchronously, a few hundred entries a
 * call: through the thread pool every open, read and close cost a round trip (futex and epoll wake-ups,
 * most of the walk's time on a tree of 31,000 directories: docs/adr/0017) for what the kernel answers
 * from its cache in microseconds.
 */
function* walkDir(dir: Buffer, isExcluded: (path: string) => boolean, keep: KeepName): Generator<Buffer> {
  let handle: Dir;
  try {
    handle = opendirSync(dir, { encoding: 'buffer' as BufferEncoding, bufferSize: 256 });
  } catch {
    return; // tar lists it again and reports why it cannot be read
  }
  try {
    for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) {
      const path = join(dir, entry.name as unknown as Buffer);
      if (isExcluded(path.toString('utf8'))) continue;
      const isDirectory = entry.isDirectory();
      if (keep(path, isDirectory)) yield relative(path);
      if (isDirectory) yield* walkDir(path, isExcluded, keep);
    }
  } finally {
    handle.closeSync();
  }
}

/**
 * Whether `path` is a file (of any type but a directory) with more than one name — a hard link tar
 * must store once and link the other names to. False when it cannot be looked at (tar reports why).
 */
export const isLinked: KeepName = (path, isDirectory) => {
  if (isDirectory) return false;
  try {
    return (lstatSync(path, { throwIfNoEntry: false })?.nlink ?? 1) > 1;
  } catch {
    return false;
  }
};

/** `a` + `/` + `b` as bytes. */
function join(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 1 && dir[0] === 0x2f
    ? Buffer.concat([dir, name])
    : Buffer.concat([dir, Buffer.from('/'), name]);
}

/** The name relative to `/` tar is given (`-C /`). */
function relative(path: Buffer): Buffer {
  return path.length === 1 ? Buffer.from('.') : path.subarray(1);
}

/** An absolute path without repeated or trailing slashes. */
function normalize(path: string): string {
  const clean = path.replace(/\/+/g, '/');
  return clean.length > 1 ? clean.replace(/\/$/, '') : clean;
}

/** The roots without duplicates and without those inside another root (tar would store them twice). */
function topLevel(roots: readonly Buffer[]): Buffer[] {
  const unique = [...new Map(roots.map((r) => [r.toString('hex'), r])).values()];
  const inside = (path: Buffer, dir: Buffer) =>
    path.length > dir.length &&
    path.subarray(0, dir.length).equals(dir) &&
    (dir.length === 1 || path[dir.length] === 0x2f);
  return unique.filter((path) => !unique.some((other) => inside(path, other)));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
