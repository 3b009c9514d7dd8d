/**
 * Logical backup of one PostgreSQL database: `pg_dump -Fc -Z0` (custom format, uncompressed: compression
 * is a later stage, on another core) inside a snapshot the agent exports and holds. Row counts are read
 * from the archive itself as it streams by (./archive-rows), so they describe exactly the data in the
 * dump; what the archive cannot tell is counted with `count(*)` in the same snapshot.
 */
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { spawnTool, toolVersion } from '#agent/pipeline/child';
import { settleAll } from '#agent/pipeline/flow';
import { SourceError } from '#core/errors';
import type { BackupScope, SourceBackup, SourceObject } from '#core/ports';
import type { PostgresDetails, PostgresSourceConfig, TableCount } from '#core/sources/index';
import type { PartitionedTable } from '#core/sources/postgres';
import { resolvePassword, type SourceContext } from '../context';
import { DATA_OBJECT } from '../kit';
import { ArchiveRowCounter } from './archive-rows';
import {
  connectionArgs,
  connectPostgres,
  describeTarget,
  locatePostgresTools,
  messageOf,
  toolEnv,
} from './connect';
import {
  ROLE_PASSWORDS_OBJECT,
  readDatabaseState,
  readNeededRoles,
  readPasswordHashes,
  readTablespaces,
} from './globals';
import { dbnameConninfo, parseTableSelector, quoteIdent, tablePatternRegex } from './names';

/**
 * pg_dump's stdout buffer. pg_dump writes its archive through stdio, which buffers 4 KiB on a pipe: the
 * agent then took ~10 KiB per read, ~20,000 reads and trips through the stages for 200 MB. With 1 MiB
 * writes every read is a full 64 KiB (docs/adr/0010-backup-pipeline-overhead.md).
 */
const PG_DUMP_WRITE_BYTES = 1024 * 1024;

/** A relation of the database: schema, name and pg_class.relkind. */
interface Relation {
  schema: string;
  name: string;
  kind: string;
}

/**
 * Starts a backup of `config.database`: the object `data` (the pg_dump archive) and, with the plan's
 * `rolePasswords`, `role-passwords` (the needed roles' password hashes, JSON; stored encrypted like the
 * data, never in the manifest). Before it returns, it has connected, opened a REPEATABLE READ
 * transaction, exported its snapshot and started pg_dump on that snapshot (so connection and permission
 * problems throw here). The caller must consume the object's stream while awaiting `done`;
 * the rows of every dumped table (`config.rowCounts`) are counted in the archive's data blocks as they
 * pass, and the server version and database size read in the same snapshot. The connection stays open until
 * pg_dump has finished. `done` rejects with a SourceError when pg_dump fails, writes nothing, or a count
 * fails; the stream then errors too, so a failed dump can never pass for a complete one.
 * Memory: one chunk of pg_dump output in flight, plus the stream's buffer (16 KiB by default).
 * @example
 * const backup = await backupPostgres(job.source, { env: process.env });
 * for await (const object of backup.objects) await pipeline(object.stream, compress, encrypt, upload);
 * await backup.done;
 * With `scope.tables` only those tables are dumped and counted (pg_dump --table, exact names; a
 * partition is not implied by its parent: name each), and the details record them as `onlyTables`.
 * @throws SourceError when the database cannot be reached, pg_dump cannot start, or a table of
 *   `scope.tables` is not in the database.
 */
