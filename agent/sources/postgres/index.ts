/**
 * The logical PostgreSQL source driver: pg_dump custom-format backups taken in an exported snapshot
 * with exact row counts, streamed restores into a new database (whole or selected tables), the swap of
 * `restore --replace`, the checks a restore drill runs, and what doctor checks. One module per concern;
 * this one assembles the driver (core/ports `SourceDriver`).
 */
import type { SourceDriver } from '#core/ports';
import { postgresSource } from '#core/sources/postgres';
import { databaseExists, dropDatabase, preflightReplace, swapDatabases } from './admin';
import { backupPostgres } from './backup';
import { checkPostgres, runSqlChecks } from './checks';
import { doctorPostgres } from './doctor';
import { openArchive, parsePasswordHashes, ROLE_PASSWORDS_OBJECT } from './globals';
import { inspectPostgresArchive } from './inspect';
import { removeRestoreLeftovers } from './leftovers';
import { preflightLiveTables, restoreLiveTables } from './live-tables';
import { stampedDatabaseName } from './names';
import { restorePostgres } from './restore';

export {
  databaseExists,
  dropDatabase,
  preflightReplace,
  type ReplacePreflightOptions,
  type SwapOptions,
  swapDatabases,
} from './admin';
export { backupPostgres } from './backup';
export { checkPostgres, runSqlChecks } from './checks';
export { locatePostgresTools, type PostgresTarget, type PostgresTools } from './connect';
export { preflightLiveTables, restoreLiveTables } from './live-tables';
export { selectTables, stampedDatabaseName } from './names';
export { type PostgresRestoreOptions, restorePostgres } from './restore';

/** The `postgres` driver. */
export const postgresDriver: SourceDriver<'postgres'> = {
  spec: postgresSource,
  backup: (config, ctx, scope) => backupPostgres(config, ctx, scope),
  restore: async (config, input, { target, tables, details, ctx }) => {
    const passwords = input.objects.some((o) => o.name === ROLE_PASSWORDS_OBJECT)
      ? await parsePasswordHashes(await input.open(ROLE_PASSWORDS_OBJECT))
      : undefined;
    return restorePostgres(config, await openArchive(input), {
      targetDatabase: target,
      tables: tables && [...tables],
      ...(details ? { details } : {}),
      noOwner: config.noOwner,
      noTablespaces: config.noTablespaces,
      ...(passwords ? { passwords } : {}),
      ...(config.restoreJobs ? { jobs: config.restoreJobs } : {}),
      ctx,
    });
  },
  check: (config, details, { target, tables, ctx }) => checkPostgres(config, target, details, ctx, tables),
  inspect: inspectPostgresArchive,
  leftovers: removeRestoreLeftovers,
  doctor: doctorPostgres,
  targetExists: databaseExists,
  discard: dropDatabase,
  scratchTarget: (config, label, now) => stampedDatabaseName(config.database, label, now),
  originalTarget: async (config, _details, ctx) => ({
    target: config.database,
    via: 'target',
    occupied: (await databaseExists(config, config.database, ctx))
      ? [`database '${config.database}' exists on ${config.host}:${config.port}`]
      : [],
  }),
  replace: {
    liveTarget: (config) => config.database,
    preflight: (config, { live, details, ctx }) =>
      preflightReplace(config, {
        live,
        ...(details ? { details } : {}),
        noOwner: config.noOwner,
        noTablespaces: config.noTablespaces,
        ctx,
      }),
    swap: (config, options) => swapDatabases(config, options),
  },
  liveTables: {
    liveTarget: (config) => config.database,
    preflight: (config, { tables, details, ctx }) =>
      preflightLiveTables(config, { tables, ...(details ? { details } : {}), ctx }),
    restore: async (config, input, { tables, details, ctx }) =>
      restoreLiveTables(config, await openArchive(input), { tables, ...(details ? { details } : {}), ctx }),
  },
  sqlChecks: runSqlChecks,
};
