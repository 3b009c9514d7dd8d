/**
 * Names in PostgreSQL as the postgres source spells them: identifier quoting, psql-style table patterns
 * (`--exclude-table`), `schema.table` selections, and derived database names. Pure functions.
 */

import { PlanError } from '#core/errors';
import type { TableCount } from '#core/sources/index';
import type { PartitionedTable } from '#core/sources/postgres';

/** Longest identifier PostgreSQL keeps (NAMEDATALEN - 1), in bytes. */
export const MAX_IDENTIFIER_BYTES = 63;

/** A string literal for SQL that takes no parameters (COMMENT, ALTER … SET): quotes doubled. */
export function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/**
 * Quotes an identifier for SQL: `my "db"` → `"my ""db"""`.
 * @example quoteIdent('Orders') // '"Orders"'
 */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A psql name pattern as POSIX regular expressions for `~`, anchored; `schema` absent matches any. */
export interface NamePatternRegex {
  schema?: string;
  name: string;
}

/**
 * Translates a psql/pg_dump name pattern (`-t`, `-T`) into anchored POSIX regular expressions, following
 * psql's rules: outside double quotes letters fold to lower case, `*` means any characters, `?` any one
 * character and `.` separates schema from name; inside double quotes everything is literal (`""` is a
 * quote). An unqualified pattern matches tables in every schema.
 * @example tablePatternRegex('sales.order*') // { schema: '^(sales)$', name: '^(order.*)$' }
 * @throws PlanError for a pattern with more than one dot outside quotes (database.schema.table is
 *   accepted, the database part is ignored) or an unterminated quote.
 */
export function tablePatternRegex(pattern: string): NamePatternRegex {
  const parts: string[] = [''];
  let inQuotes = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    let out: string;
    if (ch === '"') {
      if (inQuotes && pattern[i + 1] === '"') {
        out = '"';
        i++;
      } else {
        inQuotes = !inQuotes;
        continue;
      }
    } else if (inQuotes) {
      out = '|*+?()[]{}.^$\\'.includes(ch) ? `\\${ch}` : ch;
    } else if (ch === '*') {
      out = '.*';
    } else if (ch === '?') {
      out = '.';
    } else if (ch === '.') {
      parts.push('');
      continue;
    } else if (ch === '$') {
      out = '\\$';
    } else {
      out = ch.toLowerCase();
    }
    parts[parts.length - 1] += out;
  }
  if (inQuotes) throw new PlanError([`table pattern '${pattern}' has an unterminated double quote`]);
  if (parts.length > 3 || parts.some((part) => part === '')) {
    throw new PlanError([`table pattern '${pattern}' is not [schema.]table`]);
  }
  const anchor = (re: string) => `^(${re})$`;
  const name = anchor(parts[parts.length - 1] as string);
  return parts.length === 1 ? { name } : { schema: anchor(parts[parts.length - 2] as string), name };
}

/** A table named by a user, as exact names. */
export interface TableSelector {
  schema: string;
  name: string;
}

/**
 * Parses `table`, `schema.table` or `"My Schema"."My.Table"` into exact (case-sensitive) names, as
 * pg_restore compares them. Unquoted names are taken as written (no case folding), like pg_restore -t.
 * A name without a schema means `public.<name>`, the table the default search_path finds.
 * @throws PlanError for an empty name or more than one unquoted dot.
 */
export function parseTableSelector(text: string): TableSelector {
  const parts: string[] = [''];
  let inQuotes = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch === '"') {
      if (inQuotes && text[i + 1] === '"') {
        parts[parts.length - 1] += '"';
        i++;
      } else inQuotes = !inQuotes;
    } else if (ch === '.' && !inQuotes) parts.push('');
    else parts[parts.length - 1] += ch;
  }
  if (inQuotes || parts.length > 2 || parts.some((part) => part === '')) {
    throw new PlanError([`table '${text}' is not table or schema.table`]);
  }
  return parts.length === 1
    ? { schema: 'public', name: parts[0] as string }
    : { schema: parts[0] as string, name: parts[1] as string };
}

/**
 * The tables of a manifest that a selection names (all when `selection` is undefined); `table` means
 * `public.table`, and a partitioned table (listed in `partitioned`) means its leaf partitions.
 * @example selectTables(details.tables, ['public.orders']) // [{ schema: 'public', name: 'orders', rows: 12 }]
 * @throws PlanError for an empty selection, or naming a selector that matches no table of the manifest.
 */
export function selectTables(
  tables: readonly TableCount[],
  selection?: readonly string[],
  partitioned: readonly PartitionedTable[] = [],
): TableCount[] {
  if (!selection) return [...tables];
  if (selection.length === 0)
    throw new PlanError(['tables: the list is empty (leave it out for every table)']);
  const chosen = new Set<TableCount>();
  const same = (a: { schema: string; name: string }, b: { schema: string; name: string }) =>
    a.name === b.name && a.schema === b.schema;
  for (const text of selection) {
    const selector = parseTableSelector(text);
    const parent = partitioned.find((p) => same(p, selector));
    const matches = parent
      ? tables.filter((t) => parent.leaves.some((leaf) => same(leaf, t)))
      : tables.filter((t) => same(t, selector));
    if (!parent && matches.length === 0) {
      throw new PlanError([
        `table ${selector.schema}.${selector.name} is not in the backup (it has ${tables.length} tables)`,
      ]);
    }
    for (const match of matches) chosen.add(match);
  }
  return tables.filter((t) => chosen.has(t));
}

/**
 * A libpq connection-string fragment naming a database, quoted so any name is taken literally (a bare
 * name containing `=` would otherwise be parsed as a connection string by pg_dump and pg_restore).
 * @example dbnameConninfo("it's") // "dbname='it\\'s'"
 */
export function dbnameConninfo(database: string): string {
  return `dbname='${database.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/**
 * A database name derived from another: `<base>_<label>_<yyyymmdd>_<hhmmss>` (UTC), with `base` cut so
 * the whole stays within PostgreSQL's 63-byte limit.
 * @example stampedDatabaseName('app', 'pre', new Date('2024-12-06T02:00:00Z')) // 'app_pre_20241206_020000'
 */
export function stampedDatabaseName(base: string, label: string, now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/\.\d{3}Z$/, '')
    .replace(/[-:]/g, '')
    .replace('T', '_');
  const suffix = `_${label}_${stamp}`;
  return `${truncateBytes(base, MAX_IDENTIFIER_BYTES - Buffer.byteLength(suffix))}${suffix}`;
}

/** The longest prefix of `text` whose UTF-8 form fits in `maxBytes` (never splits a character). */
function truncateBytes(text: string, maxBytes: number): string {
  let out = '';
  for (const ch of text) {
    if (Buffer.byteLength(out + ch) > maxBytes) break;
    out += ch;
  }
  return out;
}
