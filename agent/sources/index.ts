/**
 * The one place that switches on the kind of a source. Each driver says how its data is backed up, how a
 * backup is restored into a new target (a database, a directory), what a drill checks there, and how a
 * scratch target is removed again; callers stay free of `if (kind === …)`.
 */
import { rm, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Finding } from '#core/checks';
import { IntegrityError } from '#core/errors';
import type { SourceDetails } from '#core/manifest';
import type { FilesSourceConfig, PostgresSourceConfig, SourceConfig } from '#core/plan';
import type { SourceBackup } from '#core/ports';
import type { SourceContext } from './context';
import { backupFiles, checkFiles, restoreFiles } from './files';
import {
  backupPostgres,
  checkPostgres,
  databaseExists,
  dropDatabase,
  restorePostgres,
  stampedDatabaseName,
} from './postgres';

/** Where and what to restore. */
export interface RestoreTargetOptions {
  /** Database name (postgres) or directory (files); created by the restore, must not exist (or be empty). */
  target: string;
  /** Tables to restore (postgres only), `schema.table` or `table` (= `public.table`). */
  tables?: string[];
  ctx: SourceContext;
}

/** What a source kind can do. Every method rejects with the typed errors of core/errors. */
export interface SourceDriver<C extends SourceConfig = SourceConfig> {
  readonly kind: C['kind'];
  /** Starts a backup: the data stream and a promise of the manifest's details (see SourceBackup). */
  backup(config: C, ctx: SourceContext): Promise<SourceBackup>;
  /**
   * Restores a backup's data stream into a new target. On any failure the target is removed again and
   * the original error (the input's own, e.g. an IntegrityError) is rethrown. Resolves once all is written.
   */
  restore(config: C, input: Readable, options: RestoreTargetOptions): Promise<void>;
  /** Drill checks of a restored target against the manifest's details; empty when all match. */
  check(config: C, details: SourceDetails, options: RestoreTargetOptions): Promise<Finding[]>;
  /** Whether the target already exists (a directory that exists counts, even when empty). */
  targetExists(config: C, target: string, ctx: SourceContext): Promise<boolean>;
  /** Removes a scratch target the caller created (drop the database, delete the directory). */
  discard(config: C, target: string, ctx: SourceContext): Promise<void>;
  /** A fresh target name beside the source: `<database>_<label>_<stamp>` or a temp directory path. */
  scratchTarget(config: C, label: string, now: Date, tempDir: string): string;
}

const postgres: SourceDriver<PostgresSourceConfig> = {
  kind: 'postgres',
  backup: backupPostgres,
  restore: (config, input, { target, tables, ctx }) =>
    restorePostgres(config, input, { targetDatabase: target, tables, ctx }),
  check: async (config, details, { target, tables, ctx }) =>
    checkPostgres(config, target, expectKind(details, 'postgres'), ctx, tables),
  targetExists: databaseExists,
  discard: dropDatabase,
  scratchTarget: (config, label, now) => stampedDatabaseName(config.database, label, now),
};

const files: SourceDriver<FilesSourceConfig> = {
  kind: 'files',
  backup: backupFiles,
  restore: async (_config, input, { target, ctx }) => {
    await restoreFiles(input, { targetDir: target, signal: ctx.signal });
  },
  check: (_config, details, { target }) => checkFiles(expectKind(details, 'files'), target),
  targetExists: async (_config, target) =>
    stat(target).then(
      () => true,
      () => false,
    ),
  discard: (_config, target) => rm(target, { recursive: true, force: true }),
  scratchTarget: (_config, label, now, tempDir) =>
    `${tempDir.replace(/\/+$/, '')}/strongbox-${label}-${now.toISOString().replace(/[-:.]/g, '')}`,
};

const DRIVERS = { postgres, files } as const;

/**
 * The driver for a source (or a source kind).
 * @example const source = await sourceDriver(job.source).backup(job.source, { env, signal })
 */
export function sourceDriver<C extends SourceConfig>(source: C | C['kind']): SourceDriver<C> {
  const kind = typeof source === 'string' ? source : source.kind;
  return DRIVERS[kind] as unknown as SourceDriver<C>;
}

function expectKind<K extends SourceDetails['kind']>(
  details: SourceDetails,
  kind: K,
): Extract<SourceDetails, { kind: K }> {
  if (details.kind !== kind) {
    throw new IntegrityError(`the manifest describes a ${details.kind} backup, not ${kind}`);
  }
  return details as Extract<SourceDetails, { kind: K }>;
}
