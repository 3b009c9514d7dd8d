/**
 * PostgreSQL for integration tests: a throwaway cluster per test file, on a free port in a temp dir.
 * Fails (never skips) with what to install when PostgreSQL is missing.
 */
import type { SourceContext } from '#agent/sources/context';
import { backupPostgres } from '#agent/sources/postgres/index';
import type { PostgresDetails, PostgresSourceConfig } from '#core/sources/index';
import { streamOf } from '#test/support/sources';
import {
  type ClusterOptions,
  fillDemoDatabase,
  type PgServer,
  startCluster,
} from '../../scripts/lib/postgres-cluster';

export type { ClusterOptions, PgServer };
/** Realistic demo data (customers, orders, items, jsonb events, bytea attachments); see the harness. */
export { fillDemoDatabase };

/**
 * Starts a throwaway cluster for a test file; stop it in `afterAll`.
 * @example
 * let pg: PgServer;
 * beforeAll(async () => { pg = await startPostgres({ databases: ['app'] }); });
 * afterAll(() => pg?.stop());
 */
export function startPostgres(options?: ClusterOptions): Promise<PgServer> {
  return startCluster(options);
}

/**
 * A logical postgres source on `server`, every plan field spelled out as the plan's defaults give it.
 * @example const config = postgresSourceOf(pg, 'shop', 'strongbox', { noOwner: true })
 */
export function postgresSourceOf(
  server: PgServer,
  database: string,
  user: string,
  extra: Partial<PostgresSourceConfig> = {},
): PostgresSourceConfig {
  return {
    kind: 'postgres',
    database,
    host: server.host,
    port: server.port,
    user,
    binDir: server.binDir,
    excludeTables: [],
    rowCounts: true,
    noOwner: false,
    noTablespaces: false,
    rolePasswords: false,
    ...extra,
  };
}

/** Backs `config` up with the driver (no vault): the pg_dump archive in memory and the details. */
export async function dumpWithDriver(
  config: PostgresSourceConfig,
  ctx: SourceContext = { env: { PATH: process.env.PATH } },
): Promise<{ archive: Buffer; details: PostgresDetails }> {
  const backup = await backupPostgres(config, ctx);
  const chunks: Buffer[] = [];
  const [result] = await Promise.all([
    backup.done,
    (async () => {
      for await (const chunk of streamOf(backup)) chunks.push(chunk as Buffer);
    })(),
  ]);
  if (result.details.kind !== 'postgres') throw new Error('expected postgres details');
  return { archive: Buffer.concat(chunks), details: result.details };
}
