import { describe, expect, it } from 'vitest';
import { excluder, globToRegExp } from '#agent/sources/files/glob';

describe('globToRegExp', () => {
  it.each([
    ['*.log', 'app.log', true],
    ['*.log', 'dir/app.log', false],
    ['/var/**', '/var/lib/app/x', true],
    ['/var/**/cache', '/var/cache', true],
    ['/var/**/cache', '/var/lib/app/cache', true],
    ['/var/*/cache', '/var/lib/app/cache', false],
    ['file?.txt', 'file1.txt', true],
    ['file?.txt', 'file/.txt', false],
    ['[ab].conf', 'a.conf', true],
    ['[!ab].conf', 'a.conf', false],
    ['[!ab].conf', 'c.conf', true],
    ['a+b(c).txt', 'a+b(c).txt', true],
    ['a.txt', 'abtxt', false],
    ['[unclosed', '[unclosed', true],
  ])('%s against %s is %s', (pattern, path, expected) => {
    expect(globToRegExp(pattern).test(path)).toBe(expected);
  });
});

describe('excluder', () => {
  it('matches the whole absolute path or the base name', () => {
    const excluded = excluder(['*.tmp', '/srv/app/cache', 'node_modules']);

    expect(excluded('/srv/app/x.tmp')).toBe(true);
    expect(excluded('/srv/app/cache')).toBe(true);
    expect(excluded('/srv/app/cache/entry')).toBe(false);
    expect(excluded('/srv/app/web/node_modules')).toBe(true);
    expect(excluded('/srv/app/main.ts')).toBe(false);
  });
});
