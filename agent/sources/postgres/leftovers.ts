/**
 * Databases a killed restore left behind. A restore marks the database it creates with a comment
 * (`strongbox: restore in progress, pid <pid> on <host> since <time>`) until it is complete; a restore
 * that fails drops its database itself, so a marked database whose process is gone on this host is what
 * a killed agent (`kill -9`, a crash, a reboot) left. `list` names them, and `prune` and the next restore
 * of the job drop them. A database without the marker, or marked by another host, is never dropped.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import { processRuns } from '#agent/pipeline/child';
import type { SourceContext } from '#core/ports';
import { resolvePassword } from '../context';
import { dropDatabaseWith } from './admin';
import { connectMaintenance, type PostgresTarget } from './connect';
import { quoteIdent, quoteLiteral } from './names';

const MARKER = /^strongbox: restore in progress, pid (\d+) on (\S+) since (\S+)$/;

/** Marks a database as being restored into by this process. */
export async function markRestoring(admin: pg.Client, database: string): Promise<void> {
  const text = `strongbox: restore in progress, pid ${process.pid} on ${hostname()} since ${new Date().toISOString()}`;
  await admin.query(`COMMENT ON DATABASE ${quoteIdent(database)} IS ${quoteLiteral(text)}`);
}

/** Removes the mark of a complete restore (the database's own comment is applied after it). */
export async function unmarkRestoring(admin: pg.Client, database: string): Promise<void> {
  await admin.query(`COMMENT ON DATABASE ${quoteIdent(database)} IS NULL`);
}

/** A database a killed restore left. */
export interface RestoreLeftover {
  database: string;
  pid: number;
  host: string;
  since: string;
  /** Whether its process is gone on this host (so it may be dropped). */
  abandoned: boolean;
}

/** Marked databases on the job's server, with whether each one's restore is gone. */
export async function findRestoreLeftovers(admin: pg.Client): Promise<RestoreLeftover[]> {
  const { rows } = await admin.query<{ datname: string; comment: string }>(
    `SELECT d.datname, pg_catalog.shobj_description(d.oid, 'pg_database') AS comment
       FROM pg_catalog.pg_database d
      WHERE pg_catalog.shobj_description(d.oid, 'pg_database') LIKE 'strongbox: restore in progress, %'
      ORDER BY 1`,
  );
  const here = hostname();
  return rows.flatMap((row) => {
    const m = MARKER.exec(row.comment);
    if (!m) return [];
    const pid = Number(m[1]);
    const host = m[2] as string;
    return [
      {
        database: row.datname,
        pid,
        host,
        since: m[3] as string,
        abandoned: host === here && pid !== process.pid && !processRuns(pid),
      },
    ];
  });
}

/**
 * Lists (and unless `dryRun` drops) the databases killed restores left on the job's server.
 * @returns one line per leftover, saying what was (or would be) done.
 */
export async function removeRestoreLeftovers(
  config: PostgresTarget,
  ctx: SourceContext,
  options: { dryRun?: boolean } = {},
): Promise<string[]> {
  const admin = await connectMaintenance(config, await resolvePassword(config, ctx), ctx);
  try {
    const lines: string[] = [];
    for (const left of await findRestoreLeftovers(admin)) {
      const what = `database ${left.database}, left by a restore (pid ${left.pid} on ${left.host} since ${left.since})`;
      if (!left.abandoned) {
        lines.push(`${what} that still runs or ran on another host: left alone`);
        continue;
      }
      if (options.dryRun) {
        lines.push(`${what} that was killed: prune drops it`);
        continue;
      }
      await dropDatabaseWith(admin, left.database);
      lines.push(`${what} that was killed: dropped`);
    }
    return lines;
  } finally {
    await admin.end().catch(() => {});
  }
}
