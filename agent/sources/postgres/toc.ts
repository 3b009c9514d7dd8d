/**
 * Selective restores from a pg_dump custom-format archive read from a stream: the archive's table of
 * contents (`pg_restore -l -v`, entries with their dependencies) is read from the head of the stream —
 * the bytes it took are kept and replayed, so only the TOC is ever held in memory — and filtered to the
 * chosen tables plus what makes them usable, for `pg_restore -L`.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { processRuns, spawnTool } from '#agent/pipeline/child';
import { RestoreError } from '#core/errors';

/** One entry of `pg_restore -l -v`. */
export interface TocEntry {
  id: number;
  /** pg_class oid of the catalog the object is in (1259 = pg_class) and the object's oid. */
  catalog: number;
  oid: number;
  /** Entry type: `TABLE`, `TABLE DATA`, `FK CONSTRAINT`, … */
  desc: string;
  /** What follows the type: schema, name and owner, space-separated as pg_restore prints them. */
  tag: string;
  deps: number[];
  /** The line as listed. */
  line: string;
}

/** Largest write to `pg_restore -l`: bounds how much data past the TOC {@link peekToc}'s `head` holds. */
const SLICE_BYTES = 16 * 1024;

/** Entry types pg_restore lists, longest first so `TABLE DATA` is not read as `TABLE`. */
const DESCS = [
  'MATERIALIZED VIEW DATA',
  'SEQUENCE OWNED BY',
  'MATERIALIZED VIEW',
  'PUBLICATION TABLES IN SCHEMA',
  'PUBLICATION TABLE',
  'CHECK CONSTRAINT',
  'SECURITY LABEL',
  'FK CONSTRAINT',
  'FOREIGN TABLE',
  'EVENT TRIGGER',
  'INDEX ATTACH',
  'ROW SECURITY',
  'SEQUENCE SET',
  'TABLE ATTACH',
  'DEFAULT ACL',
  'LARGE OBJECT',
  'TABLE DATA',
];

/** Relations: never pulled in as something a chosen table needs (a view over another table, a foreign key's target). */
const RELATIONS = new Set(['TABLE', 'VIEW', 'MATERIALIZED VIEW', 'FOREIGN TABLE']);
/** What a chosen table may need but which does not make its dependents part of the selection. */
export const SUPPORT_ONLY = new Set([
  'SCHEMA',
  'EXTENSION',
  'TYPE',
  'DOMAIN',
  'FUNCTION',
  'PROCEDURE',
  'AGGREGATE',
  'COLLATION',
]);
/** Session settings every restore needs. */
export const PREAMBLE = new Set(['ENCODING', 'STDSTRINGS', 'SEARCHPATH']);
/** Entries about another entry, kept when everything they are about is kept. */
export const ABOUT = new Set(['ACL', 'COMMENT', 'SECURITY LABEL']);

/** Parses `pg_restore -l -v` output. */
export function parseTocList(list: string): TocEntry[] {
  const entries: TocEntry[] = [];
  for (const line of list.split('\n')) {
    const dep = /^;\s+depends on:((?: \d+)*)\s*$/.exec(line);
    if (dep) {
      const last = entries.at(-1);
      if (last) last.deps.push(...(dep[1] ?? '').trim().split(/\s+/).filter(Boolean).map(Number));
      continue;
    }
    const m = /^(\d+); (\d+) (\d+) (.*)$/.exec(line);
    if (!m) continue;
    const rest = m[4] as string;
    const desc = DESCS.find((d) => rest.startsWith(`${d} `)) ?? rest.split(' ')[0] ?? '';
    entries.push({
      id: Number(m[1]),
      catalog: Number(m[2]),
      oid: Number(m[3]),
      desc,
      tag: rest.slice(desc.length + 1),
      deps: [],
      line,
    });
  }
  return entries;
}

/**
 * The entries a restore of the `roots` (TABLE entries) needs, in archive order: the tables and their
 * partitions (a partitioned table comes with every partition), what they depend on (schemas, types such
 * as enums, functions, sequences), and what depends on them and on nothing outside the selection (data,
 * defaults, identity and owned sequences and their values, primary keys, constraints, indexes,
 * triggers, rules, policies, row security, ACLs and comments). Left out: anything that also needs a
 * relation not chosen — a foreign key to a table not restored, a view over other tables.
 */
export function selectEntries(entries: readonly TocEntry[], roots: readonly number[]): TocEntry[] {
  const byId = new Map(entries.map((e) => [e.id, e]));
  const included = new Set<number>();
  const core = new Set<number>(roots);
  // Partitions (and their partitions) depend on their parent's TABLE entry.
  for (let grew = true; grew; ) {
    grew = false;
    for (const e of entries) {
      if (e.desc === 'TABLE' && !core.has(e.id) && e.deps.some((d) => core.has(d))) {
        core.add(e.id);
        grew = true;
      }
    }
  }
  const upward = (id: number, into: Set<number>) => {
    const stack = [id];
    while (stack.length > 0) {
      const next = stack.pop() as number;
      if (into.has(next)) continue;
      into.add(next);
      for (const d of byId.get(next)?.deps ?? []) stack.push(d);
    }
  };
  const blocked = (ids: Set<number>) =>
    [...ids].some((id) => {
      const e = byId.get(id);
      return e !== undefined && RELATIONS.has(e.desc) && !core.has(id);
    });
  for (const id of core) upward(id, included);
  if (blocked(included)) {
    // A chosen table needs another relation (e.g. it inherits from one): bring that one too.
    for (const id of [...included]) if (RELATIONS.has(byId.get(id)?.desc ?? '')) core.add(id);
  }
  const anchors = (id: number) => included.has(id) && !SUPPORT_ONLY.has(byId.get(id)?.desc ?? '');
  for (let grew = true; grew; ) {
    grew = false;
    for (const e of entries) {
      if (included.has(e.id) || RELATIONS.has(e.desc) || e.desc === 'DATABASE') continue;
      const about = ABOUT.has(e.desc);
      if (about ? !e.deps.every((d) => included.has(d)) || e.deps.length === 0 : !e.deps.some(anchors)) {
        continue;
      }
      const needs = new Set<number>();
      upward(e.id, needs);
      if (blocked(needs)) continue;
      for (const id of needs) included.add(id);
      grew = true;
    }
  }
  return entries.filter((e) => included.has(e.id) || PREAMBLE.has(e.desc));
}

