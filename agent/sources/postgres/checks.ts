/**
 * What a restore drill checks in a restored PostgreSQL database: the manifest's row counts, and the
 * plan's own SQL checks. Checks report findings; they throw only when the database cannot be reached.
 */
import type pg from 'pg';
import type { Finding } from '#core/checks';
import type { SqlCheck } from '#core/plan';
import type { TargetCheck } from '#core/ports';
import type { PostgresDetails } from '#core/sources/index';
import { resolvePassword, type SourceContext } from '../context';
import { connectPostgres, messageOf, type PostgresTarget } from './connect';
import { quoteIdent, selectTables } from './names';
import { restoreJobs } from './restore';

/**
 * Checks that every table of the manifest's details exists in `database` with exactly the recorded row
 * count (`count(*)`, in parallel over `restoreJobs` sessions, the host's processors by default), and — after a whole restore, when the plan takes row counts — that the restored
 * database has no table the manifest does not list; after a selective restore pass the restored
 * `tables` (`table` or `schema.table`) and only those are checked. One check, `row-counts`, with a finding per table that is missing or
 * differs. Findings carry `job: ''`: the caller, which knows the job and backup, fills them in.
 * @example await checkPostgres(job.source, 'app_drill', manifest.source, ctx, ['public.orders'])
 * @throws SourceError when the database cannot be reached; PlanError when a table asked for is not in
 *   the manifest.
 */
export async function checkPostgres(
  config: PostgresTarget & { rowCounts?: boolean; restoreJobs?: number },
  database: string,
  details: PostgresDetails,
  ctx: SourceContext,
  tables?: readonly string[],
): Promise<TargetCheck[]> {
  const base = { job: '' };
  const expected = selectTables(details.tables, tables, details.partitionedTables);
  const password = await resolvePassword(config, ctx);
  const client = await connectPostgres(config, database, password, ctx);
  try {
    const findings: Finding[] = [];
    const names = expected.map((t) => `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`);
    const { rows: present } = await client.query<{ i: string; oid: string | null }>(
      'SELECT i::text, to_regclass(n)::oid::text AS oid FROM unnest($1::text[]) WITH ORDINALITY AS t(n, i)',
      [names],
    );
    const found = new Set(present.filter((r) => r.oid).map((r) => Number(r.i) - 1));
    // Exact counts, in parallel over `restoreJobs` sessions, the largest tables first.
    const queue = [...found].sort((a, b) => (expected[b]?.rows ?? 0) - (expected[a]?.rows ?? 0));
    const counted = new Map<number, number>();
    const countWith = async (session: pg.Client) => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
        const { rows } = await session.query<{ n: string }>(`SELECT count(*) AS n FROM ${names[i]}`);
        counted.set(i, Number(rows[0]?.n ?? 0));
      }
    };
    const extra = Math.min(restoreJobs(config.restoreJobs), queue.length) - 1;
    const sessions = await Promise.all(
      Array.from({ length: Math.max(0, extra) }, () => connectPostgres(config, database, password, ctx)),
    );
    try {
      await Promise.all([client, ...sessions].map(countWith));
    } finally {
      await Promise.all(sessions.map((s) => s.end().catch(() => {})));
    }
    for (const [i, table] of expected.entries()) {
      const rowsFound = counted.get(i);
      if (rowsFound === undefined) {
        findings.push({
          ...base,
          severity: 'critical',
          check: 'table-missing',
          message: `table ${table.schema}.${table.name} is missing from restored database ${database}`,
        });
        continue;
      }
      if (rowsFound === table.rows) continue;
      findings.push({
        ...base,
        severity: 'critical',
        check: 'row-count',
        message: `table ${table.schema}.${table.name} in restored database ${database} has ${rowsFound} rows, the backup recorded ${table.rows}`,
      });
    }
    if (tables === undefined && config.rowCounts !== false) {
      // A whole restore: every table of the restored database must be one the backup counted.
      const { rows } = await client.query<{ schema: string; name: string }>(
        `SELECT n.nspname AS schema, c.relname AS name
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND c.relpersistence <> 't'
            AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                             WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                               AND d.deptype = 'e')
          ORDER BY 1, 2`,
      );
      for (const row of rows) {
        if (expected.some((t) => t.schema === row.schema && t.name === row.name)) continue;
        findings.push({
          ...base,
          severity: 'critical',
          check: 'table-unexpected',
          message: `table ${row.schema}.${row.name} in restored database ${database} has no row count in the backup's manifest`,
        });
      }
    }
    const passed = findings.length === 0;
    const detail = passed
      ? `${expected.length} table${expected.length === 1 ? '' : 's'} match the row counts the backup recorded`
      : `${findings.length} finding${findings.length === 1 ? '' : 's'} over ${expected.length} tables the backup recorded`;
    return [{ check: 'row-counts', passed, detail, findings }];
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Runs the plan's drill checks against `database`: each query's first column of the first row, as
 * PostgreSQL prints it (text), must equal `expect`. A query that fails or returns no row fails its
 * check. Each check runs in its own read-only transaction, so a check cannot change the restored data.
 * One result per check, `sql:<name>`; findings carry `job: ''` for the caller to fill in.
 * @example await runSqlChecks(job.source, 'app_drill', job.drill.checks, ctx) // every one passed
 * @throws SourceError when the database cannot be reached.
 */
