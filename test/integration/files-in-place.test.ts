/**
 * Files restores of chosen paths (`--path`) and over the original locations (`--in-place`), through the
 * real CLI on the real file system: only the chosen paths come back; in place, what is overwritten is
 * kept beside and named, what is not in the backup stays unless `--delete` (never what the job
 * excludes), the restored tree matches the source by rsync's own comparison, and a move that fails
 * half-way undoes every move (the test makes a directory immutable with chattr, so it needs root).
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { strongbox, writeFileVaultPlan } from '#test/support/cli';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
let work: string;
let app: string;
let pristine: string;
let plan: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strongbox-in-place-'));
  app = join(work, 'etc', 'app');
  await mkdir(join(app, 'conf.d'), { recursive: true });
  await mkdir(join(app, 'zz.d'));
  await mkdir(join(app, 'cache'));
  await writeFile(join(app, 'app.conf'), 'listen = 8080\n');
  await writeFile(join(app, 'conf.d', 'a.conf'), 'a = 1\n');
  await writeFile(join(app, 'zz.d', 'z.conf'), 'z = 1\n');
  await writeFile(join(app, 'secret.key'), 'k\n');
  await chmod(join(app, 'secret.key'), 0o600);
  await symlink('app.conf', join(app, 'current'));
  await writeFile(join(app, 'cache', 'blob'), 'cached\n');
  // What the backup holds, as the source was (rsync compares the restored tree with this copy).
  pristine = join(work, 'pristine');
  await run('cp', ['-a', app, pristine]);
  await rm(join(pristine, 'cache'), { recursive: true });
  plan = await writeFileVaultPlan(
    work,
    `  - name: app-config
    source: { kind: files, paths: ["${app}"], exclude: [cache] }`,
  );
  const made = await strongbox(['backup', '--plan', plan, '--job', 'app-config']);
  expect(made.code, made.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  if (work) {
    await run('chattr', ['-i', join(app, 'zz.d')]).catch(() => {});
    await rm(work, { recursive: true, force: true });
  }
});

/** What the live tree looks like after an operator's changes since the backup. */
async function drift(): Promise<void> {
  await writeFile(join(app, 'app.conf'), 'listen = 9999 # broken edit\n');
  await rm(join(app, 'conf.d', 'a.conf'), { force: true });
  await rm(join(app, 'zz.d', 'z.conf'), { force: true });
  await writeFile(join(app, 'conf.d', 'new.conf'), 'added after the backup\n');
  await writeFile(join(app, 'cache', 'blob'), 'cached, newer\n');
}

/** rsync's own list of differences between the backed-up tree and the live one (empty: identical). */
async function differences(options: string[] = []): Promise<string[]> {
  const { stdout } = await run('rsync', [
    '-aHAXn',
    '--checksum',
    '--numeric-ids',
    '--omit-dir-times',
    '--itemize-changes',
    ...options,
    `${pristine}/`,
    `${app}/`,
  ]);
  return stdout.split('\n').filter(Boolean);
}

const restore = (...args: string[]) =>
  strongbox(['restore', '--plan', plan, '--job', 'app-config', ...args, '--json']);

describe('restore --path', () => {
  it('restores only the chosen file, below the target as the full restore would place it', async () => {
    const target = join(work, 'one-file');
    const result = await restore('--path', join(app, 'app.conf'), '--target', target);
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(target, app, 'app.conf'), 'utf8')).toBe('listen = 8080\n');
    expect((await readdir(join(target, app))).sort()).toEqual(['app.conf']);
    expect(result.json.checks[0].detail).toMatch(/chosen paths only/);
  });

  it('restores a directory with what is below it, and several paths', async () => {
    const target = join(work, 'two-paths');
    const result = await restore(
      '--path',
      join(app, 'conf.d'),
      '--path',
      join(app, 'current'),
      '--target',
      target,
    );
    expect(result.code, result.stderr).toBe(0);
    expect((await readdir(join(target, app))).sort()).toEqual(['conf.d', 'current']);
    expect(await readFile(join(target, app, 'conf.d', 'a.conf'), 'utf8')).toBe('a = 1\n');
  });

  it('refuses a path that is not in the backup, naming it, and leaves no target behind', async () => {
    const target = join(work, 'missing-path');
    const result = await restore('--path', join(app, 'nope.conf'), '--target', target);
    expect(result.code).toBe(2);
    expect(result.lastError).toMatch(/^strongbox: error: .*nope\.conf: Not found in archive/);
    await expect(readdir(target)).rejects.toThrow(/ENOENT/);
  });

  it.each([
    [['--path', 'etc/app'], "path[0]: 'etc/app' must be an absolute path"],
    [['--path', '/etc/app/../x', '--target', '/tmp/x'], "must not contain '..'"],
    [['--delete', '--target', '/tmp/x'], 'delete: --delete removes what is not in the backup'],
    [['--in-place'], 'confirm: restoring over the original locations needs --confirm app-config'],
    [['--in-place', '--confirm', 'app-config', '--target', '/tmp/x'], 'target: --in-place restores'],
  ])('refuses %j before anything starts', async (args, message) => {
    const result = await strongbox(['restore', '--plan', plan, '--job', 'app-config', ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });
});

