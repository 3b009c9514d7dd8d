/**
 * Keeping up with a busy server: push-ahead for `wal-push` and prefetch for `wal-fetch`, over a private
 * spool beside the data directory, `<data dir>/pgsql_tmp_strongbox/` (pg_basebackup skips names that
 * start with `pgsql_tmp`, so the spool is never part of a base backup, and a scratch copy's spool goes
 * with its data directory). Both only apply when the path PostgreSQL passes is inside `pg_wal/`;
 * otherwise each call handles its one file.
 *
 * Push-ahead (the anchors' asynchronous archive-push): the archiver runs one archive_command per
 * segment, in order. `wal-push` for segment S also uploads the next segments that are ready
 * (`pg_wal/archive_status/<name>.ready`), all at once. Once S itself is durable the call waits for the
 * other uploads only a bounded time (as long again as S's own upload took, at least
 * {@link AHEAD_GRACE_MS}): a slow or hanging push-ahead upload never holds back S's answer.
 * Uploads still running then are aborted and awaited (the vault removes what they wrote: no partial
 * object, no marker), so nothing runs on after the call and each is left to its own call. Each
 * upload that the vault confirmed leaves a marker `push-<job>/<name>.done` (vault, key, SHA-256 of the
 * bytes sent). When PostgreSQL then asks for such a segment, it is acknowledged at once — without
 * downloading it again — if and only if the local file's SHA-256 equals the marker's and the vault
 * still has the object (a head request). The rule: **a segment is never acknowledged before the vault
 * confirmed it** — S's own upload is awaited, and a marker is written only after its upload resolved.
 *
 * Prefetch: `wal-fetch` for a segment not in the spool downloads it and the next segments of its
 * timeline (how many: `prefetch`; the segment size is the size of the file just fetched) concurrently;
 * the others land in `fetch-<job>/` under a temporary name and are renamed only once every chunk
 * authenticated, so the spool never holds a partial file under a segment's name. A later `wal-fetch`
 * for a spooled segment renames it into place at once. The end of the archive (a segment that is not
 * archived) empties the spool.
 * Memory: per concurrent file the stages' buffers (about two encryption chunks and zstd's pipes).
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline, type Readable, Transform } from 'node:stream';
import { pipeline as pipelinePromise } from 'node:stream/promises';
import type { VaultWalArchive } from '#agent/wal-archive';
import { DEFAULT_WAL_PARALLEL, SPOOL_DIR, spoolOf } from '#agent/wal-pusher-protocol';
import { describeError, NotFoundError } from '#core/errors';
import { parseSegment, segmentName, WAL_SEGMENT_NAME } from '#core/wal';

export { DEFAULT_WAL_PARALLEL, SPOOL_DIR, spoolOf };
/** The least time a `wal-push` whose own file is durable still waits for its push-ahead uploads. */
export const AHEAD_GRACE_MS = 2000;
/**
 * Reads of a WAL file (to push it, to check it against its marker) in 1 MiB chunks: 16 reads of a
 * 16 MiB segment instead of 256 at the stream default's 64 KiB; the check of a pushed-ahead segment,
 * which PostgreSQL's one call per segment waits for, takes half the time (29 -> 13 ms).
 */
const WAL_READ_BYTES = 1024 * 1024;

/** What a push marker records: the upload the vault confirmed. */
interface PushMarker {
  vault: string;
  key: string;
  sha256: string;
}

/** Options of {@link pushWithAhead}. */
export interface PushAheadOptions {
  job: string;
  /** Files uploaded at once, the one asked for included; 1 turns push-ahead off. */
  parallel: number;
  signal?: AbortSignal;
  log: (line: string) => void;
  /**
   * Least wait for push-ahead uploads once the file itself is durable (then as long again as its own
   * upload took). @default AHEAD_GRACE_MS
   */
  aheadGraceMs?: number;
}

/**
 * Archives the file at `path` (and pushes ahead the next ready segments); resolves once it is durably in
 * the vault — by this call's upload, or by an earlier push-ahead the vault still confirms.
 * @throws what the file's own push throws (VaultError on an outage, IntegrityError on a conflict); a
 *   failed push-ahead of another segment is logged and left to that segment's own call.
 */
