/**
 * The redis source: an RDB snapshot taken without blocking the server — by replication (`redis-cli
 * --rdb -`, the transfer a replica gets) or, where SYNC is not allowed, BGSAVE and the finished file —
 * restored into a new directory that a scratch redis-server loads (driver: agent/sources/redis/).
 */
import { z } from 'zod';
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
  capabilities: { tables: false, replace: false, sqlChecks: false, pointInTime: false },
});

export type RedisSourceConfig = z.output<typeof plan>;
export type RedisDetails = z.output<typeof details>;
