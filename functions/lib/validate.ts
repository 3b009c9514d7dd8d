/** Validation of events and payloads at the handlers' edge: one clear message per bad field. */
import type { z } from 'zod';
import { PlanError } from '#core/errors';
import { formatPath } from '#core/plan';

/**
 * Checks input against a zod schema and says what is wrong with each bad field.
 * @example const checked = checkInput(restoreRequestSchema, payload)
 *   // { ok: false, issues: ['mode: must be one of "scratch", "replace", got string "wipe"'] }
 */
export function checkInput<S extends z.ZodType>(
  schema: S,
  data: unknown,
): { ok: true; data: z.output<S> } | { ok: false; issues: string[] } {
  const result = schema.safeParse(data);
  if (result.success) return { ok: true, data: result.data };
  return { ok: false, issues: result.error.issues.map((issue) => describeIssue(issue, data)) };
}

/**
 * Parses input with a zod schema.
 * @example const input = parseInput(jobScheduleSchema, event, 'run-backup input')
 * @throws PlanError whose one-line message lists every bad field, e.g.
 *   `run-backup input: job: required; scheduledTime: must be an ISO 8601 time …`.
 */
export function parseInput<S extends z.ZodType>(schema: S, data: unknown, what: string): z.output<S> {
  const checked = checkInput(schema, data);
  if (checked.ok) return checked.data;
  throw new PlanError([`${what}: ${checked.issues.join('; ')}`]);
}

function describeIssue(issue: z.core.$ZodIssue, data: unknown): string {
  const path = formatPath(issue.path);
  const value = readAt(data, issue.path);
  let text = issue.message;
  if (issue.code === 'unrecognized_keys') {
    text = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
  } else if (value === undefined && issue.code !== 'custom') {
    text = 'required';
  } else if (issue.code === 'invalid_type') {
    text = `expected ${issue.expected}, got ${typeName(value)}`;
  } else if (issue.code === 'invalid_value') {
    const values = issue.values.map((v) => JSON.stringify(v));
    text = `must be ${values.length === 1 ? values[0] : `one of ${values.join(', ')}`}, got ${typeName(value)}`;
  }
  return path ? `${path}: ${text}` : text;
}

function readAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let value = data;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}
