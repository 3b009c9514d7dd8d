/**
 * The files source with files of several names (hard links) and with many files: each such file is
 * stored once and its other names as links, in one archive that a plain `tar` (no `--ignore-zeros`)
 * reads whole; directories keep their times although those files come first; and GNU tar's memory does
 * not grow with the number of files archived (given names on stdin it would remember every file).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, link, lstat, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterEach, describe, expect, it } from 'vitest';
import type { SourceContext } from '#agent/sources/context';
import { backupFiles, restoreFiles } from '#agent/sources/files/index';
import type { FilesSourceConfig } from '#core/sources/index';
import { streamOf } from '#test/support/sources';
import { tempDir } from '#test/support/temp';

const ctx: SourceContext = { env: {} };

function configFor(paths: string[]): FilesSourceConfig {
  return { kind: 'files', paths, exclude: [], unreadable: 'error' };
}

/** `tar -tv` of an archive with a plain tar: type letter and name of every member, in order. */
function members(archive: Buffer): string[] {
  return execFileSync('tar', ['-tv', '-f', '-'], { input: archive, maxBuffer: 256 * 1024 * 1024 })
    .toString()
    .trim()
    .split('\n')
    .map((line) => `${line[0]} ${line.replace(/^(\S+\s+){5}/, '').replace(/ link to .*$/, '')}`);
}

const past = new Date('2021-02-03T04:05:06Z');
const originalPath = process.env.PATH;
afterEach(() => {
  process.env.PATH = originalPath;
});

describe('files of several names', () => {
  it('are stored once with their other names as links, in one archive a plain tar lists whole', async () => {
    const work = await tempDir('strongbox-links-');
    const tree = join(work, 'tree');
    await mkdir(join(tree, 'a'), { recursive: true });
    await mkdir(join(tree, 'b'));
    await writeFile(join(tree, 'a', 'plain.txt'), 'one name\n');
    await writeFile(join(tree, 'a', 'shared.txt'), 'three names\n');
    await link(join(tree, 'a', 'shared.txt'), join(tree, 'b', 'shared-too.txt'));
    await link(join(tree, 'a', 'shared.txt'), join(tree, 'also-shared.txt'));
    await writeFile(join(tree, 'b', 'plain.txt'), 'one name too\n');
    for (const dir of ['a', 'b', '.']) await utimes(join(tree, dir), past, past);

    const backup = await backupFiles(configFor([tree]), ctx);
    const [archive, result] = await Promise.all([buffer(streamOf(backup)), backup.done]);

    const rel = tree.slice(1);
    const listed = members(archive);
    // Every name once; the file of three names first, stored once, its other names as links to it.
    const linked = listed.slice(0, 3);
    expect(linked.map((entry) => entry.slice(2)).sort()).toEqual(
      [`${rel}/a/shared.txt`, `${rel}/also-shared.txt`, `${rel}/b/shared-too.txt`].sort(),
    );
    expect(linked.map((entry) => entry[0]).sort()).toEqual(['-', 'h', 'h']);
    expect(listed.slice(3).sort()).toEqual(
      [`d ${rel}/`, `d ${rel}/a/`, `d ${rel}/b/`, `- ${rel}/a/plain.txt`, `- ${rel}/b/plain.txt`].sort(),
    );
    expect(result.details).toMatchObject({ fileCount: 5, fileBytes: 12 + 9 + 13 });

    const target = join(work, 'restored');
    await restoreFiles(streamOf(await backupFiles(configFor([tree]), ctx)), { targetDir: target });
    const restored = join(target, tree);
    const names = ['a/shared.txt', 'b/shared-too.txt', 'also-shared.txt'].map((name) => join(restored, name));
    const stats = await Promise.all(names.map((name) => lstat(name)));
    expect(new Set(stats.map((stat) => stat.ino)).size).toBe(1);
    expect(stats[0]?.nlink).toBe(3);
    expect(await readFile(join(restored, 'b', 'plain.txt'), 'utf8')).toBe('one name too\n');
    // The directories' times hold although a file in them was written before them.
    for (const dir of ['a', 'b', '.']) expect((await lstat(join(restored, dir))).mtime).toEqual(past);
  });

  it('are stored once when a configured path is one of the names, and left out where excluded', async () => {
    const work = await tempDir('strongbox-links-paths-');
    await mkdir(join(work, 'tree', 'cache'), { recursive: true });
    await writeFile(join(work, 'named.txt'), 'named in the plan\n');
    await link(join(work, 'named.txt'), join(work, 'tree', 'also-named.txt'));
    await writeFile(join(work, 'tree', 'cache', 'blob'), 'excluded\n');
    await link(join(work, 'tree', 'cache', 'blob'), join(work, 'tree', 'kept-blob'));
    const config = { ...configFor([join(work, 'named.txt'), join(work, 'tree')]), exclude: ['cache'] };

    const backup = await backupFiles(config, ctx);
    const [archive, result] = await Promise.all([buffer(streamOf(backup)), backup.done]);

    const rel = work.slice(1);
    const listed = members(archive);
    expect(listed.filter((entry) => entry.endsWith('named.txt')).sort()).toEqual([
      `- ${rel}/named.txt`,
      `h ${rel}/tree/also-named.txt`,
    ]);
    // The other name of kept-blob is excluded: kept-blob is stored whole, once.
    expect(listed.filter((entry) => entry.includes('blob'))).toEqual([`- ${rel}/tree/kept-blob`]);
    expect(result.details).toMatchObject({ fileCount: 3 });
  });

  it('restore as someone other than root into directories without write permission', async () => {
    const work = await tempDir('strongbox-links-ro-');
    const tree = join(work, 'tree');
    // Two such directories: whichever tar archives first, it has left it when the other comes.
    const locked = ['locked-1', 'locked-2'];
    for (const dir of locked) {
      await mkdir(join(tree, dir), { recursive: true });
      await writeFile(join(tree, dir, 'one.txt'), 'one\n');
      await link(join(tree, dir, 'one.txt'), join(tree, dir, 'two.txt'));
      await writeFile(join(tree, dir, 'plain.txt'), 'plain\n');
      await chmod(join(tree, dir), 0o555);
    }
    const archive = await buffer(streamOf(await backupFiles(configFor([tree]), ctx)));
    for (const dir of locked) await chmod(join(tree, dir), 0o755);
    const target = join(work, 'restored');
    await mkdir(target);
    await chmod(target, 0o777);
    await chmod(work, 0o711);

    // A plain tar as an unprivileged user keeps a directory writable until its members are in, which
    // holds only if no member comes back to the directory after tar left it.
    const extract = ['tar', '-x', '-f', '-', '-C', target];
    const [command, ...args] =
      process.getuid?.() === 0 ? ['runuser', '-u', 'nobody', '--', ...extract] : extract;
    execFileSync(command as string, args, { input: archive });

    for (const dir of locked) {
      const restored = join(target, tree, dir);
      expect((await lstat(restored)).mode & 0o777).toBe(0o555);
      expect((await lstat(join(restored, 'two.txt'))).nlink).toBe(2);
      expect(await readFile(join(restored, 'plain.txt'), 'utf8')).toBe('plain\n');
      await chmod(restored, 0o755);
    }
  });
});

