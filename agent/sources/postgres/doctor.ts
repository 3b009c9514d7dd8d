/**
 * What `strongbox doctor` checks for a postgres job: the database reachable with the configured
 * credentials, and pg_dump and pg_restore present and not older than the server.
 */
import { toolVersion } from '#agent/pipeline/child';
import type { DoctorCheck } from '#core/ports';
import type { PostgresSourceConfig } from '#core/sources/index';
import { resolvePassword, type SourceContext } from '../context';
import { probe } from '../kit';
import { connectPostgres, locatePostgresTools, serverMajorOf } from './connect';

/** One line per check, in order: the database, pg_dump, pg_restore. */
export async function doctorPostgres(
  config: PostgresSourceConfig,
  ctx: SourceContext,
): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  let serverMajor: number | undefined;
  checks.push(
    await probe(`database ${config.database} on ${config.host}:${config.port}`, async () => {
      const password = await resolvePassword(config, ctx);
      const client = await connectPostgres(config, config.database, password, ctx);
      try {
        serverMajor = await serverMajorOf(client);
        const { rows } = await client.query<{ v: string; size: string }>(
          'SELECT version() AS v, pg_size_pretty(pg_database_size(current_database())) AS size',
        );
        return `reachable as ${config.user}, ${rows[0]?.v.split(',')[0]}, ${rows[0]?.size}`;
      } finally {
        await client.end().catch(() => {});
      }
    }),
  );
  const tools = locatePostgresTools(config.binDir, serverMajor ?? 0);
  for (const [name, path] of [
    ['pg_dump', tools.pgDump],
    ['pg_restore', tools.pgRestore],
  ] as const) {
    checks.push(
      await probe(name, async () => {
        const version = await toolVersion(path);
        const major = Number(/(\d+)(\.\d+)?/.exec(version)?.[1]);
        if (serverMajor !== undefined && major < serverMajor) {
          throw new Error(
            `${path} is ${version}, older than the server (${serverMajor}): install postgresql-client-${serverMajor}`,
          );
        }
        return `${path} (${version})`;
      }),
    );
  }
  return checks;
}
