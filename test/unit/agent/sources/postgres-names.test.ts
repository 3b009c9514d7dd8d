import { describe, expect, it } from 'vitest';
import {
  dbnameConninfo,
  parseTableSelector,
  quoteIdent,
  selectTables,
  stampedDatabaseName,
  tablePatternRegex,
} from '#agent/sources/postgres/names';
import { PlanError } from '#core/errors';

describe('tablePatternRegex', () => {
  it.each([
    ['events', { name: '^(events)$' }],
    ['Events', { name: '^(events)$' }],
    ['"Events"', { name: '^(Events)$' }],
    ['sales.order*', { schema: '^(sales)$', name: '^(order.*)$' }],
    ['log_?', { name: '^(log_.)$' }],
    ['"a.b"', { name: '^(a\\.b)$' }],
    ['"x*"', { name: '^(x\\*)$' }],
    ['price$', { name: '^(price\\$)$' }],
    ['db.public.t', { schema: '^(public)$', name: '^(t)$' }],
  ])('%s', (pattern, expected) => {
    expect(tablePatternRegex(pattern)).toEqual(expected);
  });

  it.each(['a.b.c.d', '"open', 'sales.', ''])('rejects %s', (pattern) => {
    expect(() => tablePatternRegex(pattern)).toThrow(PlanError);
  });
});

describe('parseTableSelector', () => {
  it.each([
    ['orders', { schema: 'public', name: 'orders' }],
    ['sales.orders', { schema: 'sales', name: 'orders' }],
    ['"My Schema"."My.Table"', { schema: 'My Schema', name: 'My.Table' }],
    ['Orders', { schema: 'public', name: 'Orders' }],
  ])('%s', (text, expected) => {
    expect(parseTableSelector(text)).toEqual(expected);
  });

  it.each(['a.b.c', '.x', 'x.', '"open'])('rejects %s', (text) => {
    expect(() => parseTableSelector(text)).toThrow(PlanError);
  });
});

describe('selectTables', () => {
  const tables = [
    { schema: 'public', name: 'orders', rows: 3 },
    { schema: 'sales', name: 'orders', rows: 5 },
    { schema: 'public', name: 'refunds', rows: 1 },
  ];

  it('keeps every table without a selection', () => {
    expect(selectTables(tables)).toEqual(tables);
  });

  it('reads an unqualified name as public and keeps manifest order', () => {
    expect(selectTables(tables, ['refunds', 'orders'])).toEqual([tables[0], tables[2]]);
    expect(selectTables(tables, ['sales.orders'])).toEqual([tables[1]]);
  });

  it('names a table the backup does not have', () => {
    expect(() => selectTables(tables, ['sales.refunds'])).toThrow(/sales\.refunds is not in the backup/);
  });
});

describe('names', () => {
  it('quotes identifiers and conninfo values', () => {
    expect(quoteIdent('we"ird')).toBe('"we""ird"');
    expect(dbnameConninfo("it's\\x")).toBe("dbname='it\\'s\\\\x'");
  });

  it('stamps database names within 63 bytes', () => {
    const now = new Date('2024-12-06T02:00:00.123Z');
    expect(stampedDatabaseName('app', 'pre', now)).toBe('app_pre_20241206_020000');
    const long = stampedDatabaseName('ä'.repeat(60), 'restore', now);
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(63);
    expect(long.endsWith('_restore_20241206_020000')).toBe(true);
  });
});
