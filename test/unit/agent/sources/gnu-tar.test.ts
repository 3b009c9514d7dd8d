import { describe, expect, it } from 'vitest';
import { classifyDiagnostic, parseIndexLine } from '#agent/sources/files/gnu-tar';

describe('parseIndexLine', () => {
  it.each([
    ['-rw-r--r--  0/0               3 2026-12-01 22:29 src/a', { type: '-', sizeBytes: 3 }],
    ['hrw-r--r--  0/0               0 2026-12-01 22:29 src/hl link to src/a', { type: 'h', sizeBytes: 0 }],
    [
      'lrwxrwxrwx  0/0               0 2026-12-01 22:29 src/abs -> /etc/localtime',
      { type: 'l', sizeBytes: 0 },
    ],
    ['-rwsr-xr-x  1234/2345        10 2026-12-01 22:29 src/setuid', { type: '-', sizeBytes: 10 }],
    ['crw-r--r--  0/0             1,3 2026-12-01 22:29 src/null', { type: 'c', sizeBytes: 0 }],
    ['d---------  0/0               0 2026-12-01 22:29 src/locked/', { type: 'd', sizeBytes: 0 }],
  ])('reads %s', (line, entry) => {
    expect(parseIndexLine(line)).toEqual(entry);
  });

  it('is undefined for diagnostics', () => {
    expect(parseIndexLine('tar: src/a: file changed as we read it')).toBeUndefined();
  });
});

describe('classifyDiagnostic', () => {
  it.each([
    ['tar: var/log/app.log: file changed as we read it', 'changed', '/var/log/app.log'],
    ['tar: var/lib/x.db: File shrank by 4096 bytes; padding with zeros', 'changed', '/var/lib/x.db'],
    ['tar: spool/a.msg: File removed before we read it', 'vanished', '/spool/a.msg'],
    ['tar: spool/b.msg: Warning: Cannot stat: No such file or directory', 'vanished', '/spool/b.msg'],
    ['tar: etc/key: Warning: Cannot open: Permission denied', 'unreadable', '/etc/key'],
    ['tar: etc/a: b: file changed as we read it', 'changed', '/etc/a: b'],
  ])('classifies %s', (line, kind, path) => {
    expect(classifyDiagnostic(line)).toMatchObject({ kind, path });
  });

  it.each([
    ['tar: run/app.sock: socket ignored', 'ignored'],
    ['tar: srv/disk.img: Read error at byte 0, while reading 512 bytes: Input/output error', 'unknown'],
    ['tar: Unexpected EOF in archive', 'unknown'],
  ])('keeps unknown lines as failures: %s', (line, kind) => {
    expect(classifyDiagnostic(line).kind).toBe(kind);
  });
});
