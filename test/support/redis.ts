/**
 * redis-server for integration tests: a throwaway server per test file on a free port in a temp dir,
 * through the agent's own scratch launcher (agent/sources/redis/scratch.ts), with replication starting
 * at once (`repl-diskless-sync-delay 0`) and DEBUG DIGEST allowed for comparing whole datasets.
 * Fails (never skips) with what to install when redis-server is missing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redisCli } from '#agent/sources/redis/cli';
import { startScratchRedis } from '#agent/sources/redis/index';

/** A running test server. */
export interface RedisServer {
  port: number;
  dir: string;
  password?: string;
  /** One command's `--no-raw` reply. */
  cli(args: string[], db?: number): Promise<string>;
  stop(): Promise<void>;
}

/** Arguments that make a test server quick to back up and comparable. */
export const TEST_REDIS_ARGS = ['--repl-diskless-sync-delay', '0', '--enable-debug-command', 'local'];

const env = { PATH: process.env.PATH };

/**
 * Starts redis-server in a fresh temp dir (or over `dir`, loading its dump.rdb).
 * @example let redis: RedisServer; beforeAll(async () => { redis = await startRedis(); }); afterAll(() => redis?.stop());
 */
export async function startRedis(
  options: { password?: string; dir?: string; extraArgs?: string[] } = {},
): Promise<RedisServer> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'strongbox-redis-')));
  const server = await startScratchRedis(
    dir,
    { env },
    { password: options.password, extraArgs: [...TEST_REDIS_ARGS, ...(options.extraArgs ?? [])] },
  ).catch((error: unknown) => {
    throw new Error(`cannot start redis-server (apt-get install redis-server): ${(error as Error).message}`, {
      cause: error,
    });
  });
  return {
    port: server.port,
    dir,
    password: options.password,
    cli: (args, db) =>
      redisCli({ host: '127.0.0.1', port: server.port }, options.password, { env }, args, { db }),
    async stop() {
      await server.stop();
      if (!options.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** DEBUG DIGEST of a server's whole dataset (40 hex digits; all zeros when empty). */
export async function datasetDigest(server: RedisServer): Promise<string> {
  return (await server.cli(['DEBUG', 'DIGEST'])).trim().replace(/^"|"$/g, '');
}
