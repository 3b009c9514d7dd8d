/**
 * `restore --tables … --into-live`: chosen tables of a backup restored into the job's own (live)
 * database, in one transaction. The preflight checks everything before anything changes (the caller
 * then takes a safety backup of exactly those tables); the restore drops the live tables (never CASCADE)
 * and recreates them from the archive — with their data, owned sequences, defaults, identity, keys,
 * constraints, indexes, triggers, policies, privileges and comments, and their foreign keys to tables
 * that stay — then checks their row counts against the manifest and commits only if all of it worked.
 * The schemas, types, domains, functions and extensions the tables use are shared with the rest of the
 * database: they are not dropped or restored, the live database's are used. An object outside the chosen
 * tables that depends on one of them (another table's foreign key, a view, an inheriting table) makes
 * the preflight refuse, naming it: nothing outside the chosen tables is ever dropped or changed.
 */
import { rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type pg from 'pg';
import { spawnTool, toolVersion } from '#agent/pipeline/child';
import { settleAll } from '#agent/pipeline/flow';
import { RestoreError, SourceError } from '#core/errors';
import type { PostgresDetails } from '#core/sources/index';
import { resolvePassword, type SourceContext } from '../context';
import {
  connectionArgs,
  connectPostgres,
  describeTarget,
  locatePostgresTools,
  messageOf,
  type PostgresTarget,
  serverMajorOf,
  toolEnv,
} from './connect';
import {
  dbnameConninfo,
  parseTableSelector,
  quoteIdent,
  quoteLiteral,
  selectTables,
  type TableSelector,
} from './names';
import { chooseEntries, feed } from './restore';
import { checkFreeSpace } from './space';
import { ABOUT, PREAMBLE, parseTocList, peekToc, SUPPORT_ONLY, type TocEntry, tocScratchDir } from './toc';

/** The live database and what a restore into it needs. */
export type LiveTablesConfig = PostgresTarget & { database: string; noOwner?: boolean };

/** Options of {@link preflightLiveTables} and {@link restoreLiveTables}. */
export interface LiveTablesOptions {
  /** The tables asked for, `schema.table` or `table` (= `public.table`). */
  tables: readonly string[];
  /** The manifest's details of the backup to restore. */
  details?: PostgresDetails;
  ctx: SourceContext;
}

/** How long the restore waits for a lock on a live table before it gives up (and changes nothing). */
export const LOCK_TIMEOUT = '30s';

/** A live table the restore replaces. */
interface LiveTable {
  oid: string;
  schema: string;
  name: string;
  owner: string;
  /** The restoring role may drop it (a member of its owner, with its privileges). */
  mayDrop: boolean;
  /** The restoring role may give it back its owner (member of the owner). */
  mayOwn: boolean;
  bytes: string;
}

/**
 * Checks, before anything changes: each table is in the backup; each schema exists in the live database
 * and the role may create in it; the role may drop every live table it replaces (a member of its owner)
 * and, unless `noOwner`, give it its owner again; no object outside the chosen tables (and their
 * partitions) depends on them; the data directory has the space for the restored copy (the backup's share
 * of the database for those tables, or their live size if larger), since the old rows stay until commit.
 * @returns the live tables the restore replaces, partitions included, as quoted `"schema"."table"`:
 *   what the safety backup holds (empty when none of them exists in the live database).
 * @throws RestoreError naming every problem found ("nothing was changed"); PlanError for a malformed name.
 */
export async function preflightLiveTables(
  config: LiveTablesConfig,
  options: LiveTablesOptions,
): Promise<{ tables: string[] }> {
  const { details, ctx } = options;
  const selectors = options.tables.map(parseTableSelector);
  const where = describeTarget(config, config.database);
  const problems: string[] = [];
  if (details && (details.tables.length > 0 || (details.partitionedTables ?? []).length > 0)) {
    const known = [...details.tables, ...(details.partitionedTables ?? [])];
    const missing = selectors.filter((s) => !known.some((t) => t.schema === s.schema && t.name === s.name));
    if (missing.length > 0) {
      problems.push(
        `table ${missing.map(labelOf).join(', ')} ${missing.length === 1 ? 'is' : 'are'} not in the backup`,
      );
    }
  }
  const client = await connectPostgres(config, config.database, await resolvePassword(config, ctx), ctx);
  try {
    const schemas = [...new Set(selectors.map((s) => s.schema))];
    const { rows: schemaRows } = await client.query<{ schema: string; ok: boolean | null }>(
      `SELECT w.schema, pg_catalog.has_schema_privilege(n.oid, 'CREATE') AS ok
         FROM unnest($1::text[]) AS w(schema) LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema`,
      [schemas],
    );
    const me = await currentRole(client);
    for (const row of schemaRows) {
      if (row.ok === null) problems.push(`schema ${row.schema} does not exist in ${config.database}`);
      else if (!row.ok) {
        problems.push(
          `${me} may not create tables in schema ${row.schema} (GRANT CREATE ON SCHEMA ${quoteIdent(row.schema)} TO ${quoteIdent(me)})`,
        );
      }
    }
    const live = await liveTablesOf(client, selectors);
    for (const t of live) {
      if (!t.mayDrop) {
        problems.push(
          `${me} cannot drop ${t.schema}.${t.name} (owned by ${t.owner}): it is not a member of ${t.owner} (GRANT ${quoteIdent(t.owner)} TO ${quoteIdent(me)})`,
        );
      } else if (!config.noOwner && !t.mayOwn) {
        problems.push(`${me} cannot set the owner ${t.owner} of ${t.schema}.${t.name}`);
      }
    }
    problems.push(...(await dependentsOutside(client, live)));
    try {
      const note = await checkFreeSpace(
        client,
        config,
        neededBytes(live, details, selectors),
        `the restored tables in ${config.database}`,
        'the tables were about',
      );
      if (note) ctx.log?.(note);
    } catch (error) {
      if (!(error instanceof RestoreError)) throw error;
      problems.push(error.message.replace(/; nothing was changed$/, ''));
    }
    if (problems.length > 0) {
      throw new RestoreError(
        `cannot restore ${selectors.map(labelOf).join(', ')} into ${where}; nothing was changed: ${problems.join('; ')}`,
      );
    }
    return { tables: live.map((t) => `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`) };
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Replaces the chosen tables of the live database with the backup's, reading the archive from `input`
 * (no temp file): the archive's TOC is filtered to the tables and what is theirs (see file comment),
 * `pg_restore -f -` turns it into SQL, and psql runs `BEGIN; DROP TABLE …; <that SQL>; <row-count check>;
 * COMMIT` with ON_ERROR_STOP. COMMIT is sent only after pg_restore exited cleanly and the whole archive
 * was read: a failure anywhere — pg_restore or psql killed, a constraint or trigger failing, a row
 * count differing from the manifest, a lock not granted within {@link LOCK_TIMEOUT}, the input failing
 * its authentication — ends the session without COMMIT, so PostgreSQL rolls it all back and the live
 * tables are as they were. `input` is destroyed with the error so the stages feeding it stop too.
 * @throws RestoreError naming what failed ("the live tables were left as they were"); the input's own
 *   error when the input fails.
 */
export async function restoreLiveTables(
  config: LiveTablesConfig,
  input: Readable,
  options: LiveTablesOptions,
): Promise<void> {
  const { details, ctx } = options;
  const selectors = options.tables.map(parseTableSelector);
  const where = describeTarget(config, config.database);
  const owners = !config.noOwner;
  const password = await resolvePassword(config, ctx);
  let listFile: string | undefined;
  try {
    const client = await connectPostgres(config, config.database, password, ctx);
    let tools: ReturnType<typeof locatePostgresTools>;
    try {
      tools = locatePostgresTools(config.binDir, await serverMajorOf(client));
      await toolVersion(tools.pgRestore);
      await toolVersion(tools.psql);
    } finally {
      await client.end().catch(() => {});
    }
    const env = toolEnv(ctx.env, password);
    const signal = ctx.signal ?? new AbortController().signal;
    const { list, replay } = await peekToc(tools.pgRestore, input, { env, signal });
    const all = parseTocList(list);
    const entries = liveEntries(all, chooseEntries(all, selectors, details?.roles ?? []));
    const relations = entries.filter((e) => e.desc === 'TABLE');
    if (owners) await checkArchiveOwners(config, password, relations, ctx, where);
    const dir = await tocScratchDir();
    listFile = join(dir, 'live.list');
    await writeFile(listFile, `${entries.map((e) => e.line).join('\n')}\n`, { mode: 0o600 });
    const expected =
      details && details.tables.length > 0
        ? selectTables(details.tables, options.tables, details.partitionedTables)
        : [];
    const prefix = [
      'BEGIN;',
      `SET LOCAL lock_timeout = ${quoteLiteral(LOCK_TIMEOUT)};`,
      `DROP TABLE IF EXISTS ${relations.map((e) => tableOfTag(e.tag)).join(', ')};`,
      '',
    ].join('\n');
    const suffix = `\n${rowCountCheck(expected)}COMMIT;\n`;
    await runScript(tools, config, replay, listFile, owners, { prefix, suffix, env }, ctx, where);
  } catch (error) {
    if (!input.destroyed) {
      input.on('error', () => {});
      input.destroy(error instanceof Error ? error : new Error(String(error)));
    }
    throw error;
  } finally {
    if (listFile) await rm(dirname(listFile), { recursive: true, force: true });
  }
}

/** pg_restore (archive → SQL) into psql (SQL → the live database), prefix and suffix around the SQL. */
async function runScript(
  tools: { pgRestore: string; psql: string },
  config: LiveTablesConfig,
  archive: Readable,
  listFile: string,
  owners: boolean,
  script: { prefix: string; suffix: string; env: Record<string, string | undefined> },
  ctx: SourceContext,
  where: string,
): Promise<void> {
  const controller = new AbortController();
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, controller.signal]) : controller.signal;
  const restore = spawnTool(
    tools.pgRestore,
    [...(owners ? [] : ['--no-owner']), '--exit-on-error', '-L', listFile, '-f', '-'],
    { env: script.env, signal, name: 'pg_restore' },
  );
  const psql = spawnTool(
    tools.psql,
    ['-X', '-q', '-v', 'ON_ERROR_STOP=1', ...connectionArgs(config), '-d', dbnameConninfo(config.database)],
    { env: script.env, signal, stdout: 'ignore', name: 'psql' },
  );
  const failed = (what: string) => (error: unknown) => {
    throw new RestoreError(
      `${what} into ${where} failed; the live tables were left as they were: ${messageOf(error)}`,
      { cause: error },
    );
  };
  const restored = restore.done.catch(failed('pg_restore'));
  const applied = psql.done.catch(failed('the restore'));
  const fed = restore.stdin
    ? feed(archive, restore.stdin, signal, restored)
    : Promise.reject(new SourceError('pg_restore has no stdin'));
  const piped = pipeScript(restore.stdout, psql.stdin, restored, script, signal);
  await settleAll([restored, applied, fed, piped], controller);
}

/**
 * Writes the prefix, pg_restore's SQL and — only once pg_restore exited cleanly — the suffix (the check
 * and COMMIT) into psql, then ends its input. On abort it stops writing and leaves psql's input open:
 * psql is killed by the same signal, and never sees an end of input that could look like a finished
 * script (it would not COMMIT anyway: COMMIT is only in the suffix).
 */
async function pipeScript(
  sql: Readable | null,
  stdin: Writable | null,
  restored: Promise<void>,
  script: { prefix: string; suffix: string },
  signal: AbortSignal,
): Promise<void> {
  if (!sql || !stdin) throw new SourceError('pg_restore or psql has no pipe');
  stdin.on('error', () => {}); // psql gone: its exit status says why
  const write = async (chunk: string | Buffer) => {
    signal.throwIfAborted();
    if (stdin.destroyed) throw new RestoreError('psql stopped reading the restore');
    if (!stdin.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          stdin.off('drain', done).off('close', done);
          signal.removeEventListener('abort', stop);
          resolve();
        };
        const stop = () => reject(signal.reason);
        stdin.once('drain', done).once('close', done);
        signal.addEventListener('abort', stop, { once: true });
      });
    }
  };
  await write(script.prefix);
  for await (const chunk of sql) await write(chunk as Buffer);
  await restored;
  await write(script.suffix);
  stdin.end();
}

