/**
 * A scratch redis-server over a directory that holds a restored `dump.rdb`: on a free port of
 * 127.0.0.1, no persistence of its own (no saves, no AOF: the RDB is what it loads, and it is never
 * rewritten), stopped with SHUTDOWN NOSAVE. Drills check restored backups in one; tests run their
 * servers with the same launcher.
 */
import { spawnTool, type ToolProcess } from '#agent/pipeline/child';
import { SourceError } from '#core/errors';
import type { SourceContext } from '#core/ports';
import { freePort, waitUntilAnswering } from '../kit';
import { redisCli } from './cli';

export { freePort };

/** The RDB file a restore writes and a scratch server loads. */
export const RDB_FILE = 'dump.rdb';

/** A running scratch server. */
export interface ScratchRedis {
  port: number;
  /** Stops it without saving; resolves once it exited. */
  stop(): Promise<void>;
}

/** Options of a scratch server. */
export interface ScratchRedisOptions {
  /** @default 'redis-server' */
  binary?: string;
  /** A password it requires (tests of auth). */
  password?: string;
  /** More `--name value` arguments (`repl-diskless-sync-delay 0`, `enable-debug-command local`). */
  extraArgs?: string[];
  /** How long loading the RDB may take. @default 120 s */
  startTimeoutMs?: number;
}

/**
 * Starts redis-server on `dir` (loading `dir/dump.rdb` when it is there) and waits until it answers
 * PING, which it does only once the RDB is loaded. A port taken meanwhile is retried once.
 * @throws SourceError when it does not start (a corrupt RDB, a missing binary), with its log's tail.
 */
export async function startScratchRedis(
  dir: string,
  ctx: SourceContext,
  options: ScratchRedisOptions = {},
): Promise<ScratchRedis> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    const port = await freePort();
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--dbfilename',
      RDB_FILE,
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      '--logfile',
      '',
      '--protected-mode',
      'yes',
      ...(options.password ? ['--requirepass', options.password] : []),
      ...(options.extraArgs ?? []),
    ];
    const server = spawnTool(options.binary ?? 'redis-server', args, {
      env: { ...ctx.env, REDISCLI_AUTH: undefined },
      stdin: 'ignore',
      stdout: 'pipe',
      name: 'redis-server',
    });
    // redis-server logs to stdout with --logfile ''; keep its tail for a failed start.
    let log = '';
    server.stdout?.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString('utf8')).slice(-4_000);
    });
    try {
      await waitUntilAnswering(
        server,
        async () => {
          const reply = await redisCli({ host: '127.0.0.1', port }, options.password, ctx, ['PING']);
          if (reply.trim() !== 'PONG') throw new SourceError(`PING answered ${reply.trim()}`);
        },
        { what: 'PING', timeoutMs: options.startTimeoutMs ?? 120_000, intervalMs: 50 },
      );
      return { port, stop: () => stopScratch(port, options.password, ctx, server) };
    } catch (error) {
      server.child.kill('SIGKILL');
      await server.done.catch(() => {});
      lastError = new SourceError(
        `the scratch redis-server on ${dir} did not start: ${(error as Error).message}${log ? `\n${log.trim().split('\n').slice(-5).join('\n')}` : ''}`,
        { cause: error },
      );
      if (!/Address already in use/.test(log)) break;
    }
  }
  throw lastError;
}

async function stopScratch(
  port: number,
  password: string | undefined,
  ctx: SourceContext,
  server: ToolProcess,
): Promise<void> {
  if (server.child.exitCode !== null) return;
  // SHUTDOWN closes the connection without a reply: redis-cli's status does not matter, the exit does.
  await redisCli({ host: '127.0.0.1', port }, password, ctx, ['SHUTDOWN', 'NOSAVE']).catch(() => {});
  const exited = server.done.catch(() => {});
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
