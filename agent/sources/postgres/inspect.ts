/**
 * `verify --deep` of a logical PostgreSQL backup: besides reading the archive through (every chunk
 * authenticated), its table of contents must list what the manifest recorded — each table with row
 * counts as a TABLE with its TABLE DATA — and every table whose data the archive holds must have a row
 * count in the manifest (a restore's row-count check would otherwise have nothing to compare).
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Finding } from '#core/checks';
import type { RestoreInput, SourceContext, TargetCheck } from '#core/ports';
import type { PostgresDetails } from '#core/sources/index';
import { locatePostgresTools, type PostgresTarget } from './connect';
import { openArchive, parsePasswordHashes, ROLE_PASSWORDS_OBJECT } from './globals';
import { parseTocList, peekToc, type TocEntry } from './toc';

/** A TOC tag's schema and name, when it starts with them (tags are `schema name owner`). */
function holds(entries: readonly TocEntry[], desc: string, schema: string, name: string): boolean {
  return entries.some((e) => e.desc === desc && e.tag.startsWith(`${schema} ${name} `));
}

/**
 * Reads the archive to its end and compares its TOC with the manifest's tables: one check, `archive-toc`;
 * a role-passwords object beside it is read to its end too and must parse.
 * Needs only `pg_restore` (of the backup's server major, or newer), no server. Findings carry `job: ''`.
 * @throws RestoreError when pg_restore cannot read a TOC; the input's own error when it fails.
 */
export async function inspectPostgresArchive(
  config: Pick<PostgresTarget, 'binDir'>,
  details: PostgresDetails,
  input: RestoreInput,
  ctx: SourceContext,
): Promise<TargetCheck[]> {
  const major = Number(details.serverVersion.split('.')[0]) || 0;
  const tools = locatePostgresTools(config.binDir, major);
  const signal = ctx.signal ?? new AbortController().signal;
  // The TOC is read from the head of the stream; the rest is read (and authenticated) into nothing.
  const { list, replay } = await peekToc(tools.pgRestore, await openArchive(input), { env: ctx.env, signal });
  await pipeline(replay, new Writable({ write: (_chunk, _encoding, callback) => callback() }), { signal });
  // The role-passwords object beside it is read whole too (so authenticated) and must parse; its content
  // is never shown.
  const passwords = input.objects.some((o) => o.name === ROLE_PASSWORDS_OBJECT)
    ? (await parsePasswordHashes(await input.open(ROLE_PASSWORDS_OBJECT))).size
    : undefined;
  const entries = parseTocList(list);
  const findings: Finding[] = [];
  for (const table of details.tables) {
    const label = `${table.schema}.${table.name}`;
    if (!holds(entries, 'TABLE', table.schema, table.name)) {
      findings.push({
        job: '',
        severity: 'critical',
        check: 'archive-toc',
        message: `the archive's table of contents has no table ${label}, which the manifest recorded (${table.rows} rows)`,
      });
    } else if (!holds(entries, 'TABLE DATA', table.schema, table.name)) {
      findings.push({
        job: '',
        severity: 'critical',
        check: 'archive-toc',
        message: `the archive holds no data for table ${label}, which the manifest recorded with ${table.rows} rows`,
      });
    }
  }
  const counted = new Set(details.tables.map((t) => `${t.schema} ${t.name} `));
  for (const entry of entries) {
    if (entry.desc !== 'TABLE DATA') continue;
    if ([...counted].some((prefix) => entry.tag.startsWith(prefix))) continue;
    findings.push({
      job: '',
      severity: 'warning',
      check: 'archive-toc',
      message: `the archive holds data of table ${entry.tag.split(' ').slice(0, 2).join('.')} that the manifest has no row count for`,
    });
  }
  const tables = entries.filter((e) => e.desc === 'TABLE').length;
  const passed = findings.length === 0;
  return [
    {
      check: 'archive-toc',
      passed,
      detail: passed
        ? `the archive's table of contents (${entries.length} entries, ${tables} tables) lists the ${details.tables.length} tables the manifest recorded, with their data${passwords === undefined ? '' : `; the role-passwords object holds ${passwords} password hash${passwords === 1 ? '' : 'es'}`}`
        : findings.map((f) => f.message).join('; '),
      findings,
    },
  ];
}