describe('restore --in-place', () => {
  it('brings back what the backup holds, keeps what it overwrote beside, and keeps what is new', async () => {
    await drift();
    const result = await restore('--in-place', '--confirm', 'app-config');
    expect(result.code, result.stderr).toBe(0);
    expect(result.json).toMatchObject({ mode: 'in-place', target: app });
    const kept = result.json.keptAs as string;
    expect(kept).toMatch(new RegExp(`^${join(work, 'etc')}/\\.strongbox-kept-\\d{8}T\\d+Z$`));
    // The tree is the backup's again, by rsync; the file added since is still there (no --delete).
    expect(await differences()).toEqual([]);
    expect(await readFile(join(app, 'conf.d', 'new.conf'), 'utf8')).toBe('added after the backup\n');
    // What it overwrote is kept, at its path below the kept directory; the excluded cache is untouched.
    expect(await readFile(join(kept, app, 'app.conf'), 'utf8')).toBe('listen = 9999 # broken edit\n');
    expect(await readFile(join(app, 'cache', 'blob'), 'utf8')).toBe('cached, newer\n');
    // Nothing of the restore is left beside but the kept directory.
    expect((await readdir(join(work, 'etc'))).filter((n) => n.startsWith('.strongbox-'))).toEqual([
      kept.slice(kept.lastIndexOf('/') + 1),
    ]);
    await rm(kept, { recursive: true });
  });

  it('with --delete moves away what is not in the backup, but never what the job excludes', async () => {
    await drift();
    const result = await restore('--in-place', '--confirm', 'app-config', '--delete');
    expect(result.code, result.stderr).toBe(0);
    expect(await differences(['--delete', '--exclude=/cache'])).toEqual([]);
    const kept = result.json.keptAs as string;
    expect(await readFile(join(kept, app, 'conf.d', 'new.conf'), 'utf8')).toBe('added after the backup\n');
    expect(await readFile(join(app, 'cache', 'blob'), 'utf8')).toBe('cached, newer\n');
    await rm(kept, { recursive: true });
  });

  it('restores one chosen file in place and touches nothing else', async () => {
    await drift();
    const result = await restore('--in-place', '--confirm', 'app-config', '--path', join(app, 'app.conf'));
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(app, 'app.conf'), 'utf8')).toBe('listen = 8080\n');
    await expect(readFile(join(app, 'conf.d', 'a.conf'))).rejects.toThrow(/ENOENT/);
    expect(await readFile(join(app, 'conf.d', 'new.conf'), 'utf8')).toBe('added after the backup\n');
    await rm(result.json.keptAs, { recursive: true });
    // Back to the backup for the next case.
    expect((await restore('--in-place', '--confirm', 'app-config', '--delete')).code).toBe(0);
    for (const name of await readdir(join(work, 'etc')))
      if (name.startsWith('.strongbox-kept-')) await rm(join(work, 'etc', name), { recursive: true });
  });

  it('undoes every move when one fails half-way: the tree is as it was, nothing is left beside', async () => {
    if (!isRoot) throw new Error('this test makes a directory immutable (chattr +i) and so needs root');
    await drift();
    await run('cp', ['-a', app, join(work, 'snapshot')]);
    // app.conf and conf.d/a.conf move first (byte order); moving z.conf into the immutable zz.d fails.
    await run('chattr', ['+i', join(app, 'zz.d')]);
    try {
      const result = await restore('--in-place', '--confirm', 'app-config');
      expect(result.code).toBe(2);
      expect(result.lastError).toMatch(
        /restoring in place failed \(.*\); every change was undone \(\d+ moves\)/,
      );
    } finally {
      await run('chattr', ['-i', join(app, 'zz.d')]);
    }
    const { stdout } = await run('rsync', [
      '-aHAXn',
      '--checksum',
      '--itemize-changes',
      '--delete',
      '--omit-dir-times',
      `${join(work, 'snapshot')}/`,
      `${app}/`,
    ]);
    expect(stdout.split('\n').filter(Boolean)).toEqual([]);
    expect(await readFile(join(app, 'app.conf'), 'utf8')).toBe('listen = 9999 # broken edit\n');
    expect((await readdir(join(work, 'etc'))).filter((n) => n.startsWith('.strongbox-'))).toEqual([]);
  });
});
