/**
 * Files backups of live trees, on the real file system: a writer process appends to a log and files
 * are deleted and truncated while tar reads them. The backup completes, names every file that changed
 * or vanished (a warning, exit 1, recorded in the manifest), and restores. A file the agent may not read
 * is a warning or an error, as the plan says (the CLI runs as `nobody` for that: root reads everything).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupCommand } from '#agent/commands/backup';
import { listCommand } from '#agent/commands/list';
import { verifyCommand } from '#agent/commands/verify';
import { openRuntime } from '#agent/runtime';
import { backupFiles, restoreFiles } from '#agent/sources/files/index';
import { readManifest } from '#core/catalog';
import { strongbox, writeFileVaultPlan } from '#test/support/cli';

const isRoot = process.getuid?.() === 0;
let work: string;
let writer: ChildProcess | undefined;

/** Runs the CLI as `nobody` (root reads every file, so only another user meets "Permission denied"). */
function asNobody(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const main = join(import.meta.dirname, '..', '..', 'agent', 'main.ts');
  return new Promise((resolve) => {
    execFile(
      'runuser',
      ['-u', 'nobody', '--', process.execPath, '--import', 'tsx', main, ...args],
      { cwd: join(import.meta.dirname, '..', '..') },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** 64 MiB files, so tar is still reading them when the writer strikes. */
const BIG = 64 * 1024 * 1024;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strongbox-live-'));
});

afterAll(async () => {
  writer?.kill('SIGKILL');
  if (work) await rm(work, { recursive: true, force: true });
});

/** A tree: a big log that keeps growing, a big file that shrinks, files that vanish. */
async function liveTree(root: string): Promise<void> {
  await mkdir(join(root, 'logs'), { recursive: true });
  await mkdir(join(root, 'spool'), { recursive: true });
  await writeFile(join(root, 'logs', 'app.log'), Buffer.alloc(BIG, 'a'));
  await writeFile(join(root, 'logs', 'shrinking.bin'), Buffer.alloc(BIG, 'b'));
  for (let i = 0; i < 50; i++) await writeFile(join(root, 'spool', `job-${i}.msg`), `message ${i}\n`);
  await writeFile(join(root, 'spool', 'keep.conf'), 'stays\n');
}

/** A consumer that reads slowly at first, so tar is mid-file when the writer acts; `onStart` runs once. */
function slowSink(onStart: () => Promise<void>): Writable {
  let started = false;
  let seen = 0;
  return new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (!started) {
        started = true;
        void onStart().then(() => callback(), callback);
        return;
      }
      if (seen < 16 * 1024 * 1024) setTimeout(callback, 1);
      else callback();
    },
  });
}

