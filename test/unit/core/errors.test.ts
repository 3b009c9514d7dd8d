import { describe, expect, it } from 'vitest';
import {
  describeError,
  ERROR_LINE_CHARS,
  errorLines,
  IntegrityError,
  PlanError,
  SourceError,
  VaultError,
} from '#core/errors';

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

describe('describeError turns raw library errors into sentences', () => {
  const system = (message: string, fields: Record<string, unknown>) =>
    Object.assign(new Error(message), fields);

  it.each<[string, unknown, string]>([
    [
      'a refused connection, named by the context',
      system('connect ECONNREFUSED 127.0.0.1:5432', {
        code: 'ECONNREFUSED',
        syscall: 'connect',
        address: '127.0.0.1',
        port: 5432,
      }),
      'cannot connect to the database of job shop at 127.0.0.1:5432: the connection was refused (nothing listens there) (ECONNREFUSED)',
    ],
    [
      'a full disk behind an abort',
      Object.assign(new Error('The operation was aborted'), {
        name: 'AbortError',
        cause: system("ENOSPC: no space left on device, write '/srv/vault/x'", {
          code: 'ENOSPC',
          syscall: 'write',
          path: '/srv/vault/x',
        }),
      }),
      'writing /srv/vault/x: no space left on the device (ENOSPC)',
    ],
    [
      'a broken pipe',
      new SourceError('pg_restore failed', {
        cause: system('write EPIPE', { code: 'EPIPE', syscall: 'write' }),
      }),
      'pg_restore failed: the process or connection reading the data stopped before the end (broken pipe); its own error, if it printed one, is above',
    ],
    [
      'corrupt gzip data',
      system('incorrect header check', { code: 'Z_DATA_ERROR', errno: -3 }),
      'the data is not gzip-compressed as its manifest says (corrupt, or not written by Strongbox)',
    ],
    [
      'a JSON syntax error, without the bytes it read',
      new IntegrityError('m.json: manifest is not valid JSON', {
        cause: new SyntaxError('Unexpected token \'G\', "GARBAGE secret" is not valid JSON'),
      }),
      'm.json: manifest is not valid JSON',
    ],
    [
      'a wrapped errno the wrapper already said',
      new VaultError('cannot write x in file:///v: no space left on the device', {
        cause: system('ENOSPC', { code: 'ENOSPC', syscall: 'write' }),
      }),
      'cannot write x in file:///v: no space left on the device',
    ],
  ])('%s', (_what, error, expected) => {
    const context = {
      nameEndpoint: (_host: string, port: number) => (port === 5432 ? 'the database of job shop' : undefined),
    };
    expect(describeError(error, context)).toBe(expected);
    expect(describeError(error, context)).not.toMatch(/GARBAGE|The operation was aborted|incorrect header/);
  });

  it('leads the error line with the operation', () => {
    expect(errorLines(new SourceError('pg_dump exited with status 1'), {}, 'backup shop')).toEqual([
      'strongbox: error: backup shop: pg_dump exited with status 1',
    ]);
  });
});