export async function pushWithAhead(
  archive: VaultWalArchive,
  path: string,
  options: PushAheadOptions,
): Promise<'stored' | 'exists'> {
  const name = basename(path);
  archive.keyOf(name);
  const spool = spoolOf(path, options.job, 'push');
  if (spool && (await pushedAhead(archive, spool, name, path))) {
    await rm(markerPath(spool, name), { force: true });
    return 'exists';
  }
  const ahead =
    spool && options.parallel > 1 ? await readyAfter(path, name, options.parallel - 1, spool) : [];
  const controller = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
  const others = ahead.map(async (next) => {
    try {
      await pushOne(archive, join(dirname(path), next), spool, signal);
    } catch (error) {
      // Not this call's answer: PostgreSQL asks for that segment itself and then gets its own error.
      if (!signal.aborted)
        options.log(`push-ahead of ${next} failed (its own wal-push retries): ${describeError(error)}`);
    }
  });
  const started = Date.now();
  let result: 'stored' | 'exists';
  try {
    // The answer for `name` is its own upload's outcome; a marker for it is only a shortcut for a retry.
    result = await pushOne(archive, path, spool, options.signal);
  } catch (error) {
    controller.abort(error);
    await Promise.all(others);
    throw error;
  }
  // `name` is durable: the others get a bounded wait, then are stopped (no marker: their calls push them).
  const grace = Math.max(options.aheadGraceMs ?? AHEAD_GRACE_MS, Date.now() - started);
  const all = Promise.all(others);
  if (!(await settlesWithin(all, grace))) {
    options.log(
      `push-ahead still running ${(grace / 1000).toFixed(1)} s after ${name} was archived: stopped, each segment's own wal-push uploads it`,
    );
    controller.abort(new Error(`push-ahead stopped: ${name} is archived`));
    await all;
  }
  return result;
}

/** Whether `promise` (which never rejects) settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Pushes one file; once the vault confirmed it, leaves its marker in `spool` (when given): a marker is
 * written only after the vault's put resolved, never before.
 */
export async function pushOne(
  archive: VaultWalArchive,
  path: string,
  spool: string | undefined,
  signal: AbortSignal | undefined,
): Promise<'stored' | 'exists'> {
  const name = basename(path);
  let hash = createHash('sha256');
  const body = (): Readable => {
    hash = createHash('sha256');
    const through = hashing(hash);
    // A read error destroys the pass-through, so the push fails instead of waiting for ever.
    pipeline(createReadStream(path, { highWaterMark: WAL_READ_BYTES }), through, () => {});
    return through;
  };
  const result = await archive.push(name, body, { signal });
  if (spool) {
    const marker: PushMarker = {
      vault: archive.vaultUrl,
      key: archive.keyOf(name),
      sha256: hash.digest('hex'),
    };
    await mkdir(spool, { recursive: true, mode: 0o700 });
    const temp = `${markerPath(spool, name)}.tmp-${process.pid}`;
    await writeFile(temp, JSON.stringify(marker), { mode: 0o600 });
    await rename(temp, markerPath(spool, name));
  }
  return result;
}

/**
 * Whether an earlier push stored exactly this file and the vault still has it: the marker names this
 * vault and key, the local file's SHA-256 equals the marker's, and a head request finds the object now.
 */
export async function pushedAhead(
  archive: VaultWalArchive,
  spool: string,
  name: string,
  path: string,
): Promise<boolean> {
  const text = await readFile(markerPath(spool, name), 'utf8').catch(() => undefined);
  if (text === undefined) return false;
  let marker: PushMarker;
  try {
    marker = JSON.parse(text) as PushMarker;
  } catch {
    return false;
  }
  if (marker.vault !== archive.vaultUrl || marker.key !== archive.keyOf(name)) return false;
  // Durable means in the vault now, not "was uploaded once"; the head request overlaps the local read.
  const [sha256, stored] = await Promise.all([sha256Of(path), archive.has(name)]);
  return sha256 === marker.sha256 && stored;
}

/** Up to `count` segments after `name` that PostgreSQL marked ready and no marker covers yet. */
async function readyAfter(path: string, name: string, count: number, spool: string): Promise<string[]> {
  const status = await readdir(join(dirname(path), 'archive_status')).catch(() => [] as string[]);
  const done = new Set(await readdir(spool).catch(() => [] as string[]));
  return status
    .filter((entry) => entry.endsWith('.ready'))
    .map((entry) => entry.slice(0, -'.ready'.length))
    .filter((n) => WAL_SEGMENT_NAME.test(n) && n > name && !done.has(`${n}.done`))
    .sort()
    .slice(0, count);
}

/** Where the marker of a pushed file is in a push spool. */
export function markerPath(spool: string, name: string): string {
  return join(spool, `${name}.done`);
}

