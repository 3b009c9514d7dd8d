/** Validation of events and payloads at the handlers' edge: one clear message per bad field. */
import type { z } from 'zod';
import { PlanError } from '#core/errors';
import { describeZodIssues } from '#core/issues';

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
  return { ok: false, issues: describeZodIssues(result.error.issues, data) };
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