/**
 * The entries a restore into the live database runs: of the selection (restore.ts chooseEntries), what
 * belongs to the chosen tables — the tables, their data, sequences they own (a SEQUENCE OWNED BY one of
 * them, or an identity), keys, constraints, indexes, triggers, rules, policies, publication memberships,
 * ACLs and comments — plus their foreign keys to tables that stay (those exist live; the selection
 * leaves them out). Left out: the shared objects the tables use (schemas, types, domains, functions,
 * extensions, collations, other sequences) and what is only about them.
 */
export function liveEntries(all: readonly TocEntry[], selected: readonly TocEntry[]): TocEntry[] {
  const core = new Set(selected.filter((e) => e.desc === 'TABLE').map((e) => e.id));
  const kept = new Set<number>();
  const ownedSequences = new Set<number>();
  for (const e of selected) {
    if (e.desc === 'SEQUENCE OWNED BY' && e.deps.some((d) => core.has(d))) {
      for (const d of e.deps) ownedSequences.add(d);
    }
  }
  // Sequences neither owned by a chosen table nor its identity are shared: the live one is used as it is.
  const sharedSequences = new Set(
    selected
      .filter((e) => e.desc === 'SEQUENCE' && !ownedSequences.has(e.id) && !e.deps.some((d) => core.has(d)))
      .map((e) => e.id),
  );
  for (const e of selected) {
    if (SHARED.has(e.desc) || ABOUT.has(e.desc) || sharedSequences.has(e.id)) continue;
    if (SEQUENCE_STATE.has(e.desc) && e.deps.some((d) => sharedSequences.has(d))) continue;
    kept.add(e.id);
  }
  for (const e of all) {
    if (e.desc === 'FK CONSTRAINT' && !kept.has(e.id) && e.deps.some((d) => core.has(d))) kept.add(e.id);
  }
  for (const e of all) {
    if (ABOUT.has(e.desc) && e.deps.length > 0 && e.deps.every((d) => kept.has(d))) kept.add(e.id);
  }
  return all.filter((e) => kept.has(e.id) || PREAMBLE.has(e.desc));
}