export async function backupPostgres(
  config: PostgresSourceConfig,
  ctx: SourceContext,
  scope: BackupScope = {},
): Promise<SourceBackup<PostgresDetails>> {
  const password = await resolvePassword(config, ctx);
  const client = await connectPostgres(config, config.database, password, ctx);
  const where = describeTarget(config, config.database);
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const { rows } = await client.query<{ snapshot: string; version: string; num: string; bytes: string }>(
      `SELECT pg_export_snapshot() AS snapshot, current_setting('server_version') AS version,
              current_setting('server_version_num') AS num, pg_database_size(current_database()) AS bytes`,
    );
    const facts = rows[0];
    if (!facts) throw new SourceError(`${where}: the server returned no snapshot`);
    const relations = await listRelations(client);
    const partitionedTables = await listPartitioned(client);
    const roles = await readNeededRoles(client);
    const databaseState = await readDatabaseState(client);
    const tablespaces = await readTablespaces(client);
    const passwords = config.rolePasswords ? await readPasswordHashes(client, roles, where) : undefined;
    const excluded = await matchExcluded(client, config.excludeTables);
    const only = scope.tables && onlyRelations(relations, scope.tables, where);
    const counted = relations.filter(
      (r) => r.kind === 'r' && !excluded.has(keyOf(r)) && (!only || only.has(keyOf(r))),
    );
    const tools = locatePostgresTools(config.binDir, Math.floor(Number(facts.num) / 10_000));
    const version = (await toolVersion(tools.pgDump)).replace(/^pg_dump \(PostgreSQL\)\s*/, '');

    const controller = new AbortController();
    const signal = ctx.signal ? AbortSignal.any([ctx.signal, controller.signal]) : controller.signal;
    const args = [
      '-Fc',
      '-Z0',
      `--snapshot=${facts.snapshot}`,
      ...connectionArgs(config),
      ...[...excluded.values()].flatMap((r) => ['-T', `${quoteIdent(r.schema)}.${quoteIdent(r.name)}`]),
      ...[...(only?.values() ?? [])].flatMap((r) => ['-t', `${quoteIdent(r.schema)}.${quoteIdent(r.name)}`]),
      '-d',
      dbnameConninfo(config.database),
    ];
    const dump = spawnTool(tools.pgDump, args, {
      env: toolEnv(ctx.env, password),
      signal,
      stdin: 'ignore',
      name: 'pg_dump',
      stdoutBufferBytes: PG_DUMP_WRITE_BYTES,
    });
    // A failed dump or count stops the other at once: pg_dump is killed, the counting connection closed.
    controller.signal.addEventListener('abort', () => void client.end().catch(() => {}), { once: true });
    // The stream ends only once pg_dump has exited 0 having written something: a consumer that sees a
    // clean end has a complete archive, and a failed dump errors the stream as well as `done`.
    const rowCounter = config.rowCounts ? new ArchiveRowCounter() : undefined;
    const counter = new ByteCounter(rowCounter, async (bytes) => {
      await dump.done;
      if (bytes === 0) throw new SourceError(`pg_dump wrote nothing for ${where}`);
    });
    const output = dump.stdout
      ? pipeline(dump.stdout, counter)
      : Promise.reject(new SourceError('pg_dump has no stdout'));
    const done = (async () => {
      try {
        await settleAll([dump.done, output], controller);
        const tables = rowCounter ? await countsOf(client, rowCounter, counted, where, ctx) : [];
        await client.query('COMMIT');
        const details: PostgresDetails = {
          kind: 'postgres',
          database: config.database,
          serverVersion: facts.version,
          databaseBytes: Number(facts.bytes),
          tables,
          excludedTables: [...config.excludeTables],
          ...(only ? { onlyTables: [...only.values()].map((r) => `${r.schema}.${r.name}`) } : {}),
          partitionedTables: only ? partitionedTables.filter((p) => only.has(keyOf(p))) : partitionedTables,
          roles,
          databaseState,
          tablespaces,
        };
        return { details, tools: { pg_dump: version } };
      } catch (error) {
        const failure =
          error instanceof SourceError
            ? error
            : new SourceError(`backup of ${where} failed: ${messageOf(error)}`, { cause: error });
        counter.destroy(failure);
        throw failure;
      } finally {
        await client.end().catch(() => {});
      }
    })();
    done.catch(() => {});
    return { objects: objectsOf(counter, passwords), done };
  } catch (error) {
    await client.end().catch(() => {});
    if (error instanceof SourceError) throw error;
    throw new SourceError(`backup of ${where} failed: ${messageOf(error)}`, { cause: error });
  }
}

/** The archive, then the password hashes when the plan asked for them. */
async function* objectsOf(archive: Readable, passwords: Buffer | undefined): AsyncGenerator<SourceObject> {
  yield { name: DATA_OBJECT, stream: archive };
  if (passwords) yield { name: ROLE_PASSWORDS_OBJECT, stream: Readable.from([passwords]) };
}

/** Every relation pg_dump would consider: tables, views, sequences, foreign tables, outside the catalogs. */
async function listRelations(client: pg.Client): Promise<Relation[]> {
  const { rows } = await client.query<Relation>(
    `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relpersistence <> 't'
        AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                           AND d.deptype = 'e')
      ORDER BY 1, 2`,
  );
  return rows;
}

/** Every partitioned table (any level) with its leaf partitions. */
async function listPartitioned(client: pg.Client): Promise<PartitionedTable[]> {
  const { rows } = await client.query<PartitionedTable>(
    `SELECT n.nspname AS schema, c.relname AS name,
            coalesce(json_agg(json_build_object('schema', ln.nspname, 'name', l.relname)
                              ORDER BY ln.nspname, l.relname) FILTER (WHERE l.oid IS NOT NULL), '[]') AS leaves
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN LATERAL pg_catalog.pg_partition_tree(c.oid::regclass) t ON t.isleaf
       LEFT JOIN pg_catalog.pg_class l ON l.oid = t.relid
       LEFT JOIN pg_catalog.pg_namespace ln ON ln.oid = l.relnamespace
      WHERE c.relkind = 'p' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
      GROUP BY n.nspname, c.relname ORDER BY 1, 2`,
  );
  return rows;
}

