/**
 * Restore of a pg_dump custom-format archive into a new database, whole or selected tables, straight
 * from a stream (no temp file). The target is always created by the restore; a restore that fails for
 * any reason drops what it created and leaves every other database untouched.
 */

import { rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type pg from 'pg';
import { spawnTool, toolVersion } from '#agent/pipeline/child';
import { drainedOrClosed, settleAll } from '#agent/pipeline/flow';
import { PlanError, RestoreError, SourceError } from '#core/errors';
import type { PostgresDetails } from '#core/sources/postgres';
import { resolvePassword, type SourceContext } from '../context';
import { dropDatabaseWith } from './admin';
import { joinedArchive } from './archive-chunks';
import {
  connectionArgs,
  connectMaintenance,
  describeTarget,
  locatePostgresTools,
  messageOf,
  type PostgresTarget,
  serverMajorOf,
  sqlStateOf,
  toolEnv,
} from './connect';
import { applyDatabaseState, checkTablespaces, prepareRoles } from './globals';
import { markRestoring, unmarkRestoring } from './leftovers';
import {
  dbnameConninfo,
  MAX_IDENTIFIER_BYTES,
  parseTableSelector,
  quoteIdent,
  type TableSelector,
} from './names';
import { checkFreeSpace } from './space';
import { parseTocList, peekToc, selectEntries, type TocEntry, tocScratchDir } from './toc';

/** Options of {@link restorePostgres}. */
export interface PostgresRestoreOptions {
  /** Database to create and restore into; it must not exist. */
  targetDatabase: string;
  /**
   * Tables to restore, `schema.table` or `table` (= `public.table`), exact names. Each comes with its
   * partitions and what it needs to work (toc.ts selectEntries), not with foreign keys to tables left
   * out. An empty list is refused.
   * @default every object of the archive
   */
  tables?: string[];
  /**
   * The manifest's details: the roles the database needs and its database-level state. Without them (a
   * backup of an older agent) owners are still restored from the archive but nothing is checked first.
   */
  details?: Pick<PostgresDetails, 'roles' | 'databaseState' | 'tablespaces'> & { databaseBytes?: number };
  /** Restore without owners (pg_restore --no-owner): the restoring role owns everything. @default false */
  noOwner?: boolean;
  /**
   * Restore into the server's default tablespace (pg_restore --no-tablespaces) instead of needing the
   * recorded tablespaces on the server. @default false
   */
  noTablespaces?: boolean;
  /** Password hashes of roles (the backup's role-passwords object), given to the roles it creates. */
  passwords?: ReadonlyMap<string, string>;
  /**
   * Parallel jobs of the post-data section (indexes, constraints, triggers: `pg_restore --jobs`).
   * @default the host's processors
   */
  jobs?: number;
  ctx: SourceContext;
}

/**
 * Checks that the server has the recorded tablespaces (globals.ts checkTablespaces; not with
 * `noTablespaces`), checks the restoring role's rights and creates the roles the database needs that the
 * server lacks (globals.ts prepareRoles; with `passwords`, their hashes), creates `targetDatabase` (from
 * template0, in its recorded default tablespace) owned as recorded, restores the
 * archive read from `input` into it with `pg_restore --exit-on-error` (owners and ACLs as dumped;
 * `--no-owner` with `noOwner`; `-L` with a filtered TOC for `tables`), then applies the database's
 * comment, ACL and settings. On any failure — pg_restore exiting non-zero, the input
 * stream erroring (e.g. an IntegrityError from decryption midway), an abort — pg_restore is killed, the
 * created database and roles are dropped and the original error is rethrown; `input` is destroyed with that error
 * so the stages feeding it stop too.
 * @example await restorePostgres(job.source, decrypted, { targetDatabase: 'app_drill', ctx: { env } })
 * @throws PlanError for an empty or malformed table list or a target over 63 bytes; RestoreError when
 *   the role lacks a right (before anything is created), the target already exists (it is left
 *   untouched), a table is not in the archive or pg_restore fails;
 *   the input's own error when the input fails; SourceError when the server cannot be reached.
 */
export async function restorePostgres(
  config: PostgresTarget,
  input: Readable,
  options: PostgresRestoreOptions,
): Promise<void> {
  const { targetDatabase: target, ctx } = options;
  const owners = !options.noOwner;
  const where = describeTarget(config, target);
  let created = false;
  let createdRoles: string[] = [];
  let admin: pg.Client | undefined;
  try {
    if (options.tables && options.tables.length === 0) {
      throw new PlanError(['tables: the list is empty (leave it out to restore every table)']);
    }
    const selectors = (options.tables ?? []).map(parseTableSelector);
    if (Buffer.byteLength(target) > MAX_IDENTIFIER_BYTES) {
      throw new PlanError([
        `target: database name '${target}' is ${Buffer.byteLength(target)} bytes; PostgreSQL keeps ${MAX_IDENTIFIER_BYTES} and would truncate it`,
      ]);
    }
    const password = await resolvePassword(config, ctx);
    // Not bound to ctx.signal: after an abort this connection still has to drop the partial target.
    admin = await connectMaintenance(config, password, { env: ctx.env, secrets: ctx.secrets });
    const tools = locatePostgresTools(config.binDir, await serverMajorOf(admin));
    await toolVersion(tools.pgRestore);
    const { rowCount } = await admin.query('SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1', [
      target,
    ]);
    if ((rowCount ?? 0) > 0) {
      throw new RestoreError(`${where} already exists: restore into a new name (it was left untouched)`);
    }
    // Free space before anything is created: the database's size when backed up.
    const spaceNote = await checkFreeSpace(admin, config, options.details?.databaseBytes, where);
    if (spaceNote) ctx.log?.(spaceNote);
    const noTablespaces = options.noTablespaces === true;
    const space = await checkTablespaces(admin, options.details?.tablespaces ?? [], { where, noTablespaces });
    const roles = await prepareRoles(admin, options.details?.roles ?? [], {
      owners,
      where,
      ...(options.details?.databaseState ? { state: options.details.databaseState } : {}),
      ...(options.passwords ? { passwords: options.passwords } : {}),
    });
    createdRoles = roles.created;
    if (createdRoles.length > 0) {
      const hashed = roles.withPassword.length;
      ctx.log?.(
        `created role${createdRoles.length === 1 ? '' : 's'} ${createdRoles.join(', ')} (missing on ${config.host}:${config.port}; ${
          hashed === 0
            ? 'without passwords'
            : hashed === createdRoles.length
              ? 'with their recorded password hashes'
              : `with the recorded password hashes of ${roles.withPassword.join(', ')}`
        })`,
      );
    }
    try {
      await admin.query(
        `CREATE DATABASE ${quoteIdent(target)} TEMPLATE template0${space ? ` TABLESPACE ${quoteIdent(space)}` : ''}`,
      );
    } catch (error) {
      if (sqlStateOf(error) === '42P04') {
        throw new RestoreError(
          `${describeTarget(config, target)} already exists: restore into a new name (it was left untouched)`,
          { cause: error },
        );
      }
      throw new RestoreError(`cannot create ${describeTarget(config, target)}: ${messageOf(error)}`, {
        cause: error,
      });
    }
    created = true;
    // Marked until complete: a restore killed from here on leaves a database the next run recognises.
    await markRestoring(admin, target);
    const state = options.details?.databaseState;
    // Before pg_restore: objects of the owner then get CREATE on the schemas the database owner holds.
    if (owners && state) {
      await admin.query(`ALTER DATABASE ${quoteIdent(target)} OWNER TO ${quoteIdent(state.owner)}`);
    }
    const env = toolEnv(ctx.env, password);
    const signal = ctx.signal ?? new AbortController().signal;
    const { list, head, replay } = await peekToc(tools.pgRestore, input, { env, signal });
    // The TOC alone (no data) and, for `tables`, the chosen entries: private files removed at the end.
    const dir = await tocScratchDir();
    try {
      const tocFile = join(dir, 'toc.dump');
      await writeFile(tocFile, head, { mode: 0o600 });
      // What this restore puts back: the whole archive, or the chosen entries.
      let entries = parseTocList(list);
      let listFile: string | undefined;
      if (selectors.length > 0) {
        entries = chooseEntries(entries, selectors, options.details?.roles ?? []);
        listFile = join(dir, 'selected.list');
        await writeFile(listFile, `${entries.map((e) => e.line).join('\n')}\n`, { mode: 0o600 });
      }
      const run = (from: Readable | string, sections: string[]) =>
        runPgRestore(
          tools.pgRestore,
          config,
          from,
          target,
          password,
          [
            ...sections,
            ...(listFile ? ['-L', listFile] : []),
            ...(owners ? [] : ['--no-owner']),
            ...(noTablespaces ? ['--no-tablespaces'] : []),
          ],
          ctx,
        );
      // Schema and data from the one stream, as it comes; then indexes, constraints and triggers with
      // parallel jobs: they read the tables, not the archive, so the TOC alone, seekable, is all -j needs.
      await run(joinedArchive(replay), ['--section=pre-data', '--section=data']);
      const jobs = postDataJobs(entries, restoreJobs(options.jobs));
      if (jobs.why) ctx.log?.(jobs.why);
      await run(tocFile, ['--section=post-data', '--jobs', String(jobs.jobs)]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    await unmarkRestoring(admin, target);
    if (state) await applyDatabaseState(admin, target, state, { owners });
  } catch (error) {
    if (!input.destroyed) {
      // Stop the stages feeding us with the real cause; our listener keeps an input nobody else listens
      // to from crashing the process.
      input.on('error', () => {});
      input.destroy(error instanceof Error ? error : new Error(String(error)));
    }
    if (created && admin) {
      try {
        await dropDatabaseWith(admin, target);
      } catch (dropError) {
        throw new RestoreError(
          `restore into ${describeTarget(config, target)} failed (${messageOf(error)}) and the partly restored database could not be dropped: ${messageOf(dropError)}`,
          { cause: error },
        );
      }
    }
    if (admin) await dropRoles(admin, createdRoles, where, error);
    throw error;
  } finally {
    await admin?.end().catch(() => {});
  }
}

/** Drops the roles a failed restore created (newest first), after its database is gone. */
async function dropRoles(
  admin: pg.Client,
  roles: readonly string[],
  where: string,
  cause: unknown,
): Promise<void> {
  for (const role of [...roles].reverse()) {
    try {
      await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`);
    } catch (dropError) {
      throw new RestoreError(
        `restore into ${where} failed (${messageOf(cause)}) and role ${role} it created could not be dropped: ${messageOf(dropError)}`,
        { cause },
      );
    }
  }
}

/**
 * Runs one pg_restore into `target` (`--exit-on-error`, `args` first) over `from`: a file, or a stream
 * fed to its stdin; waits for both, and the first failure stops the other.
 */
async function runPgRestore(
  pgRestore: string,
  config: PostgresTarget,
  from: Readable | string,
  target: string,
  password: string | undefined,
  args: readonly string[],
  ctx: SourceContext,
): Promise<void> {
  const controller = new AbortController();
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, controller.signal]) : controller.signal;
  const file = typeof from === 'string';
  const tool = spawnTool(
    pgRestore,
    [
      ...args,
      '--exit-on-error',
      ...connectionArgs(config),
      '-d',
      dbnameConninfo(target),
      ...(file ? [from] : []),
    ],
    {
      env: toolEnv(ctx.env, password),
      signal,
      ...(file ? { stdin: 'ignore' as const } : {}),
      stdout: 'ignore',
      name: 'pg_restore',
    },
  );
  const where = describeTarget(config, target);
  const exited = tool.done.catch((error: unknown) => {
    throw new RestoreError(`pg_restore into ${where} failed: ${messageOf(error)}`, { cause: error });
  });
  if (file) return exited;
  const fed = tool.stdin
    ? feed(from, tool.stdin, signal, exited)
    : Promise.reject(new SourceError('pg_restore has no stdin'));
  await settleAll([exited, fed], controller);
}

/**
 * Jobs for the post-data section: `wanted`, or 1 when the archive attaches partition indexes. With
 * several jobs pg_restore runs `ALTER INDEX … ATTACH PARTITION` (AccessExclusiveLock on the parent
 * index) beside another worker's index or constraint build on the same tables, and the two deadlock —
 * seen here as "deadlock detected … ATTACH PARTITION" failing a whole restore of a partitioned schema.
 */
export function postDataJobs(entries: readonly TocEntry[], wanted: number): { jobs: number; why?: string } {
  if (wanted <= 1 || !entries.some((e) => e.desc === 'INDEX ATTACH')) return { jobs: wanted };
  return {
    jobs: 1,
    why: 'indexes, constraints and triggers are restored with one job: the archive attaches partition indexes, which deadlock with parallel jobs',
  };
}

/**
 * Parallel jobs of a restore's post-data section and of the row-count check: the plan's
 * `restoreJobs`, else the host's processors (at least 1).
 */
export function restoreJobs(jobs?: number): number {
  return Math.max(1, jobs ?? availableParallelism());
}

/**
 * Writes `input` into `stdin` with backpressure and ends it. Rejects with the input's own error when the
 * input fails; on abort destroys the input with the abort reason (so the stages before it stop with the
 * real cause, not a premature close). pg_restore may close its input before the end of the archive once
 * it has all it was asked for (a selective restore): then its exit status decides, and the rest of the
 * input is still read — and so authenticated and checksummed by the stages before it — into nothing.
 */
export async function feed(
  input: Readable,
  stdin: Writable,
  signal: AbortSignal,
  exited: Promise<void>,
): Promise<void> {
  const onAbort = () => input.destroy(signal.reason);
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  let open = true;
  try {
    for await (const chunk of input) {
      if (!open) continue;
      if (!stdin.destroyed && (stdin.write(chunk) || (await drainedOrClosed(stdin)))) continue;
      open = false;
      await exited;
    }
    if (open) stdin.end();
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * The TOC entries of a selective restore: each selector's TABLE entry (its tag is `schema name owner`)
 * and what it needs (see selectEntries).
 * @throws RestoreError naming a table the archive does not have.
 */
export function chooseEntries(
  entries: readonly TocEntry[],
  selectors: readonly TableSelector[],
  roles: readonly { name: string }[],
): TocEntry[] {
  const known = new Set(roles.map((r) => r.name));
  const roots: number[] = [];
  const missing: string[] = [];
  for (const s of selectors) {
    const prefix = `${s.schema} ${s.name} `;
    const match = entries.find(
      (e) =>
        e.desc === 'TABLE' &&
        e.tag.startsWith(prefix) &&
        (known.has(e.tag.slice(prefix.length)) || !e.tag.slice(prefix.length).includes(' ')),
    );
    if (match) roots.push(match.id);
    else missing.push(`${s.schema}.${s.name}`);
  }
  if (missing.length > 0) {
    throw new RestoreError(`table ${missing.join(', ')} is not in the backup: nothing was restored`);
  }
  return selectEntries(entries, roots);
}