/** Shared objects a table uses: the live database's are kept and used, never dropped or restored. */
const SHARED = new Set([...SUPPORT_ONLY, 'PUBLICATION', 'DATABASE']);
/** A sequence's value and ownership: left to the live database for a shared sequence. */
const SEQUENCE_STATE = new Set(['SEQUENCE SET', 'SEQUENCE OWNED BY']);

/** `"schema"."table"` of a TABLE entry's tag (`schema name owner`). */
function tableOfTag(tag: string): string {
  const [schema = '', ...rest] = tag.split(' ');
  const name = rest.length > 1 ? rest.slice(0, -1).join(' ') : rest.join(' ');
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/** The owner at the end of a TABLE entry's tag. */
function ownerOfTag(tag: string): string {
  return tag.split(' ').at(-1) ?? '';
}

/**
 * A statement that raises (and so rolls the transaction back) when a restored table's row count
 * differs from the manifest's; empty when the manifest has no counts for them.
 */
function rowCountCheck(expected: readonly { schema: string; name: string; rows: number }[]): string {
  if (expected.length === 0) return '';
  const lines = expected.map(
    (t) =>
      `  SELECT count(*) INTO n FROM ${quoteIdent(t.schema)}.${quoteIdent(t.name)};\n` +
      `  IF n <> ${t.rows} THEN bad := bad || format(' %s has %s rows, the backup recorded %s;', ${quoteLiteral(`${t.schema}.${t.name}`)}, n, ${t.rows}); END IF;`,
  );
  return `DO $strongbox$ DECLARE n bigint; bad text := ''; BEGIN\n${lines.join('\n')}\n  IF bad <> '' THEN RAISE EXCEPTION 'strongbox: row counts differ from the backup:%', bad; END IF;\nEND $strongbox$;\n`;
}

/**
 * Before any SQL runs: the restoring role may give each restored table its owner from the archive (a
 * member of it; the role exists).
 * @throws RestoreError naming the owners it cannot set.
 */
async function checkArchiveOwners(
  config: LiveTablesConfig,
  password: string | undefined,
  relations: readonly TocEntry[],
  ctx: SourceContext,
  where: string,
): Promise<void> {
  const owners = [...new Set(relations.map((e) => ownerOfTag(e.tag)).filter(Boolean))];
  if (owners.length === 0) return;
  const client = await connectPostgres(config, config.database, password, ctx);
  try {
    const { rows } = await client.query<{ owner: string; exists: boolean; ok: boolean | null }>(
      `SELECT w.owner, r.oid IS NOT NULL AS exists,
              CASE WHEN r.oid IS NULL THEN NULL ELSE pg_catalog.pg_has_role(r.oid, 'MEMBER') END AS ok
         FROM unnest($1::text[]) AS w(owner) LEFT JOIN pg_catalog.pg_roles r ON r.rolname = w.owner`,
      [owners],
    );
    const me = await currentRole(client);
    const problems = rows.flatMap((r) =>
      !r.exists
        ? [`role ${r.owner} (owner in the backup) does not exist`]
        : r.ok
          ? []
          : [
              `${me} cannot set the owner ${r.owner}: it is not a member (GRANT ${quoteIdent(r.owner)} TO ${quoteIdent(me)})`,
            ],
    );
    if (problems.length > 0) {
      throw new RestoreError(`cannot restore into ${where}; nothing was changed: ${problems.join('; ')}`);
    }
  } finally {
    await client.end().catch(() => {});
  }
}

async function currentRole(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ me: string }>('SELECT current_user AS me');
  return rows[0]?.me ?? '?';
}