/** Options of {@link fetchWithPrefetch}. */
export interface PrefetchOptions {
  job: string;
  /** Files downloaded at once, the one asked for included; 1 turns prefetch off. */
  prefetch: number;
  signal?: AbortSignal;
  log: (line: string) => void;
}

/**
 * Restores archived WAL file `name` to `path`: from the spool when an earlier call prefetched it, else
 * from the vault, prefetching the segments after it. `path` is written under a temporary name and
 * renamed once every chunk authenticated.
 * @throws NotFoundError when it is not archived (the spool is emptied: recovery reached the end of the
 *   archive); IntegrityError when it fails authentication.
 */
export async function fetchWithPrefetch(
  archive: VaultWalArchive,
  name: string,
  path: string,
  options: PrefetchOptions,
): Promise<void> {
  const spool = WAL_SEGMENT_NAME.test(name) ? spoolOf(path, options.job, 'fetch') : undefined;
  if (!spool || options.prefetch <= 1) return fetchTo(archive, name, path, options.signal);
  const spooled = join(spool, name);
  if (await isFile(spooled)) {
    await rename(spooled, path);
    await removeSegments(spool, (entry) => entry < name);
    return;
  }
  // A miss: what the spool holds is not what recovery reads next.
  await removeSegments(spool, () => true);
  await mkdir(spool, { recursive: true, mode: 0o700 });
  const controller = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
  const prefetch = (segmentBytes: number) =>
    Promise.all(
      nextSegments(name, segmentBytes, options.prefetch - 1).map(async (segment) => {
        try {
          await fetchTo(archive, segment, join(spool, segment), signal);
        } catch (error) {
          // Not archived yet is the normal end; anything else is left to that segment's own call.
          if (!(error instanceof NotFoundError) && !signal.aborted)
            options.log(`prefetch of ${segment} failed (its own wal-fetch retries): ${describeError(error)}`);
        }
      }),
    );
  const sizeFile = join(spool, SEGMENT_BYTES_FILE);
  const known = Number((await readFile(sizeFile, 'utf8').catch(() => '')).trim()) || undefined;
  const early = known ? prefetch(known) : undefined;
  try {
    await fetchTo(archive, name, path, options.signal);
  } catch (error) {
    controller.abort(error);
    await early;
    if (error instanceof NotFoundError) await rm(spool, { recursive: true, force: true });
    throw error;
  }
  if (early) return void (await early);
  // The first fetch tells the segment size: every segment file has it.
  const segmentBytes = (await stat(path)).size;
  await writeFile(sizeFile, String(segmentBytes), { mode: 0o600 });
  await prefetch(segmentBytes);
}

/** The file in a fetch spool that records the segment size learnt from the first fetch. */
const SEGMENT_BYTES_FILE = 'segment-bytes';

/** Downloads one file to `path` via `.<name>.strongbox-partial` beside it: complete and authenticated, or absent. */
export async function fetchTo(
  archive: VaultWalArchive,
  name: string,
  path: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const stream = await archive.fetch(name, { signal });
  const temp = join(dirname(path), `.${basename(path)}.strongbox-partial`);
  try {
    await pipelinePromise(stream, createWriteStream(temp, { mode: 0o600 }));
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * The `count` segments after `name` on its timeline, for segments of `segmentBytes` (a power of two
 * from 1 MiB to 1 GiB, else none).
 * @example nextSegments('0000000100000000000000FF', 16 * 1024 * 1024, 1) // ['000000010000000100000000']
 */
export function nextSegments(name: string, segmentBytes: number, count: number): string[] {
  const valid =
    segmentBytes >= 2 ** 20 && segmentBytes <= 2 ** 30 && (segmentBytes & (segmentBytes - 1)) === 0;
  if (!valid || !WAL_SEGMENT_NAME.test(name)) return [];
  const { timeline, number } = parseSegment(name, segmentBytes);
  const perLog = 0x1_0000_0000 / segmentBytes;
  return Array.from({ length: count }, (_, i) => segmentName(timeline, number + i + 1, perLog));
}

/** Removes the spooled segments (and leftover partial downloads) that `which` picks. */
async function removeSegments(spool: string, which: (segment: string) => boolean): Promise<void> {
  for (const entry of await readdir(spool).catch(() => [] as string[])) {
    const segment = /^\.?([0-9A-F]{24})(?:\.strongbox-partial)?$/.exec(entry)?.[1];
    if (segment && which(segment)) await rm(join(spool, entry), { force: true });
  }
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: WAL_READ_BYTES }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A pass-through that feeds every chunk to `hash`. */
function hashing(hash: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
}
