/** The logical PostgreSQL source: `pg_dump -Fc` of one database (driver: agent/sources/postgres/). */
import { z } from 'zod';
import { passwordFields } from './common';
import { defineSource } from './spec';

const plan = z.strictObject({
  kind: z.literal('postgres'),
  database: z
    .string()
    .min(1)
    .meta({ description: 'The database to dump (pg_dump -Fc).', examples: ['app'] }),
  host: z.string().default('127.0.0.1').describe('Server host name or address, or a unix socket directory.'),
  port: z.number().int().min(1).max(65_535).default(5432).describe('Server port.'),
  user: z.string().default('postgres').describe('Role that dumps (needs only read access to the database).'),
  ...passwordFields,
  binDir: z
    .string()
    .optional()
    .describe(
      'Directory of pg_dump/pg_restore/psql; found on PATH or in /usr/lib/postgresql/<n>/bin otherwise.',
    ),
  excludeTables: z
    .array(z.string())
    .default([])
    .describe('Tables left out of the dump (pg_dump --exclude-table patterns).'),
  rowCounts: z
    .boolean()
    .default(true)
    .describe("Exact row counts per table, taken in the dump's own snapshot, for restore checks."),
  restoreJobs: z
    .number()
    .int()
    .min(1)
    .max(64)
    .optional()
    .describe(
      "Parallel jobs of a restore's index, constraint and trigger builds (pg_restore --jobs) and of its row-count check; the host's processors when left out.",
    ),
  noOwner: z
    .boolean()
    .default(false)
    .describe(
      'Restore without the recorded owners (pg_restore --no-owner): every object and the database then belong to the restoring role. Privileges (ACLs) are still restored.',
    ),
  noTablespaces: z
    .boolean()
    .default(false)
    .describe(
      "Restore every object into the target server's default tablespace (pg_restore --no-tablespaces). Without it a restore needs each tablespace the backup recorded to exist on the target, and refuses up front naming those that do not.",
    ),
  rolePasswords: z
    .boolean()
    .default(false)
    .describe(
      'Also back up the password hashes of the roles the database needs (reading pg_authid needs a superuser or pg_read_all_data), as an encrypted object of the backup, never in the manifest; a restore creates missing roles with them. Off: no hash is stored anywhere and created roles have no password.',
    ),
});

const table = z.object({ schema: z.string(), name: z.string(), rows: z.number().int().nonnegative() });

/** A cluster role the database needs, as recorded at backup time (never its password). */
const role = z.object({
  name: z.string(),
  /** Owns objects of the database (or the database itself). */
  owns: z.boolean(),
  superuser: z.boolean(),
  inherit: z.boolean(),
  createRole: z.boolean(),
  createDb: z.boolean(),
  login: z.boolean(),
  replication: z.boolean(),
  bypassRls: z.boolean(),
  connectionLimit: z.number().int(),
  validUntil: z.string().nullable(),
  /** Has default privileges (ALTER DEFAULT PRIVILEGES FOR ROLE) in the database. */
  defaultPrivileges: z.boolean(),
  /** Roles it is a member of (each also recorded). */
  memberOf: z.array(z.object({ role: z.string(), admin: z.boolean() })),
});

/** The database's own state, which pg_restore applies only with --create (never used by a restore). */
const databaseState = z.object({
  owner: z.string(),
  comment: z.string().nullable(),
  /** pg_database.datacl as aclitem text; null for the default privileges. */
  acl: z.array(z.string()).nullable(),
  /** `name=value` settings of the database (role null) or of a role in it. */
  settings: z.array(z.object({ role: z.string().nullable(), setting: z.string() })),
});

/** A tablespace the database uses, as on the source. */
const tablespace = z.object({
  name: z.string(),
  owner: z.string(),
  /** pg_tablespace_location on the source (a directory of the source server). */
  location: z.string(),
  /** The database's default tablespace (its objects there carry no tablespace in the archive). */
  databaseDefault: z.boolean(),
});

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
  /**
   * The only tables dumped (`schema.table`, pg_dump --table): the safety backup of `restore
   * --into-live` holds just the tables it restores over. Absent for a backup of the whole database.
   */
  onlyTables: z.array(z.string()).optional(),
  /** Partitioned tables with their leaf partitions (whose rows `tables` counts); absent in backups of older agents. */
  partitionedTables: z
    .array(
      z.object({
        schema: z.string(),
        name: z.string(),
        leaves: z.array(z.object({ schema: z.string(), name: z.string() })),
      }),
    )
    .optional(),
  /** Roles the database needs (owners, grantees, their groups); absent in backups of older agents. */
  roles: z.array(role).optional(),
  /** Owner, comment, ACL and settings of the database; absent in backups of older agents. */
  databaseState: databaseState.optional(),
  /** Tablespaces other than pg_default its objects or the database use; absent in backups of older agents. */
  tablespaces: z.array(tablespace).optional(),
});

export const postgresSource = defineSource({
  kind: 'postgres',
  title: 'PostgreSQL database, logical dump (pg_dump -Fc)',
  targetNoun: 'database',
  plan,
  details,
  capabilities: { tables: true, replace: true, sqlChecks: true, pointInTime: false, liveTables: true },
});

export type PostgresSourceConfig = z.output<typeof plan>;
export type PostgresDetails = z.output<typeof details>;
/** One table's exact row count in a backup. */
export type TableCount = z.output<typeof table>;
/** A partitioned table of a backup and its leaf partitions. */
export type PartitionedTable = NonNullable<PostgresDetails['partitionedTables']>[number];
/** A role a backed-up database needs. */
export type PostgresRole = z.output<typeof role>;
/** A tablespace a backed-up database uses. */
export type PostgresTablespace = z.output<typeof tablespace>;
/** Database-level state of a backed-up database. */
export type DatabaseState = z.output<typeof databaseState>;