/** The chosen tables that exist live, with their partitions and inheriting tables (any level). */
async function liveTablesOf(client: pg.Client, selectors: readonly TableSelector[]): Promise<LiveTable[]> {
  const { rows } = await client.query<LiveTable>(
    `WITH RECURSIVE chosen AS (
       SELECT c.oid FROM unnest($1::text[], $2::text[]) AS w(schema, name)
         JOIN pg_catalog.pg_namespace n ON n.nspname = w.schema
         JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = w.name AND c.relkind IN ('r', 'p')
       UNION
       SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN chosen ON i.inhparent = chosen.oid)
     SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS name,
            pg_catalog.pg_get_userbyid(c.relowner) AS owner,
            pg_catalog.pg_has_role(c.relowner, 'USAGE') AS "mayDrop",
            pg_catalog.pg_has_role(c.relowner, 'MEMBER') AS "mayOwn",
            pg_catalog.pg_total_relation_size(c.oid)::text AS bytes
       FROM chosen JOIN pg_catalog.pg_class c ON c.oid = chosen.oid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      ORDER BY 2, 3`,
    [selectors.map((s) => s.schema), selectors.map((s) => s.name)],
  );
  return rows;
}

/**
 * What outside the chosen tables depends on them or on the sequences they own — another table's
 * foreign key, a view, a column default using their sequence: DROP TABLE without CASCADE would fail on
 * it, and with CASCADE drop it. One line each, naming the object and what to do.
 */
