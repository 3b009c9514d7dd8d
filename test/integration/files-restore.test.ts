/**
 * Files restores that fail leave nothing: the target carries an incomplete marker until the extraction
 * is complete, a failed restore removes what it extracted, and a restore killed with SIGKILL (which
 * cannot clean up) is cleaned up by the next restore into the same directory, which then succeeds.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupFiles, INCOMPLETE_MARKER, restoreFiles } from '#agent/sources/files/index';
import { RestoreError } from '#core/errors';
import { strongbox, writeFileVaultPlan } from '#test/support/cli';
import { streamOf } from '#test/support/sources';

const run = promisify(execFile);
let work: string;
let source: string;
let plan: string;
let archive: Buffer;

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strongbox-restore-'));
  source = join(work, 'srv', 'models');
  await mkdir(join(source, 'small'), { recursive: true });
  for (let i = 0; i < 20; i++) await writeFile(join(source, 'small', `f${i}.txt`), `file ${i}\n`);
  // Incompressible, so the restore takes long enough to be killed in the middle.
  await run('dd', ['if=/dev/urandom', `of=${join(source, 'weights.bin')}`, 'bs=1M', 'count=192']);
  const backup = await backupFiles(
    { kind: 'files', paths: [join(source, 'small')], exclude: [], unreadable: 'error' },
    { env: {} },
  );
  [, archive] = await Promise.all([backup.done, collect(streamOf(backup))]);
  plan = await writeFileVaultPlan(
    work,
    `  - name: models
    source: { kind: files, paths: ["${source}"] }`,
  );
  const made = await strongbox(['backup', '--plan', plan, '--job', 'models']);
  expect(made.code, made.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the incomplete marker', () => {
  it('is in the target while the restore runs and gone once it is complete', async () => {
    const target = join(work, 'marked');
    const input = new PassThrough();
    const restoring = restoreFiles(input, { targetDir: target });
    input.write(archive.subarray(0, 4096));
    await waitFor(async () =>
      (await readdir(target).catch(() => [] as string[])).includes(INCOMPLETE_MARKER),
    );
    const marker = JSON.parse(await readFile(join(target, INCOMPLETE_MARKER), 'utf8'));
    expect(marker).toMatchObject({ pid: process.pid, created: true });

    input.end(archive.subarray(4096));
    await restoring;

    expect((await readdir(target)) as string[]).not.toContain(INCOMPLETE_MARKER);
    expect(await readFile(join(target, source, 'small', 'f3.txt'), 'utf8')).toBe('file 3\n');
  });

  it('makes a restore refuse a target another running restore holds', async () => {
    const target = join(work, 'held');
    await mkdir(target);
    const holder = spawn('sleep', ['30']);
    await writeFile(
      join(target, INCOMPLETE_MARKER),
      JSON.stringify({ pid: holder.pid, startedAt: new Date().toISOString(), created: true }),
    );
    await writeFile(join(target, 'partial.bin'), 'half');
    try {
      const restoring = restoreFiles(Readable.from([archive]), { targetDir: target });
      await expect(restoring).rejects.toBeInstanceOf(RestoreError);
      await expect(restoring).rejects.toThrow(new RegExp(`process ${holder.pid}`));
      expect((await readdir(target)).sort()).toEqual([INCOMPLETE_MARKER, 'partial.bin']);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('a restore killed with SIGKILL', () => {
  it('leaves a marked target that the next restore clears and fills', async () => {
    const target = join(work, 'killed');
    const cli = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(import.meta.dirname, '..', '..', 'agent', 'main.ts'),
        'restore',
        '--plan',
        plan,
        '--job',
        'models',
        '--target',
        target,
      ],
      { cwd: join(import.meta.dirname, '..', '..'), stdio: 'ignore' },
    );
    const exited = new Promise((resolve) => cli.once('exit', resolve));
    // Kill once the big file is partly written: mid-extraction, nothing can clean up.
    await waitFor(async () => {
      const size = await run('du', ['-sb', target]).then(
        (r) => Number(r.stdout.split('\t')[0]),
        () => 0,
      );
      return size > 8 * 1024 * 1024;
    }, 60_000);
    cli.kill('SIGKILL');
    await exited;
    expect(await readdir(target)).toContain(INCOMPLETE_MARKER);

    const again = await strongbox([
      'restore',
      '--plan',
      plan,
      '--job',
      'models',
      '--target',
      target,
      '--json',
    ]);

    expect(again.code, again.stderr).toBe(0);
    expect(again.json.findings).toEqual([]);
    expect((await readdir(target)) as string[]).not.toContain(INCOMPLETE_MARKER);
    const diff = await run('rsync', [
      '-aHAXn',
      '--checksum',
      '--delete',
      '--itemize-changes',
      `${source}/`,
      `${join(target, source)}/`,
    ]);
    expect(diff.stdout).toBe('');
  }, 120_000);
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