/**
 * Reads the archive's table of contents from the head of `input` with `pg_restore -l -v`, keeping every
 * byte it took; `replay` gives the whole archive again (those bytes, then the rest of `input`), and
 * `head` is what pg_restore had taken (the TOC and at most a pipe's worth of data, ~100 KiB, whatever
 * the input's chunk sizes): a readable archive of the TOC without the data, which is all pg_restore
 * needs for the pre-data and post-data sections (their SQL is in the TOC). Memory: the TOC plus what was
 * in flight when pg_restore had read it.
 * @throws RestoreError when pg_restore cannot read a TOC (not a custom-format archive); the input's own
 *   error when the input fails first.
 */
export async function peekToc(
  pgRestore: string,
  input: Readable,
  options: { env: Record<string, string | undefined>; signal: AbortSignal },
): Promise<{ list: string; head: Buffer; replay: Readable }> {
  // Failed before we got here (e.g. its first chunk failed authentication): it will emit nothing more.
  if (input.errored) throw input.errored;
  if (input.destroyed) throw new RestoreError('the archive stream closed before its end');
  const tool = spawnTool(pgRestore, ['-l', '-v'], {
    env: options.env,
    signal: options.signal,
    name: 'pg_restore',
  });
  const head: Buffer[] = [];
  const out: Buffer[] = [];
  tool.stdout?.on('data', (chunk: Buffer) => out.push(chunk));
  const stdin = tool.stdin;
  stdin?.on('error', () => {}); // pg_restore closes its input once it has the TOC (EPIPE)
  let ended = false;
  let inputError: unknown;
  // Fed in slices with backpressure, so what pg_restore had taken when it exited — the TOC and at most a
  // pipe's worth of data after it — is known (`written`), however large the input's chunks are.
  const pending: Buffer[] = [];
  let written = 0;
  const pump = () => {
    while (stdin && !stdin.destroyed && pending.length > 0) {
      const slice = pending.shift() as Buffer;
      written += slice.length;
      if (!stdin.write(slice)) {
        stdin.once('drain', pump);
        return;
      }
    }
    if (!stdin || stdin.destroyed) return; // pg_restore has its TOC: take no more
    if (ended) stdin.end();
    else input.resume();
  };
  const onData = (chunk: Buffer) => {
    head.push(chunk);
    for (let at = 0; at < chunk.length; at += SLICE_BYTES) pending.push(chunk.subarray(at, at + SLICE_BYTES));
    input.pause();
    pump();
  };
  const onEnd = () => {
    ended = true;
    if (pending.length === 0) stdin?.end();
  };
  const onError = (error: unknown) => {
    inputError = error;
    tool.stdin?.destroy();
  };
  // Destroyed without an error (a stage before it failed and tore the pipeline down): no end will come.
  const onClose = () => {
    if (!ended && inputError === undefined) {
      onError(input.errored ?? new RestoreError('the archive stream closed before its end'));
    }
  };
  input.on('data', onData).once('end', onEnd).once('error', onError).once('close', onClose);
  try {
    await tool.done;
  } catch (error) {
    if (inputError) throw inputError;
    throw new RestoreError(`cannot read the archive's table of contents: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    input.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    input.pause();
  }
  if (inputError) throw inputError;
  const headBytes = Buffer.concat(
    head,
    Math.min(
      written,
      head.reduce((n, c) => n + c.length, 0),
    ),
  );
  const replay = new PassThrough();
  // At once, not after the head is replayed: an input failing meanwhile must still fail the replay.
  input.once('error', (error) => replay.destroy(error));
  void (async () => {
    for (const chunk of head) if (!replay.write(chunk)) await new Promise((r) => replay.once('drain', r));
    if (ended) {
      replay.end();
      return;
    }
    input.pipe(replay);
    input.resume();
  })();
  return { list: Buffer.concat(out).toString('utf8'), head: headBytes, replay };
}

const SCRATCH_PREFIX = 'strongbox-toc-';
const SCRATCH_NAME = new RegExp(`^${SCRATCH_PREFIX}(\\d+)-`);

/**
 * A private directory in the temp dir for a restore's TOC files (`strongbox-toc-<pid>-XXXXXX`, mode
 * 0700); the restore removes it when it ends. What restores that were killed (`kill -9`, a power cut)
 * left — a directory whose pid no longer runs — is removed first: a TOC holds the schema (function
 * bodies, grants), which should not outlive the restore.
 */
export async function tocScratchDir(): Promise<string> {
  const parent = tmpdir();
  const names = await readdir(parent).catch(() => [] as string[]);
  for (const name of names) {
    const pid = SCRATCH_NAME.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || processRuns(Number(pid))) continue;
    await rm(join(parent, name), { recursive: true, force: true }).catch(() => {});
  }
  return mkdtemp(join(parent, `${SCRATCH_PREFIX}${process.pid}-`));
}