async function dependentsOutside(client: pg.Client, live: readonly LiveTable[]): Promise<string[]> {
  if (live.length === 0) return [];
  const { rows } = await client.query<{ what: string; on: string }>(
    `WITH tables AS (SELECT unnest($1::oid[]) AS oid),
     mine AS (
       SELECT oid FROM tables
       UNION SELECT d.objid FROM pg_catalog.pg_depend d JOIN tables t ON d.refobjid = t.oid
        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
          AND d.deptype IN ('a', 'i'))
     SELECT DISTINCT
            CASE d.classid
              WHEN 'pg_catalog.pg_constraint'::regclass THEN
                (SELECT 'foreign key ' || quote_ident(co.conname) || ' of table ' || co.conrelid::regclass::text
                   FROM pg_catalog.pg_constraint co WHERE co.oid = d.objid)
              WHEN 'pg_catalog.pg_rewrite'::regclass THEN
                (SELECT 'view ' || r.ev_class::regclass::text FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid)
              ELSE pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
            END AS what,
            d.refobjid::regclass::text AS on
       FROM pg_catalog.pg_depend d
      WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid IN (SELECT oid FROM mine)
        AND d.deptype = 'n'
        AND NOT (d.classid = 'pg_catalog.pg_class'::regclass AND d.objid IN (SELECT oid FROM mine))
        AND NOT (d.classid = 'pg_catalog.pg_constraint'::regclass AND EXISTS (
              SELECT 1 FROM pg_catalog.pg_constraint co WHERE co.oid = d.objid AND co.conrelid IN (SELECT oid FROM mine)))
        AND NOT (d.classid = 'pg_catalog.pg_rewrite'::regclass AND EXISTS (
              SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.oid = d.objid AND r.ev_class IN (SELECT oid FROM mine)))
        AND NOT (d.classid = 'pg_catalog.pg_trigger'::regclass AND EXISTS (
              SELECT 1 FROM pg_catalog.pg_trigger tg WHERE tg.oid = d.objid AND tg.tgrelid IN (SELECT oid FROM mine)))
        AND NOT (d.classid = 'pg_catalog.pg_attrdef'::regclass AND EXISTS (
              SELECT 1 FROM pg_catalog.pg_attrdef ad WHERE ad.oid = d.objid AND ad.adrelid IN (SELECT oid FROM mine)))
        AND NOT (d.classid = 'pg_catalog.pg_policy'::regclass AND EXISTS (
              SELECT 1 FROM pg_catalog.pg_policy p WHERE p.oid = d.objid AND p.polrelid IN (SELECT oid FROM mine)))
      ORDER BY 1, 2`,
    [live.map((t) => t.oid)],
  );
  return rows.map(
    (r) =>
      `${r.what} depends on ${r.on}, which would be dropped and recreated (restore it too with --tables, or drop it first; it is never dropped for you)`,
  );
}

/**
 * The space the restored copy needs while the old rows stay until commit: the backup's share of the
 * database for these tables (by rows), or their live size if larger.
 */
function neededBytes(
  live: readonly LiveTable[],
  details: PostgresDetails | undefined,
  selectors: readonly TableSelector[],
): number | undefined {
  const liveBytes = live.reduce((sum, t) => sum + Number(t.bytes), 0);
  if (!details || details.tables.length === 0) return liveBytes || undefined;
  const total = details.tables.reduce((sum, t) => sum + t.rows, 0);
  let chosen = 0;
  try {
    chosen = selectTables(
      details.tables,
      selectors.map((s) => `${quoteIdent(s.schema)}.${quoteIdent(s.name)}`),
      details.partitionedTables,
    ).reduce((sum, t) => sum + t.rows, 0);
  } catch {
    // A table not in the backup: reported by the caller.
  }
  const share = total > 0 ? Math.ceil((details.databaseBytes * chosen) / total) : 0;
  return Math.max(liveBytes, share) || undefined;
}

function labelOf(s: TableSelector): string {
  return `${s.schema}.${s.name}`;
}
