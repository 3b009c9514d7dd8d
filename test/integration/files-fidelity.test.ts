/**
 * What a files backup keeps, on the real file system: a tree with every hard case (absolute and
 * relative symlinks, symlink loops, hard links, a name that is not UTF-8, a path longer than any tar
 * header, xattrs, POSIX ACLs with default ACLs, a 100 MiB sparse file, a FIFO, a device node, sub-second
 * and directory/symlink mtimes, a mode 000 directory, setuid/setgid files of another owner) is backed up
 * and restored, and the restored tree is compared with the source by rsync (`-aHAX`, checksums), a tool
 * no one here wrote. The test runs as root (as the agent does on hosts) so owners, trusted xattrs and
 * device nodes are part of it; it fails saying what to install when a tool is missing.
 */
import { execFile } from 'node:child_process';
import { lstat, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupFiles, checkFiles, restoreFiles } from '#agent/sources/files/index';
import type { FilesDetails } from '#core/sources/index';
import { streamOf } from '#test/support/sources';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
let work: string;
let src: string;

async function sh(command: string, args: string[]): Promise<string> {
  try {
    return (await run(command, args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error(`${command} not found: apt-get install -y attr acl rsync`);
    throw new Error(`${command} ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strongbox-fidelity-'));
  src = join(work, 'src');
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, 'sub', 'file.txt'), 'hello\n');
  await symlink('/etc/localtime', join(src, 'localtime'));
  await symlink('sub/file.txt', join(src, 'relative'));
  await symlink('loop-b', join(src, 'loop-a'));
  await symlink('loop-a', join(src, 'loop-b'));
  await symlink('self', join(src, 'self'));
  await symlink('/nonexistent/target', join(src, 'dangling'));
  await writeFile(join(src, 'linked'), 'two names, one file\n');
  await sh('ln', [join(src, 'linked'), join(src, 'sub', 'linked-too')]);
  await writeFile(Buffer.from(`${src}/latin1-caf\xe9-\xff.txt`, 'latin1'), 'not utf-8\n');
  let deep = src;
  for (let i = 0; i < 12; i++) deep = join(deep, `${String(i).padStart(2, '0')}-${'d'.repeat(200)}`);
  await mkdir(deep, { recursive: true });
  await writeFile(join(deep, `${'n'.repeat(250)}.txt`), 'deep\n');
  await writeFile(join(src, 'attrs.txt'), 'with attributes\n');
  await sh('setfattr', ['-n', 'user.color', '-v', 'blue', join(src, 'attrs.txt')]);
  if (isRoot) await sh('setfattr', ['-n', 'trusted.origin', '-v', 'lab', join(src, 'attrs.txt')]);
  await sh('setfacl', ['-m', 'u:1234:rw,g:2345:r', join(src, 'attrs.txt')]);
  await mkdir(join(src, 'shared'));
  await sh('setfacl', ['-m', 'u:1234:rwx', '-d', '-m', 'u:1234:rwx,g:2345:rx', join(src, 'shared')]);
  await sh('truncate', ['-s', '100M', join(src, 'sparse.img')]);
  await sh('dd', [
    'if=/dev/urandom',
    `of=${join(src, 'sparse.img')}`,
    'bs=4096',
    'count=1',
    'seek=1000',
    'conv=notrunc',
  ]);
  await sh('mkfifo', [join(src, 'fifo')]);
  if (isRoot) await sh('mknod', [join(src, 'null-device'), 'c', '1', '3']);
  await mkdir(join(src, 'locked'));
  await writeFile(join(src, 'locked', 'inside.txt'), 'behind mode 000\n');
  await writeFile(join(src, 'setuid'), '#!/bin/sh\n');
  if (isRoot) await sh('chown', ['1234:2345', join(src, 'setuid')]);
  await sh('chmod', ['4755', join(src, 'setuid')]);
  await writeFile(join(src, 'setgid'), '#!/bin/sh\n');
  await sh('chmod', ['2750', join(src, 'setgid')]);
  // Times last: sub-second file mtimes, a symlink's own mtime, directory mtimes (children first).
  await sh('touch', ['-d', '2021-03-04 05:06:07.123456789', join(src, 'sub', 'file.txt')]);
  await sh('touch', ['-h', '-d', '2019-01-01 00:00:00.5', join(src, 'relative')]);
  await sh('chmod', ['000', join(src, 'locked')]);
  await sh('touch', ['-d', '2020-02-02 02:02:02.25', join(src, 'sub')]);
  await sh('touch', ['-d', '2020-02-02 02:02:02.75', src]);
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('a files backup of a tree with every hard case', () => {
  let restored: string;
  let details: FilesDetails;
  let warnings: string[] | undefined;

  beforeAll(async () => {
    const target = join(work, 'restored');
    const backup = await backupFiles(
      { kind: 'files', paths: [src], exclude: [], unreadable: 'error' },
      { env: {} },
    );
    const [result] = await Promise.all([backup.done, restoreFiles(streamOf(backup), { targetDir: target })]);
    details = result.details;
    warnings = result.warnings;
    restored = join(target, src);
  }, 120_000);

  it('restores a tree rsync -aHAX finds nothing to change in, contents compared by checksum', async () => {
    const changes = await sh('rsync', [
      '-aHAXn',
      '--checksum',
      '--numeric-ids',
      '--itemize-changes',
      `${src}/`,
      `${restored}/`,
    ]);
    expect(changes).toBe('');
    // And the other way round: nothing in the restore that the source lacks.
    expect(
      await sh('rsync', [
        '-aHAXn',
        '--numeric-ids',
        '--delete',
        '--itemize-changes',
        `${src}/`,
        `${restored}/`,
      ]),
    ).toBe('');
    expect(warnings).toBeUndefined();
  });

  it('keeps the 100 MiB sparse file sparse', async () => {
    const info = await stat(join(restored, 'sparse.img'));
    expect(info.size).toBe(100 * 1024 * 1024);
    expect(info.blocks * 512).toBeLessThanOrEqual(64 * 1024);
  });

  it('keeps sub-second mtimes of files, symlinks and directories', async () => {
    const ns = async (path: string) => (await lstat(path, { bigint: true })).mtimeNs;
    for (const path of ['sub/file.txt', 'relative', 'sub', '.']) {
      expect(await ns(join(restored, path)), path).toBe(await ns(join(src, path)));
    }
  });

  it('keeps xattrs (user and, as root, trusted), ACLs and default ACLs', async () => {
    const attrs = await sh('getfattr', ['-d', '-m', '-', '--absolute-names', join(restored, 'attrs.txt')]);
    expect(attrs).toContain('user.color="blue"');
    if (isRoot) expect(attrs).toContain('trusted.origin="lab"');
    expect(await sh('getfacl', ['-cp', join(restored, 'attrs.txt')])).toContain('user:1234:rw-');
    const shared = await sh('getfacl', ['-cp', join(restored, 'shared')]);
    expect(shared).toContain('default:user:1234:rwx');
    expect(shared).toContain('default:group:2345:r-x');
  });

  it('keeps special files, modes and links as they were', async () => {
    expect((await lstat(join(restored, 'fifo'))).isFIFO()).toBe(true);
    if (isRoot) expect((await lstat(join(restored, 'null-device'))).isCharacterDevice()).toBe(true);
    expect((await lstat(join(restored, 'locked'))).mode & 0o7777).toBe(0);
    expect((await lstat(join(restored, 'setuid'))).mode & 0o7777).toBe(0o4755);
    if (isRoot) expect((await lstat(join(restored, 'setuid'))).uid).toBe(1234);
    expect((await lstat(join(restored, 'setgid'))).mode & 0o7777).toBe(0o2750);
    const [a, b] = await Promise.all([
      lstat(join(restored, 'linked')),
      lstat(join(restored, 'sub', 'linked-too')),
    ]);
    expect(a.ino).toBe(b.ino);
  });

  it('records counts the drill check finds again (hard links counted per name, bytes once)', async () => {
    expect((await checkFiles(details, join(work, 'restored'))).flatMap((c) => c.findings)).toEqual([]);
  });
});
