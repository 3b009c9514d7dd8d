/**
 * A scratch influxd over a data directory (`<dir>/meta`, `<dir>/data`, `<dir>/wal`): HTTP and the
 * backup/restore RPC service on free ports of 127.0.0.1, usage reporting and the monitor's `_internal`
 * store off, configured through influxd's `INFLUXDB_*` environment over an empty config file (so a
 * host's /etc/influxdb/influxdb.conf never leaks in). A restore runs `influxd restore` against one;
 * drills check a restored directory in one; tests run their servers with the same launcher.
 */
import { join } from 'node:path';
import { spawnTool, type ToolProcess } from '#agent/pipeline/child';
import { SourceError } from '#core/errors';
import type { SourceContext } from '#core/ports';
import { freePort, waitUntilAnswering } from '../kit';
import { pingInflux } from './http';

/** A running scratch influxd. */
export interface ScratchInflux {
  httpPort: number;
  rpcPort: number;
  /** Stops it (SIGTERM, SIGKILL after 10 s); resolves once it exited. */
  stop(): Promise<void>;
}

/** Options of a scratch influxd. */
export interface ScratchInfluxOptions {
  /** @default 'influxd' */
  binary?: string;
  /** More `INFLUXDB_*` settings (`INFLUXDB_HTTP_AUTH_ENABLED: 'true'` in tests of auth). */
  settings?: Record<string, string>;
  /** How long opening the data may take. @default 120 s */
  startTimeoutMs?: number;
}

/**
 * Starts influxd on `dir` (creating its meta, data and wal directories as needed) and waits until it
 * answers /ping. A port taken meanwhile is retried once.
 * @throws SourceError when it does not start, with its log's tail.
 */
export async function startScratchInflux(
  dir: string,
  ctx: SourceContext,
  options: ScratchInfluxOptions = {},
): Promise<ScratchInflux> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    const [httpPort, rpcPort] = [await freePort(), await freePort()];
    const env: Record<string, string | undefined> = {
      PATH: ctx.env.PATH,
      HOME: ctx.env.HOME,
      INFLUXDB_REPORTING_DISABLED: 'true',
      INFLUXDB_BIND_ADDRESS: `127.0.0.1:${rpcPort}`,
      INFLUXDB_HTTP_BIND_ADDRESS: `127.0.0.1:${httpPort}`,
      INFLUXDB_HTTP_LOG_ENABLED: 'false',
      INFLUXDB_META_DIR: join(dir, 'meta'),
      INFLUXDB_DATA_DIR: join(dir, 'data'),
      INFLUXDB_DATA_WAL_DIR: join(dir, 'wal'),
      INFLUXDB_MONITOR_STORE_ENABLED: 'false',
      INFLUXDB_CONTINUOUS_QUERIES_ENABLED: 'false',
      ...options.settings,
    };
    const server = spawnTool(options.binary ?? 'influxd', ['run', '-config', '/dev/null'], {
      env,
      stdin: 'ignore',
      stdout: 'ignore',
      name: 'influxd',
    });
    let log = '';
    server.child.stderr?.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString('utf8')).slice(-4_000);
    });
    try {
      await waitUntilAnswering(server, () => pingInflux({ host: '127.0.0.1', port: httpPort }), {
        what: '/ping',
        timeoutMs: options.startTimeoutMs ?? 120_000,
      });
      return { httpPort, rpcPort, stop: () => stopInflux(server) };
    } catch (error) {
      server.child.kill('SIGKILL');
      await server.done.catch(() => {});
      const tail = log.trim().split('\n').slice(-5).join('\n');
      lastError = new SourceError(
        `the scratch influxd on ${dir} did not start: ${(error as Error).message}${tail ? `\n${tail}` : ''}`,
        { cause: error },
      );
      if (!/address already in use/i.test(log)) break;
    }
  }
  throw lastError;
}

async function stopInflux(server: ToolProcess): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = server.done.catch(() => {});
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