describe('many files', () => {
  /** Backs up `count` empty files through a `tar` on PATH that records each tar's peak RSS (KiB). */
  async function tarPeak(count: number): Promise<number> {
    expect(
      existsSync('/usr/bin/time'),
      'this test reads tar’s peak with GNU time: apt-get install time',
    ).toBe(true);
    const work = await tempDir('strongbox-many-');
    const tree = join(work, 'tree');
    await mkdir(tree);
    // Long names (~110 bytes): what tar would remember of each file is mostly its name.
    const names = `seq -f 'a-file-with-a-long-name-${'x'.repeat(80)}-%06g.conf' 1 1000`;
    execFileSync('bash', [
      '-c',
      `cd ${tree} && for d in $(seq 1 ${count / 1000}); do mkdir d$d && (cd d$d && ${names} | xargs touch); done`,
    ]);
    const bin = join(work, 'bin');
    const log = join(work, 'tar-rss');
    await mkdir(bin);
    await writeFile(
      join(bin, 'tar'),
      `#!/bin/sh\nexec /usr/bin/time -a -o ${log} -f %M /usr/bin/tar "$@"\n`,
      {
        mode: 0o755,
      },
    );
    process.env.PATH = `${bin}:${originalPath}`;
    const backup = await backupFiles(configFor([tree]), ctx);
    const [, result] = await Promise.all([buffer(streamOf(backup)), backup.done]);
    expect(result.details.fileCount).toBe(count);
    const peaks = (await readFile(log, 'utf8')).trim().split('\n').map(Number);
    return Math.max(...peaks);
  }

  it('leave GNU tar’s memory flat: 30,000 files cost it no more than 1,000', async () => {
    const few = await tarPeak(1000);
    const many = await tarPeak(30_000);

    // Remembering each file would cost ~200 bytes a file here: 5.7 MiB more at 30,000.
    expect(many - few).toBeLessThan(2048);
  }, 120_000);
});
