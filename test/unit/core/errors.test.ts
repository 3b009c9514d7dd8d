import { describe, expect, it } from 'vitest';
import { ERROR_LINE_CHARS, errorLines, PlanError, SourceError, VaultError } from '#core/errors';

describe('errorLines', () => {
  it.each<[string, unknown, string[]]>([
    [
      'an error',
      new SourceError('pg_dump exited with status 1'),
      ['strongbox: error: pg_dump exited with status 1'],
    ],
    [
      'an error and its cause',
      new VaultError('put backups/db/x failed', { cause: new Error('ECONNRESET') }),
      ['strongbox: error: put backups/db/x failed: ECONNRESET'],
    ],
    [
      'a plan error with one issue',
      new PlanError(['jobs[0].source.database: required']),
      ['strongbox: error: jobs[0].source.database: required'],
    ],
    [
      'a plan error with several issues',
      new PlanError([
        'jobs[0].source.database: required',
        "vault: unknown field 'acl'",
        'version: must be 1',
      ]),
      [
        '  jobs[0].source.database: required',
        "  vault: unknown field 'acl'",
        '  version: must be 1',
        'strongbox: error: jobs[0].source.database: required (and 2 more, listed above)',
      ],
    ],
    [
      'a message over several lines',
      new Error('psql failed:\n  ERROR: x\n  DETAIL: y'),
      ['strongbox: error: psql failed: | ERROR: x | DETAIL: y'],
    ],
    ['something thrown that is no error', 'boom', ['strongbox: error: boom']],
  ])('prints %s', (_, error, expected) => {
    expect(errorLines(error)).toEqual(expected);
  });

  it(`cuts a long message so the error line is at most ${ERROR_LINE_CHARS} characters`, () => {
    // Act
    const [line, ...rest] = errorLines(new SourceError('x'.repeat(10_000)));

    // Assess
    expect(rest).toEqual([]);
    expect(line).toHaveLength(ERROR_LINE_CHARS);
    expect(line?.startsWith('strongbox: error: xxx')).toBe(true);
    expect(line?.endsWith('x…')).toBe(true);
  });

  it('keeps a message exactly at the limit whole', () => {
    const message = 'y'.repeat(ERROR_LINE_CHARS - 'strongbox: error: '.length);
    expect(errorLines(new SourceError(message))).toEqual([`strongbox: error: ${message}`]);
  });

  it('cuts a long first plan issue but keeps the count of the others in the error line', () => {
    // Act
    const lines = errorLines(new PlanError(['z'.repeat(5_000), 'version: must be 1']));

    // Assess
    const last = lines.at(-1) ?? '';
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(`  ${'z'.repeat(5_000)}`);
    expect(last).toHaveLength(ERROR_LINE_CHARS);
    expect(last.endsWith('z… (and 1 more, listed above)')).toBe(true);
  });
});
