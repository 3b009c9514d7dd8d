/**
 * The files source against the real file system: a GNU tar stream piped straight into a restore keeps
 * modes, owners, mtimes and symbolic links and honours excludes; restores never overwrite anything and
 * leave nothing behind when they fail.
 */
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { create } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SourceContext } from '#agent/sources/context';
import { NAME_BATCH_BYTES } from '#agent/sources/files/backup';
import { backupFiles, checkFiles, filesDriver, restoreFiles } from '#agent/sources/files/index';
import { IntegrityError, RestoreError, SourceError } from '#core/errors';
import type { FilesSourceConfig } from '#core/sources/index';
import { streamOf } from '#test/support/sources';

const ctx: SourceContext = { env: {} };
const isRoot = process.getuid?.() === 0;
let work: string;
let app: string;
let media: string;

function configFor(paths: string[], exclude: string[] = []): FilesSourceConfig {
  return { kind: 'files', paths, exclude, unreadable: 'error' };
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const mtime = new Date('2023-04-05T06:07:08Z');

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strongbox-files-'));
  app = join(work, 'etc', 'app');
  media = join(work, 'srv', 'media');
  await mkdir(join(app, 'conf.d'), { recursive: true });
  await mkdir(join(app, 'cache'), { recursive: true });
  await mkdir(media, { recursive: true });
  await writeFile(join(app, 'secret.key'), 'k'.repeat(32));
  await chmod(join(app, 'secret.key'), 0o600);
  await writeFile(join(app, 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(app, 'run.sh'), 0o755);
  await writeFile(join(app, 'conf.d', 'app.yaml'), 'port: 8080\n');
  await chmod(join(app, 'conf.d', 'app.yaml'), 0o640);
  await chmod(join(app, 'conf.d'), 0o750);
  await symlink('conf.d/app.yaml', join(app, 'current.yaml'));
  await writeFile(join(app, 'shared.txt'), 'shared\n');
  await chmod(join(app, 'shared.txt'), 0o666);
  await writeFile(join(app, 'debug.log'), 'noise\n');
  await writeFile(join(app, 'cache', 'blob.bin'), Buffer.alloc(4096, 7));
  await writeFile(join(media, 'photo.jpg'), Buffer.alloc(100_000, 1));
  for (const file of ['secret.key', 'run.sh', 'conf.d/app.yaml']) await utimes(join(app, file), mtime, mtime);
  if (isRoot) await chown(join(app, 'secret.key'), 1234, 5678);
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('backupFiles → restoreFiles', () => {
  it('round-trips modes, owners, mtimes and symbolic links, and leaves excludes out', async () => {
    const config = configFor([app, media], ['*.log', `${app}/cache`]);
    const target = join(work, 'restored');
    // A live unix socket in the tree: not data, left out rather than failing the backup.
    const socketServer = createServer();
    await new Promise<void>((resolve) => socketServer.listen(join(app, 'app.sock'), resolve));

    const backup = await backupFiles(config, ctx);
    const [result] = await Promise.all([
      backup.done,
      restoreFiles(streamOf(backup), { targetDir: target }),
    ]).finally(() => new Promise((resolve) => socketServer.close(resolve)));

    expect(result.details).toEqual({
      kind: 'files',
      paths: [app, media],
      excluded: ['*.log', `${app}/cache`],
      fileCount: 5,
      fileBytes: 32 + 18 + 7 + 11 + 100_000,
    });
    expect(result.tools.tar).toMatch(/^tar \(GNU tar\) \d+\./);
    expect(result.warnings).toBeUndefined();
    const out = join(target, app);
    const modeOf = async (path: string) => (await lstat(path)).mode & 0o7777;
    expect(await modeOf(join(out, 'secret.key'))).toBe(0o600);
    expect(await modeOf(join(out, 'run.sh'))).toBe(0o755);
    expect(await modeOf(join(out, 'conf.d', 'app.yaml'))).toBe(0o640);
    expect(await modeOf(join(out, 'conf.d'))).toBe(0o750);
    expect(await modeOf(join(out, 'shared.txt'))).toBe(0o666);
    expect(await readlink(join(out, 'current.yaml'))).toBe('conf.d/app.yaml');
    expect(await readFile(join(out, 'current.yaml'), 'utf8')).toBe('port: 8080\n');
    expect((await lstat(join(out, 'run.sh'))).mtime.getTime()).toBe(mtime.getTime());
    expect((await lstat(join(out, 'conf.d', 'app.yaml'))).mtime.getTime()).toBe(mtime.getTime());
    if (isRoot) expect((await lstat(join(out, 'secret.key'))).uid).toBe(1234);
    if (isRoot) expect((await lstat(join(out, 'secret.key'))).gid).toBe(5678);
    expect((await readdir(out)).sort()).toEqual([
      'conf.d',
      'current.yaml',
      'run.sh',
      'secret.key',
      'shared.txt',
    ]);
    expect(await readFile(join(target, media, 'photo.jpg'))).toEqual(Buffer.alloc(100_000, 1));
    expect((await checkFiles(result.details as never, target)).flatMap((c) => c.findings)).toEqual([]);
  });

  it('stores paths relative to / and each path once when one contains another', async () => {
    const backup = await backupFiles(configFor([app, join(app, 'conf.d')], ['cache', '*.log']), ctx);
    const [result, archive] = await Promise.all([backup.done, collect(streamOf(backup))]);
    const names: string[] = [];
    const { Parser } = await import('tar');
    await new Promise<void>((resolve, reject) => {
      const parser = new Parser({
        onReadEntry: (entry) => {
          names.push(entry.path);
          entry.resume();
        },
      });
      parser.on('error', reject);
      parser.on('end', () => resolve());
      parser.end(archive);
    });

    expect(names).toContain(`${app.slice(1)}/conf.d/app.yaml`);
    expect(names.filter((n) => n.endsWith('app.yaml'))).toHaveLength(1);
    expect(names.every((n) => !n.startsWith('/'))).toBe(true);
    expect(result.details).toMatchObject({ fileCount: 4 });
  });

  it('expands globs in paths segment by segment and fails on a glob that matches nothing', async () => {
    const units = join(work, 'systemd');
    await mkdir(units, { recursive: true });
    for (const name of ['app.service', 'app-worker.service', 'other.service', 'app.timer']) {
      await writeFile(join(units, name), `[Unit]\nDescription=${name}\n`);
    }
    const backup = await backupFiles(configFor([join(units, 'app*.service')]), ctx);
    const target = join(work, 'globbed');

    const [result] = await Promise.all([backup.done, restoreFiles(streamOf(backup), { targetDir: target })]);

    expect((await readdir(join(target, units))).sort()).toEqual(['app-worker.service', 'app.service']);
    expect(result.details).toMatchObject({ paths: [join(units, 'app*.service')], fileCount: 2 });
    await expect(backupFiles(configFor([join(units, 'nope*.service')]), ctx)).rejects.toThrow(
      /matches nothing/,
    );
  });

  it('fails with the path when a configured path does not exist', async () => {
    const missing = join(work, 'nope');
    await expect(backupFiles(configFor([app, missing]), ctx)).rejects.toBeInstanceOf(SourceError);
    await expect(backupFiles(configFor([app, missing]), ctx)).rejects.toThrow(missing);
  });

  it('archives every name when the names fill several of the batches written to tar', async () => {
    const many = join(work, 'many');
    await mkdir(many);
    // Names of 100 to 199 bytes: their batches end at a different name each time, never on a boundary.
    const names = Array.from(
      { length: 1500 },
      (_, i) => `${String(i).padStart(4, '0')}-${'n'.repeat(96 + (i % 100))}`,
    );
    for (const name of names) await writeFile(join(many, name), name);
    const bytes = names.reduce((sum, name) => sum + many.length + name.length + 2, 0);
    expect(bytes).toBeGreaterThan(3 * NAME_BATCH_BYTES);
    const target = join(work, 'many-restored');

    const backup = await backupFiles(configFor([many]), ctx);
    const [result] = await Promise.all([backup.done, restoreFiles(streamOf(backup), { targetDir: target })]);

    expect((await readdir(join(target, many))).sort()).toEqual(names);
    expect(await readFile(join(target, many, names[1499] as string), 'utf8')).toBe(names[1499]);
    expect(result.details).toMatchObject({ fileCount: 1500 });
  });

  it('restores into an existing empty directory', async () => {
    const target = join(work, 'empty-target');
    await mkdir(target);
    const backup = await backupFiles(configFor([media]), ctx);

    await Promise.all([backup.done, restoreFiles(streamOf(backup), { targetDir: target })]);

    expect(await readFile(join(target, media, 'photo.jpg'))).toHaveLength(100_000);
  });
});

describe('restoreFiles refusals and failures', () => {
  let archive: Buffer;

  beforeAll(async () => {
    const backup = await backupFiles(configFor([app], ['*.log']), ctx);
    [, archive] = await Promise.all([backup.done, collect(streamOf(backup))]);
  });

  it('refuses a non-empty target and leaves it untouched', async () => {
    const target = join(work, 'occupied');
    await mkdir(target);
    await writeFile(join(target, 'keep.txt'), 'mine');

    const restoring = restoreFiles(Readable.from([archive]), { targetDir: target });

    await expect(restoring).rejects.toBeInstanceOf(RestoreError);
    await expect(restoring).rejects.toThrow(/not empty/);
    expect(await readdir(target)).toEqual(['keep.txt']);
    expect(await readFile(join(target, 'keep.txt'), 'utf8')).toBe('mine');
  });

  it('refuses a target that is a file', async () => {
    const target = join(work, 'a-file');
    await writeFile(target, 'x');
    await expect(restoreFiles(Readable.from([archive]), { targetDir: target })).rejects.toThrow(
      /not a directory/,
    );
    expect(await readFile(target, 'utf8')).toBe('x');
  });

  it('removes the target it created and rethrows when the input fails midway', async () => {
    const target = join(work, 'half');
    const broken = new IntegrityError('chunk 3 failed authentication');
    const input = Readable.from(
      (async function* () {
        yield archive.subarray(0, 4096);
        await new Promise((resolve) => setTimeout(resolve, 100));
        throw broken;
      })(),
    );

    await expect(restoreFiles(input, { targetDir: target })).rejects.toBe(broken);
    await expect(lstat(target)).rejects.toThrow(/ENOENT/);
  });

  it('fails and removes the target when the input fails after the archive end tar stops at', async () => {
    const target = join(work, 'late-failure');
    const broken = new IntegrityError('final chunk failed authentication');
    const input = Readable.from(
      (async function* () {
        yield archive;
        await new Promise((resolve) => setTimeout(resolve, 200));
        yield Buffer.alloc(10240);
        throw broken;
      })(),
    );

    await expect(restoreFiles(input, { targetDir: target })).rejects.toBe(broken);
    await expect(lstat(target)).rejects.toThrow(/ENOENT/);
  });

  it('empties but keeps an empty directory it was given when the input fails', async () => {
    const target = join(work, 'given');
    await mkdir(target);
    const broken = new IntegrityError('truncated');
    const input = Readable.from(
      (async function* () {
        yield archive.subarray(0, 8192);
        throw broken;
      })(),
    );

    await expect(restoreFiles(input, { targetDir: target })).rejects.toBe(broken);
    expect(await readdir(target)).toEqual([]);
  });

  it('fails on a truncated archive and removes what it extracted', async () => {
    const target = join(work, 'truncated');
    // Cut inside a file's content: tar meets the end of input in the middle of an entry.
    const cut = archive.indexOf('k'.repeat(32)) + 10;
    const restoring = restoreFiles(Readable.from([archive.subarray(0, cut)]), {
      targetDir: target,
    });
    await expect(restoring).rejects.toBeInstanceOf(RestoreError);
    await expect(lstat(target)).rejects.toThrow(/ENOENT/);
  });

  it('refuses entries that would escape the target with ..', async () => {
    const inner = join(work, 'evil', 'inner');
    await mkdir(inner, { recursive: true });
    await writeFile(join(work, 'evil', 'escape.txt'), 'gotcha');
    const evil = await collect(
      Readable.from(create({ cwd: inner, preservePaths: true }, ['../escape.txt']) as AsyncIterable<Buffer>),
    );
    const target = join(work, 'escape-target', 'deep');

    await expect(restoreFiles(Readable.from([evil]), { targetDir: target })).rejects.toBeInstanceOf(
      RestoreError,
    );
    await expect(lstat(join(work, 'escape-target', 'escape.txt'))).rejects.toThrow(/ENOENT/);
    await expect(lstat(target)).rejects.toThrow(/ENOENT/);
  });
});

describe('doctorFiles', () => {
  it('checks GNU tar and each path, saying how many paths a glob matches', async () => {
    const lines = await filesDriver.doctor(
      configFor([app, join(work, 'srv', '*'), join(work, 'missing')]),
      ctx,
    );
    expect(lines.map((l) => [l.subject, l.ok])).toEqual([
      ['tar', true],
      [app, true],
      [join(work, 'srv', '*'), true],
      [join(work, 'missing'), false],
    ]);
    expect(lines[0]?.detail).toMatch(/GNU tar/);
    expect(lines[2]?.detail).toBe('matches 1 path(s)');
  });
});

describe('checkFiles', () => {
  it('reports a file count and byte count that differ from the manifest', async () => {
    const [check] = await checkFiles(
      { kind: 'files', paths: [media], excluded: [], fileCount: 2, fileBytes: 5 },
      media,
    );
    expect(check?.passed).toBe(false);
    const findings = check?.findings ?? [];
    expect(findings.map((f) => [f.check, f.severity])).toEqual([
      ['file-count', 'critical'],
      ['file-bytes', 'critical'],
    ]);
    expect(findings[0]?.message).toMatch(/holds 1 files, the backup recorded 2/);
  });
});
