import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type DescribeIssuesOptions, describeZodIssues, formatPath } from '#core/issues';

const schema = z.strictObject({
  job: z.string(),
  port: z.number().optional(),
  mode: z.enum(['scratch', 'replace']).optional(),
  version: z.literal(1).optional(),
  tables: z.array(z.string()).optional(),
  target: z.strictObject({ host: z.string() }).optional(),
  hosts: z
    .record(z.string().regex(/^[a-z]+$/, 'host names must be lowercase letters'), z.string())
    .optional(),
  kind: z
    .discriminatedUnion('type', [z.object({ type: z.literal('a') }), z.object({ type: z.literal('b') })])
    .optional(),
  window: z
    .object({ from: z.number(), to: z.number() })
    .refine((w) => w.from < w.to, { message: 'from must come before to' })
    .optional(),
});

/** The lines for `data` validated by the schema above. */
function linesFor(data: unknown, options?: DescribeIssuesOptions): string[] {
  const result = schema.safeParse(data);
  if (result.success) throw new Error('expected the data to be rejected');
  return describeZodIssues(result.error.issues, data, options);
}

describe('describeZodIssues', () => {
  it.each<[string, unknown, DescribeIssuesOptions, string[]]>([
    ['a missing field', {}, {}, ['job: required']],
    ['a wrong type', { job: 'x', port: 'five' }, {}, ['port: expected number, got string "five"']],
    ['null', { job: null }, {}, ['job: expected string, got null']],
    ['a list for a string', { job: ['x'] }, {}, ['job: expected string, got a list']],
    ['an object in JSON', { job: { a: 1 } }, {}, ['job: expected string, got an object']],
    ['a mapping in YAML', { job: { a: 1 } }, { notation: 'yaml' }, ['job: expected string, got a mapping']],
    ['an unknown field', { job: 'x', force: true }, {}, ["unknown field 'force'"]],
    ['unknown fields', { job: 'x', a: 1, b: 2 }, {}, ["unknown fields 'a', 'b'"]],
    [
      'a nested unknown field',
      { job: 'x', target: { host: 'h', port: 1 } },
      {},
      ["target: unknown field 'port'"],
    ],
    [
      'an enum value in JSON',
      { job: 'x', mode: 'wipe' },
      {},
      ['mode: must be one of "scratch", "replace", got string "wipe"'],
    ],
    [
      'an enum value in YAML',
      { job: 'x', mode: 'wipe' },
      { notation: 'yaml' },
      ['mode: must be one of scratch, replace'],
    ],
    ['a literal in JSON', { job: 'x', version: 2 }, {}, ['version: must be 1, got number 2']],
    ['a literal in YAML', { job: 'x', version: 2 }, { notation: 'yaml' }, ['version: must be 1']],
    [
      'an element of a list',
      { job: 'x', tables: ['a', 5] },
      {},
      ['tables[1]: expected string, got number 5'],
    ],
    [
      'a bad record key',
      { job: 'x', hosts: { DB: 'h' } },
      {},
      ['hosts.DB: host names must be lowercase letters'],
    ],
    ['a custom check', { job: 'x', window: { from: 2, to: 1 } }, {}, ['window: from must come before to']],
    ['the whole input', 'all', {}, ['expected object, got string "all"']],
    [
      'a root name in front of every path',
      { job: 'x', tables: [5], force: 1 },
      { root: '--options' },
      ["--options: unknown field 'force'", '--options.tables[0]: expected string, got number 5'],
    ],
    [
      'a root name for the whole input',
      [],
      { root: '--options' },
      ['--options: expected object, got a list'],
    ],
  ])('describes %s', (_, data, options, expected) => {
    // Act
    const lines = linesFor(data, options);

    // Assess
    expect([...lines].sort()).toEqual([...expected].sort());
  });

  it('keeps the message of a missing discriminator, which names the kinds there are', () => {
    // Prepare
    const data = { job: 'x', kind: {} };
    const result = schema.safeParse(data, {
      error: (issue) => (issue.code === 'invalid_union' ? 'must be one of a, b' : undefined),
    });

    // Act
    const lines = describeZodIssues(result.error?.issues ?? [], data);

    // Assess
    expect(lines).toEqual(['kind.type: must be one of a, b']);
  });

  it('joins a root and a path that starts with a list index without a dot', () => {
    const list = z.array(z.string());
    const data = [1];
    const result = list.safeParse(data);
    expect(describeZodIssues(result.error?.issues ?? [], data, { root: 'Records' })).toEqual([
      'Records[0]: expected string, got number 1',
    ]);
  });
});

describe('formatPath', () => {
  it.each([
    [['jobs', 1, 'source', 'database'], 'jobs[1].source.database'],
    [['version'], 'version'],
    [['hosts', 'db', 'instanceIds', 0], 'hosts.db.instanceIds[0]'],
    [[], ''],
  ])('formats %j as %s', (path, expected) => {
    // Act
    const text = formatPath(path);

    // Assess
    expect(text).toBe(expected);
  });
});
