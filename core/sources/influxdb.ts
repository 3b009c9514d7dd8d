/**
 * The influxdb source: an InfluxDB 1.x portable backup (`influxd backup -portable`, online, through
 * influxd's RPC service) stored as one object per file the tool writes, restored with `influxd restore
 * -portable` into a scratch influxd's data directory or as a new database of the live server
 * (`-db X -newdb Y`); drills compare databases, measurements and series counts with the manifest
 * (driver: agent/sources/influxdb/). InfluxDB 2.x (`influx backup`) is refused, not guessed at.
 */
import { z } from 'zod';
import { passwordFields } from './common';
import { defineSource } from './spec';

const port = z.number().int().min(1).max(65_535);

const plan = z.strictObject({
  kind: z.literal('influxdb'),
  /**
   * The InfluxDB major version. Only 1 (1.5+, `influxd backup -portable`): 2.x backs up through
   * `influx backup` with an operator token, which this agent does not drive yet.
   */
  version: z
    .number()
    .default(1)
    .refine((v) => v === 1, {
      message:
        'only 1 is supported (InfluxDB 1.x, influxd backup -portable); InfluxDB 2.x (influx backup) is not supported yet',
    })
    .transform(() => 1 as const)
    .describe('The InfluxDB major version: only 1 (1.5+, influxd backup -portable); 2.x is refused.'),
  host: z.string().min(1).default('127.0.0.1').describe('Host of the InfluxDB server.'),
  /** The HTTP API (`[http] bind-address`): counts for the manifest and the drills. */
  port: port
    .default(8086)
    .describe('The HTTP API port ([http] bind-address): counts for the manifest and drills.'),
  /** influxd's RPC service for backup and restore (the top-level `bind-address`). */
  rpcPort: port
    .default(8088)
    .describe("influxd's RPC port for backup and restore (the top-level bind-address)."),
  /** Back up this database only. @default every database (`_internal` is never counted). */
  database: z
    .string()
    .min(1)
    .optional()
    .describe('Back up this database only; every database when absent (_internal is never counted).'),
  /** User of the HTTP API when auth is enabled; the password from `passwordEnv` / `passwordParameter`. */
  user: z
    .string()
    .min(1)
    .optional()
    .describe(
      'User of the HTTP API when auth is enabled; the password from passwordEnv / passwordParameter.',
    ),
  ...passwordFields,
  /**
   * Where `influxd backup` writes its files before they are streamed to the vault, and where a restore
   * puts them for `influxd restore` (the tool reads and writes only directories): a private directory is
   * made below it and removed on every exit path. @default the system temp directory
   */
  stagingDir: z
    .string()
    .startsWith('/', 'must be an absolute path')
    .optional()
    .describe(
      'Where influxd backup writes its files before they are streamed, and restore puts them: a private directory below it, removed on every exit path; the system temp directory when absent.',
    ),
  /** The influxd that backs up, restores and runs scratch servers for drills. @default influxd on PATH */
  serverBinary: z
    .string()
    .min(1)
    .default('influxd')
    .describe('The influxd that backs up, restores and runs scratch servers for drills.'),
});

const measurement = z.object({
  name: z.string(),
  /** Series of the measurement just before the backup. */
  series: z.number().int().nonnegative(),
  /** Series of the measurement just after it (equal when nothing was written meanwhile). */
  seriesAfter: z.number().int().nonnegative(),
});

const details = z.object({
  kind: z.literal('influxdb'),
  version: z.literal(1),
  serverVersion: z.string(),
  /** The databases backed up, each with its measurements (`_internal` left out). */
  databases: z.array(z.object({ name: z.string(), measurements: z.array(measurement) })),
  /** The files influxd wrote, one object each, in the order they were stored. */
  files: z.array(z.string()),
});

export const influxdbSource = defineSource({
  kind: 'influxdb',
  title: 'InfluxDB 1.x, a portable backup (influxd backup -portable)',
  targetNoun: 'directory or new database',
  plan,
  details,
  capabilities: { tables: false, replace: false, sqlChecks: false, pointInTime: false },
});

export type InfluxdbSourceConfig = z.output<typeof plan>;
export type InfluxdbDetails = z.output<typeof details>;
