/**
 * influxd for integration tests: a throwaway InfluxDB 1.x per test file, HTTP and RPC on free ports of
 * 127.0.0.1 in a temp dir, through the agent's own scratch launcher (agent/sources/influxdb/scratch.ts:
 * reporting and the monitor store off). Fails (never skips) with what to install when influxd is
 * missing.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  databasesOf,
  type InfluxEndpoint,
  queryInflux,
  type ResultSeries,
} from '#agent/sources/influxdb/http';
import { startScratchInflux } from '#agent/sources/influxdb/index';

/** A running test server. */
export interface InfluxServer {
  httpPort: number;
  rpcPort: number;
  dir: string;
  endpoint: InfluxEndpoint;
  /** Runs one InfluxQL statement (POST, so writes and DDL work too). */
  query(statement: string, db?: string): Promise<ResultSeries[]>;
  /** Writes line protocol into a database. */
  write(db: string, lines: string[]): Promise<void>;
  stop(): Promise<void>;
}

const env = { PATH: process.env.PATH };

/**
 * Starts influxd in a fresh temp dir (or over `dir`, serving the data there).
 * @example let influx: InfluxServer; beforeAll(async () => { influx = await startInflux(); }); afterAll(() => influx?.stop());
 */
export async function startInflux(
  options: { dir?: string; settings?: Record<string, string> } = {},
): Promise<InfluxServer> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'strongbox-influx-')));
  const server = await startScratchInflux(dir, { env }, { settings: options.settings }).catch(
    (error: unknown) => {
      throw new Error(
        `cannot start influxd (apt-get install influxdb influxdb-client): ${(error as Error).message}`,
        { cause: error },
      );
    },
  );
  const endpoint: InfluxEndpoint = { host: '127.0.0.1', port: server.httpPort };
  return {
    httpPort: server.httpPort,
    rpcPort: server.rpcPort,
    dir,
    endpoint,
    query: (statement, db) => queryInflux(endpoint, statement, { db, method: 'POST' }),
    async write(db, lines) {
      const response = await fetch(`http://127.0.0.1:${server.httpPort}/write?db=${encodeURIComponent(db)}`, {
        method: 'POST',
        body: lines.join('\n'),
      });
      if (response.status !== 204)
        throw new Error(`write to ${db}: HTTP ${response.status} ${await response.text()}`);
    },
    async stop() {
      await server.stop();
      if (!options.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A digest of every point of every database (but `_internal`): measurement, tags, fields and times,
 * in order, as `SELECT *` gives them.
 */
export async function influxDigest(endpoint: InfluxEndpoint, only?: string[]): Promise<string> {
  const hash = createHash('sha256');
  const databases = (only ?? (await databasesOf(endpoint))).sort();
  for (const db of databases) {
    hash.update(`db ${db}\n`);
    const series = await queryInflux(endpoint, 'SELECT * FROM /.*/ GROUP BY *', { db });
    const rows = series.map((s) => JSON.stringify([s.name, s.tags, s.columns, s.values])).sort();
    for (const row of rows) hash.update(`${row}\n`);
  }
  return hash.digest('hex');
}