describe('a files backup of a tree that changes while it is read', () => {
  it('completes, names what changed and vanished, and restores what it read', async () => {
    const root = join(work, 'tree');
    await liveTree(root);
    const backup = await backupFiles(
      { kind: 'files', paths: [join(root, 'logs'), join(root, 'spool')], exclude: [], unreadable: 'error' },
      { env: {} },
    );
    const chunks: Buffer[] = [];
    const object = (await backup.objects[Symbol.asyncIterator]().next()).value;
    const tee = object.stream.on('data', (c: Buffer) => chunks.push(c));
    const sink = slowSink(async () => {
      // The writer: a process appending to the log for as long as the backup runs.
      writer = spawn(
        'sh',
        ['-c', `while :; do echo "$(date +%s%N) request" >> '${join(root, 'logs', 'app.log')}'; done`],
        {
          stdio: 'ignore',
        },
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      await truncate(join(root, 'logs', 'shrinking.bin'), 1024);
      for (let i = 0; i < 50; i++) await unlink(join(root, 'spool', `job-${i}.msg`));
    });

    const [result] = await Promise.all([backup.done, pipeline(tee, sink)]);
    writer?.kill('SIGKILL');

    const warnings = result.warnings ?? [];
    expect(warnings).toContain(`${join(root, 'logs', 'app.log')}: file changed as we read it`);
    expect(warnings.some((w) => w.startsWith(`${join(root, 'logs', 'shrinking.bin')}: File shrank by`))).toBe(
      true,
    );
    expect(warnings.filter((w) => /spool\/job-\d+\.msg: /.test(w)).length).toBeGreaterThan(0);
    const target = join(work, 'restored');
    await restoreFiles(Readable.from(chunks), { targetDir: target });
    const copy = join(target, root);
    expect((await readFile(join(copy, 'logs', 'app.log'))).length).toBeGreaterThanOrEqual(BIG);
    expect((await readFile(join(copy, 'logs', 'shrinking.bin'))).length).toBe(BIG);
    expect(await readFile(join(copy, 'spool', 'keep.conf'), 'utf8')).toBe('stays\n');
  }, 120_000);
});

describe('the backup command with a live tree', () => {
  it('exits 1 naming the files and records them in the manifest', async () => {
    const root = join(work, 'cmd-tree');
    await liveTree(root);
    const plan = await writeFileVaultPlan(
      work,
      `  - name: live
    source: { kind: files, paths: ["${join(root, 'logs')}"] }`,
    );
    const runtime = await openRuntime(plan, {});
    // The writer appends for as long as the backup runs: tar sees the log change while it reads it.
    const appender = spawn(
      'sh',
      ['-c', `while :; do echo "$(date +%s%N) request" >> '${join(root, 'logs', 'app.log')}'; done`],
      { stdio: 'ignore' },
    );
    await new Promise((resolve) => setTimeout(resolve, 100));

    const outcome = await backupCommand(runtime, { jobs: ['live'] }).finally(() => appender.kill('SIGKILL'));

    expect(outcome.exitCode).toBe(1);
    expect(outcome.text).toMatch(/warning: live \S+: .*app\.log: file changed as we read it/);
    const json = outcome.json as { backupId: string; warnings?: string[] };
    const manifest = await readManifest(runtime.vault, 'live', json.backupId);
    expect(manifest.warnings).toEqual(json.warnings);
    expect(manifest.warnings).toContain(`${join(root, 'logs', 'app.log')}: file changed as we read it`);

    // list and verify show them: the backup is complete and restores, so verify says it as info.
    const list = await listCommand(runtime, { jobs: ['live'] });
    expect(list.text).toMatch(new RegExp(`${json.backupId}\\s.*\\scomplete, \\d+ warnings?`));
    expect(list.text).toContain(
      `live ${json.backupId}: warning: ${join(root, 'logs', 'app.log')}: file changed`,
    );
    expect((list.json as { backups: { warnings?: string[] }[] }).backups[0]?.warnings).toEqual(
      manifest.warnings,
    );
    const verify = await verifyCommand(runtime, { jobs: ['live'] });
    expect(verify.exitCode).toBe(0);
    expect(verify.text).toMatch(
      new RegExp(
        `INFO  live: backup ${json.backupId} stored \\d+ entr(y|ies) not exactly as asked: .*app\\.log: file changed as we read it`,
      ),
    );
  }, 120_000);
});

describe('a file the agent may not read', () => {
  it.each([
    ['warning', 1],
    ['error', 2],
  ] as const)(
    'with unreadable: %s exits %i and names the file',
    async (policy, code) => {
      if (!isRoot) throw new Error('this test runs the CLI as nobody and so needs root');
      const dir = join(work, `perm-${policy}`);
      await mkdir(join(dir, 'tree'), { recursive: true });
      await writeFile(join(dir, 'tree', 'open.txt'), 'anyone\n');
      await writeFile(join(dir, 'tree', 'root-only.key'), 'secret\n');
      await chmod(join(dir, 'tree', 'root-only.key'), 0o600);
      await writeFile(
        join(dir, 'plan.yaml'),
        `version: 1
vault: { url: "file://${join(dir, 'vault')}" }
key: { type: local, path: master.key }
retention: { daily: 7d, weekly: 5w, monthly: 12mo, yearly: 7y }
jobs:
  - name: perm
    source: { kind: files, paths: ["${join(dir, 'tree')}"], unreadable: ${policy} }
`,
      );
      expect((await strongbox(['keygen', join(dir, 'master.key')])).code).toBe(0);
      await mkdir(join(dir, 'vault'));
      for (const path of [dir, join(dir, 'vault'), join(dir, 'master.key')]) await chown(path, 65534, 65534);
      await chmod(work, 0o755);

      const result = await asNobody(['backup', '--plan', join(dir, 'plan.yaml'), '--job', 'perm']);

      expect(result.code, result.stderr).toBe(code);
      expect(`${result.stdout}${result.stderr}`).toContain(
        `${join(dir, 'tree', 'root-only.key')}: Cannot open: Permission denied`,
      );
    },
    120_000,
  );
});
