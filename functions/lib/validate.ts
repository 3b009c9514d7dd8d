/** Validation of events and payloads at the handlers' edge: one clear message per bad field. */
import type { z } from 'zod';
import { PlanError } from '#core/errors';
import { formatPath } from '#core/plan';

/**
 * Parses input with a zod schema.
 * @example const input = parseInput(scheduleSchema, event, 'schedule input')
 * @throws PlanError with one issue per bad field, e.g. `job: required`, prefixed with `what`.
 */
export function parseInput<S extends z.ZodType>(schema: S, data: unknown, what: string): z.output<S> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const path = formatPath(issue.path);
    const value = readAt(data, issue.path);
    let text = issue.message;
    if (issue.code === 'invalid_type') {
      text = value === undefined ? 'required' : `expected ${issue.expected}, got ${typeName(value)}`;
    } else if (issue.code === 'unrecognized_keys') {
      text = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    }
    return `${what}${path ? ` ${path}` : ''}: ${text}`;
  });
  throw new PlanError(issues);
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
