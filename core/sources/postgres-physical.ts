/**
 * The physical PostgreSQL source: a `pg_basebackup` base backup of a whole cluster (tar format, streamed,
 * with the WAL it needs to reach consistency), and — with the job's continuous WAL archive
 * (`strongbox wal-push` / `wal-fetch`) — recovery to a point in time. Driver: agent/sources/postgres-physical/.
 */
import { z } from 'zod';
import { passwordFields } from './common';
import { defineSource } from './spec';

const plan = z.strictObject({
  kind: z.literal('postgres-physical'),
  host: z
    .string()
    .default('127.0.0.1')
    .describe(
      "Server to back up: a host name or address, or a unix socket directory ('/var/run/postgresql').",
    ),
  port: z.number().int().min(1).max(65_535).default(5432).describe('Server port.'),
  user: z
    .string()
    .default('postgres')
    .describe(
      "Role with the REPLICATION attribute (base backups over a replication connection) that may also log in to 'database'; it need not be a superuser.",
    ),
  ...passwordFields,
  database: z
    .string()
    .min(1)
    .default('postgres')
    .describe('Database the agent connects to for facts (system identifier, version, settings).'),
  binDir: z
    .string()
    .optional()
    .describe(
      "Directory of pg_basebackup, pg_ctl, pg_controldata, pg_verifybackup; '/usr/lib/postgresql/<major>/bin' otherwise.",
    ),
  osUser: z
    .string()
    .min(1)
    .default('postgres')
    .describe(
      'Operating-system user that owns restored data directories and runs the restored server. When the agent runs as root it extracts and starts as this user (runuser -u); otherwise it must be this user.',
    ),
});

const details = z.object({
  kind: z.literal('postgres-physical'),
  /** `server_version` of the cluster, e.g. `15.18 (Debian 15.18-0+deb12u1)`. */
  serverVersion: z.string(),
  /** `server_version_num`, e.g. 150018. */
  serverVersionNum: z.number().int().positive(),
  /** The cluster's system identifier (pg_control_system()), as a decimal string. */
  systemIdentifier: z.string().regex(/^\d+$/),
  /** Timeline the backup started on. */
  timeline: z.number().int().positive(),
  /** WAL location where the backup started (its checkpoint's redo point) and where it ended. */
  startLsn: z.string(),
  stopLsn: z.string(),
  /** First and last WAL segment a restore needs to reach consistency; both are inside the backup. */
  firstWalSegment: z.string().regex(/^[0-9A-F]{24}$/),
  lastWalSegment: z.string().regex(/^[0-9A-F]{24}$/),
  walSegmentBytes: z.number().int().positive(),
  /** The backup_label file pg_basebackup wrote, as it is. */
  backupLabel: z.string(),
  /** When the server began the backup (backup_label START TIME), ISO 8601. */
  backupStartedAt: z.string(),
  /** Regular files in the backup and their bytes (as the tar's headers give them). */
  fileCount: z.number().int().nonnegative(),
  fileBytes: z.number().int().nonnegative(),
  /**
   * User tablespaces (besides pg_default and pg_global), each stored as object `<oid>.tar`: its oid, name
   * and location on the source server. Absent: the cluster had none (one object, base.tar).
   */
  tablespaces: z
    .array(z.object({ oid: z.number().int().positive(), name: z.string(), location: z.string() }))
    .optional(),
});

export const postgresPhysicalSource = defineSource({
  kind: 'postgres-physical',
  title: 'PostgreSQL cluster, physical base backup (pg_basebackup) plus WAL archive',
  targetNoun: 'data directory',
  plan,
  details,
  capabilities: { tables: false, replace: false, sqlChecks: false, pointInTime: true },
});

export type PostgresPhysicalSourceConfig = z.output<typeof plan>;
export type PostgresPhysicalDetails = z.output<typeof details>;
