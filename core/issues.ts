/**
 * Zod validation issues as the lines Strongbox shows: `path: what is wrong`, one per bad field, the
 * same way for plan files, Lambda events and payloads, and the agent's `--options`.
 */
import type { z } from 'zod';

/**
 * Formats a path as the plan reads: `jobs[1].source.database`.
 * @example formatPath(['jobs', 1, 'source', 'database']) // 'jobs[1].source.database'
 */
export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? String(part) : `.${String(part)}`))
    .join('');
}

/** Options of {@link describeZodIssues}. */
export interface DescribeIssuesOptions {
  /**
   * How values are spelled. `yaml`, for plan files: allowed values bare (`must be one of zstd, gzip`),
   * objects called mappings. `json`, for events, payloads and `--options`: allowed values as JSON and
   * then the value that was sent (`must be one of "scratch", "replace", got string "wipe"`), objects
   * called objects.
   * @default 'json'
   */
  readonly notation?: 'yaml' | 'json';
  /** Names the whole input in front of every path: `--options` gives `--options.tables[0]: …`. @default none */
  readonly root?: string;
}

/**
 * One line per issue: `path: message`, where the message is `required` for a missing field,
 * `expected number, got string "x"` for a wrong type, `unknown field 'x'` (or `unknown fields 'x', 'y'`),
 * `must be one of …` for a value outside an enum or literal, and the schema's own message otherwise.
 * `data` is the input that was validated: the value given is read from it, so messages quote what the
 * user wrote.
 * @example describeZodIssues(schema.safeParse(data).error.issues, data, { root: '--options' })
 *   // ['--options.tables[0]: expected string, got number 5', "--options: unknown field 'force'"]
 */
export function describeZodIssues(
  issues: readonly z.core.$ZodIssue[],
  data: unknown,
  options: DescribeIssuesOptions = {},
): string[] {
  return issues.map((issue) => {
    const path = [options.root ?? '', formatPath(issue.path)]
      .filter((part) => part !== '')
      .join(typeof issue.path[0] === 'number' ? '' : '.');
    const text = describeIssue(issue, readAt(data, issue.path), options.notation ?? 'json');
    return path === '' ? text : `${path}: ${text}`;
  });
}

function describeIssue(issue: z.core.$ZodIssue, value: unknown, notation: 'yaml' | 'json'): string {
  const spell = (v: unknown) => (notation === 'yaml' ? String(v) : JSON.stringify(v));
  if (issue.code === 'unrecognized_keys') {
    return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
  }
  if (issue.code === 'invalid_key') return issue.issues.map((inner) => inner.message).join('; ');
  // A missing discriminator keeps the schema's message, which names the kinds there are.
  const namesKinds = issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator;
  if (value === undefined && issue.code !== 'custom' && !namesKinds) return 'required';
  if (issue.code === 'invalid_type') return `expected ${issue.expected}, got ${typeName(value, notation)}`;
  if (issue.code === 'invalid_value') {
    const values = issue.values.map(spell);
    const allowed = values.length === 1 ? values[0] : `one of ${values.join(', ')}`;
    return notation === 'yaml'
      ? `must be ${allowed}`
      : `must be ${allowed}, got ${typeName(value, notation)}`;
  }
  return issue.message;
}

/** The value at `path` in `data`, or undefined where the path leads nowhere. */
function readAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let value = data;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function typeName(value: unknown, notation: 'yaml' | 'json'): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return notation === 'yaml' ? 'a mapping' : 'an object';
  return `${typeof value} ${typeof value === 'bigint' ? String(value) : JSON.stringify(value)}`;
}