/**
 * The relations the `excludeTables` patterns match, resolved once in the snapshot. pg_dump then gets
 * each as an exact quoted name, so the dump and the row counts leave out exactly the same tables.
 */
async function matchExcluded(client: pg.Client, patterns: readonly string[]): Promise<Map<string, Relation>> {
  const excluded = new Map<string, Relation>();
  for (const pattern of patterns) {
    const re = tablePatternRegex(pattern);
    const { rows } = await client.query<Relation>(
      `SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relname ~ $1
          AND ($2::text IS NULL OR n.nspname ~ $2)`,
      [re.name, re.schema ?? null],
    );
    for (const row of rows) excluded.set(keyOf(row), row);
  }
  return excluded;
}

/**
 * The tables of `names` (exact `schema.table`) among the database's relations.
 * @throws SourceError naming each one the database does not have.
 */
function onlyRelations(
  relations: readonly Relation[],
  names: readonly string[],
  where: string,
): Map<string, Relation> {
  const only = new Map<string, Relation>();
  const missing: string[] = [];
  for (const name of names) {
    const wanted = parseTableSelector(name);
    const found = relations.find(
      (r) => (r.kind === 'r' || r.kind === 'p') && r.schema === wanted.schema && r.name === wanted.name,
    );
    if (found) only.set(keyOf(found), found);
    else missing.push(`${wanted.schema}.${wanted.name}`);
  }
  if (missing.length > 0) throw new SourceError(`${where} has no table ${missing.join(', ')}`);
  return only;
}

/**
 * The row count of every table in `tables`, from the archive as it streamed by (`rows`), so no second
 * backend reads every table again. Taken with `count(*)` in the dump's snapshot (still held) instead:
 * every table when the archive was not understood (the reason is logged), and the tables with
 * inheritance children, whose `count(*)` — what a restore's check compares with — includes the
 * children's rows while their data block holds only their own.
 */
async function countsOf(
  client: pg.Client,
  rows: ArchiveRowCounter,
  tables: readonly Relation[],
  where: string,
  ctx: SourceContext,
): Promise<TableCount[]> {
  let fromArchive: Map<string, number>;
  try {
    fromArchive = rows.counts();
  } catch (error) {
    ctx.log?.(
      `row counts of ${where} are taken with count(*): the archive could not be read (${messageOf(error)})`,
    );
    return countRows(client, tables, where);
  }
  const parents = await listInheritanceParents(client);
  const bySql = tables.filter((t) => parents.has(keyOf(t)) || !fromArchive.has(keyOf(t)));
  const sql = new Map((await countRows(client, bySql, where)).map((c) => [keyOf(c), c.rows]));
  return tables.map((t) => ({
    schema: t.schema,
    name: t.name,
    rows: sql.get(keyOf(t)) ?? (fromArchive.get(keyOf(t)) as number),
  }));
}

/** Ordinary tables with inheritance children (not partitioned tables: those have no rows of their own). */
async function listInheritanceParents(client: pg.Client): Promise<Set<string>> {
  const { rows } = await client.query<Relation>(
    `SELECT DISTINCT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind
       FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhparent
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r'`,
  );
  return new Set(rows.map(keyOf));
}

/** Exact `count(*)` of each table, one after the other, on the connection that holds the snapshot. */
async function countRows(
  client: pg.Client,
  tables: readonly Relation[],
  where: string,
): Promise<TableCount[]> {
  const counts: TableCount[] = [];
  for (const table of tables) {
    try {
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${quoteIdent(table.schema)}.${quoteIdent(table.name)}`,
      );
      counts.push({ schema: table.schema, name: table.name, rows: Number(rows[0]?.n ?? 0) });
    } catch (error) {
      throw new SourceError(
        `cannot count rows of ${table.schema}.${table.name} in ${where}: ${messageOf(error)}`,
        {
          cause: error,
        },
      );
    }
  }
  return counts;
}

function keyOf(relation: Pick<Relation, 'schema' | 'name'>): string {
  return JSON.stringify([relation.schema, relation.name]);
}

/**
 * Passes bytes through, counting them and (given a row counter) the rows of the archive; ends only when
 * `verdict` (given the byte count) resolves.
 */
class ByteCounter extends Transform {
  bytes = 0;
  readonly #rows: ArchiveRowCounter | undefined;
  readonly #verdict: (bytes: number) => Promise<void>;

  constructor(rows: ArchiveRowCounter | undefined, verdict: (bytes: number) => Promise<void>) {
    super();
    this.#rows = rows;
    this.#verdict = verdict;
  }

  override _flush(callback: TransformCallback): void {
    this.#rows?.end();
    this.#verdict(this.bytes).then(
      () => callback(),
      (error: unknown) => callback(error as Error),
    );
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.#rows?.write(chunk);
    callback(null, chunk);
  }
}
