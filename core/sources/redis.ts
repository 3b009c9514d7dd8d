/**
 * The redis source: an RDB snapshot taken without blocking the server — by replication (`redis-cli
 * --rdb -`, the transfer a replica gets) or, where SYNC is not allowed, BGSAVE and the finished file —
 * restored into a new directory that a scratch redis-server loads (driver: agent/sources/redis/).
 */
import { z } from 'zod';
import { commandSchema } from '../command';
import { passwordFields } from './common';
import { defineSource } from './spec';

const plan = z.strictObject({
  kind: z.literal('redis'),
  host: z.string().min(1).default('127.0.0.1').describe('Server host name or address.'),
  port: z.number().int().min(1).max(65_535).default(6379).describe('Server port.'),
  user: z
    .string()
    .min(1)
    .optional()
    .describe(
      "ACL user (Redis 6+); the password comes from 'passwordEnv' / 'passwordParameter', never argv.",
    ),
  ...passwordFields,
  tls: z
    .strictObject({
      caCert: z
        .string()
        .startsWith('/', 'must be an absolute path')
        .optional()
        .meta({
          description: 'CA bundle that verifies the server.',
          examples: ['/etc/ssl/certs/redis-ca.pem'],
        }),
      serverName: z.string().min(1).optional().describe('Name the server certificate must carry (SNI).'),
    })
    .optional()
    .describe("TLS to the server: redis-cli's --tls, with a CA bundle to verify it when given."),
  method: z
    .enum(['auto', 'replication', 'bgsave'])
    .default('auto')
    .describe(
      'replication streams the RDB a replica would get (needs SYNC/PSYNC; the server waits repl-diskless-sync-delay, 5 s by default, first); bgsave has the server write its RDB file and streams it once finished (needs CONFIG GET and the file on this host); auto tries replication and falls back to bgsave.',
    ),
  sampleKeys: z
    .number()
    .int()
    .min(0)
    .max(1_000)
    .default(20)
    .describe(
      'Keys sampled per database (type and a digest of their value) for drills to compare; 0 for none.',
    ),
  serverBinary: z
    .string()
    .min(1)
    .default('redis-server')
    .describe('The redis-server that drills start on a scratch port (redis-server on PATH by default).'),
  /**
   * `restore --replace`: an RDB is read only at startup, so the server is stopped, the RDB placed at
   * `<dir>/<dbfilename>` (the old one kept beside it, renamed) and the server started again. Servers
   * with `appendonly yes` are refused (they ignore the RDB).
   */
  replace: z
    .strictObject({
      /** Stops the server and returns once it is down (`systemctl stop redis-server`). */
      stop: commandSchema.describe(
        'Stops the server and returns once it is down (systemctl stop redis-server).',
      ),
      /** Starts it again (`systemctl start redis-server`). */
      start: commandSchema.describe('Starts it again (systemctl start redis-server).'),
      /** The server's `dir` (checked against CONFIG GET dir before anything changes). */
      dir: z
        .string()
        .startsWith('/', 'must be an absolute path')
        .describe("The server's dir (checked against CONFIG GET dir before anything changes)."),
      /** The server's `dbfilename`. @default dump.rdb */
      dbfilename: z
        .string()
        .regex(/^[^/]+$/, 'must be a file name, without a directory')
        .default('dump.rdb')
        .describe("The server's dbfilename."),
      /** How long the restarted server may take to load the RDB and answer PING. @default 5 min */
      startTimeoutSeconds: z
        .number()
        .int()
        .min(1)
        .max(86_400)
        .default(300)
        .describe('Seconds the restarted server may take to load the RDB and answer PING.'),
    })
    .optional()
    .describe(
      'restore --replace: stop the server, place the RDB at <dir>/<dbfilename> (the old one kept beside, renamed), start it again; appendonly servers are refused.',
    ),
});

const keyCount = z.object({
  db: z.number().int().nonnegative(),
  /** Keys in the database just before the snapshot. */
  keys: z.number().int().nonnegative(),
  /** Keys in the database just after the snapshot (equal when nothing changed while it was taken). */
  keysAfter: z.number().int().nonnegative(),
});

const sampledKey = z.object({
  db: z.number().int().nonnegative(),
  key: z.string(),
  type: z.string(),
  /**
   * SHA-256 of the value in a canonical form (a set's members and a hash's fields sorted, a list and a
   * sorted set in order), hex; absent for types not compared (streams, modules) and large values.
   */
  valueSha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});

const details = z.object({
  kind: z.literal('redis'),
  serverVersion: z.string(),
  method: z.enum(['replication', 'bgsave']),
  /** Whether the server runs with `appendonly yes` (the backup is an RDB all the same). */
  appendonly: z.boolean(),
  keyCounts: z.array(keyCount),
  sampledKeys: z.array(sampledKey),
});

export const redisSource = defineSource({
  kind: 'redis',
  title: 'Redis, an RDB snapshot by replication (redis-cli --rdb) or BGSAVE',
  targetNoun: 'directory',
  plan,
  details,
  capabilities: { tables: false, replace: true, sqlChecks: false, pointInTime: false },
});

export type RedisSourceConfig = z.output<typeof plan>;
export type RedisDetails = z.output<typeof details>;
