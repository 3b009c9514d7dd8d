import { describe, expect, it } from 'vitest';
import { parseRestoreOptions } from '#agent/commands/restore';
import { PlanError } from '#core/errors';

/** The issues of the PlanError that parsing these flags throws. */
function issuesOf(flags: Record<string, string | boolean | undefined>): readonly string[] {
  try {
    parseRestoreOptions(flags);
  } catch (error) {
    if (error instanceof PlanError) return error.issues;
    throw error;
  }
  throw new Error('expected the options to be rejected');
}

describe('parseRestoreOptions', () => {
  it('merges --options JSON with the flags, flags first', () => {
    const parsed = parseRestoreOptions({
      job: 'app-db',
      options: '{"target":"copy","tables":["public.orders"],"replace":false}',
      target: 'other',
    });
    expect(parsed).toMatchObject({
      job: 'app-db',
      target: 'other',
      tables: ['public.orders'],
      replace: false,
    });
  });

  it.each([
    ['{"tables":[5]}', ['--options.tables[0]: expected string, got number 5']],
    ['{"force":true}', ["--options: unknown field 'force'"]],
    ['{"replace":"yes"}', ['--options.replace: expected boolean, got string "yes"']],
    ['[]', ['--options: expected object, got a list']],
    ['{"target":""}', ['--options.target: Too small: expected string to have >=1 characters']],
    ['not json', ['--options: not valid JSON']],
  ])('names the bad field of --options %s', (options, expected) => {
    expect(issuesOf({ job: 'app-db', options })).toEqual(expected);
  });
});
