/** The logical PostgreSQL source: `pg_dump -Fc` of one database (driver: agent/sources/postgres/). */
import { z } from 'zod';
import { passwordFields } from './common';
import { defineSource } from './spec';

const plan = z.strictObject({
  kind: z.literal('postgres'),
  database: z.string().min(1),
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(1).max(65_535).default(5432),
  user: z.string().default('postgres'),
  ...passwordFields,
  /** Directory of pg_dump/pg_restore/psql; found on PATH or in /usr/lib/postgresql/<n>/bin otherwise. */
  binDir: z.string().optional(),
  /** Tables left out of the dump (pg_dump --exclude-table patterns). */
  excludeTables: z.array(z.string()).default([]),
  /** Exact row counts per table, taken in the dump's own snapshot, for restore checks. */
  rowCounts: z.boolean().default(true),
});

const table = z.object({ schema: z.string(), name: z.string(), rows: z.number().int().nonnegative() });

const details = z.object({
  kind: z.literal('postgres'),
  database: z.string(),
  serverVersion: z.string(),
  /** pg_database_size at backup time. */
  databaseBytes: z.number().int().nonnegative(),
  /** Exact row counts in the dump's snapshot (empty when rowCounts is off). */
  tables: z.array(table),
  /** pg_dump --exclude-table patterns that applied. */
  excludedTables: z.array(z.string()),
});

export const postgresSource = defineSource({
  kind: 'postgres',
  title: 'PostgreSQL database, logical dump (pg_dump -Fc)',
  targetNoun: 'database',
  plan,
  details,
  capabilities: { tables: true, replace: true, sqlChecks: true, pointInTime: false },
});

export type PostgresSourceConfig = z.output<typeof plan>;
export type PostgresDetails = z.output<typeof details>;
/** One table's exact row count in a backup. */
export type TableCount = z.output<typeof table>;
