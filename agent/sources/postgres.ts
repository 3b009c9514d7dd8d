/**
 * The logical PostgreSQL source: pg_dump custom-format backups taken in an exported snapshot with exact
 * row counts, streamed restores into a new database (whole or selected tables), the swap of
 * `restore --replace`, and the checks a restore drill runs. One module per concern; this one is the
 * entry the rest of the agent imports.
 */
export { databaseExists, dropDatabase, type SwapOptions, swapDatabases } from './postgres-admin';
export { backupPostgres } from './postgres-backup';
export { checkPostgres, runSqlChecks, type SqlCheck } from './postgres-checks';
export { locatePostgresTools, type PostgresTarget, type PostgresTools } from './postgres-connect';
export { selectTables, stampedDatabaseName } from './postgres-names';
export { type PostgresRestoreOptions, restorePostgres } from './postgres-restore';