export async function runSqlChecks(
  config: PostgresTarget,
  database: string,
  checks: readonly SqlCheck[],
  ctx: SourceContext,
): Promise<TargetCheck[]> {
  const client = await connectPostgres(config, database, await resolvePassword(config, ctx), ctx);
  try {
    const results: TargetCheck[] = [];
    for (const check of checks) {
      const result = await firstValue(client, check.query);
      const failed = (message: string): TargetCheck => ({
        check: `sql:${check.name}`,
        passed: false,
        detail: message,
        findings: [{ job: '', severity: 'critical', check: 'sql-check', message }],
      });
      if ('error' in result) {
        results.push(failed(`check '${check.name}' failed on ${database}: ${result.error}`));
      } else if (!sameValue(result, check.expect)) {
        const got = result.value === undefined ? 'no row' : `'${result.value}'`;
        results.push(
          failed(`check '${check.name}' on ${database} returned ${got}, expected '${check.expect}'`),
        );
      } else {
        results.push({
          check: `sql:${check.name}`,
          passed: true,
          detail: `check '${check.name}' returned '${check.expect}' as expected`,
          findings: [],
        });
      }
    }
    return results;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Boolean type OID: PostgreSQL prints `t`/`f`, plans write `true`/`false`; either matches. */
const BOOL_OID = 16;

function sameValue(result: { value?: string; typeId?: number }, expected: string): boolean {
  if (result.typeId === BOOL_OID && result.value !== undefined) {
    const truth = (text: string) =>
      ({ t: 'true', true: 'true', f: 'false', false: 'false' })[text.toLowerCase()];
    return truth(result.value) === truth(expected);
  }
  return result.value === expected;
}

/** The first column of the first row as text (NULL as `null`) with its type, or the error. */
async function firstValue(
  client: pg.Client,
  query: string,
): Promise<{ value?: string; typeId?: number } | { error: string }> {
  try {
    await client.query('BEGIN READ ONLY');
    const result = await client.query<unknown[]>({
      text: query,
      rowMode: 'array',
      // Values as PostgreSQL prints them, not as JavaScript objects: a check compares text.
      types: { getTypeParser: () => (value: string) => value },
    });
    const row = result.rows[0];
    return {
      value: row === undefined ? undefined : row[0] === null ? 'null' : String(row[0]),
      typeId: result.fields[0]?.dataTypeID,
    };
  } catch (error) {
    return { error: messageOf(error) };
  } finally {
    await client.query('ROLLBACK').catch(() => {});
  }
}
