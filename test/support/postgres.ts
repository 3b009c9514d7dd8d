/**
 * PostgreSQL for integration tests: a throwaway cluster per test file, on a free port in a temp dir.
 * Fails (never skips) with what to install when PostgreSQL is missing.
 */
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
