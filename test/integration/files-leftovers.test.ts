/**
 * What an interrupted backup leaves in a file vault — an agent killed with SIGKILL mid-upload leaves a
 * `.partial-*` file nothing else removes — is removed by `prune` and by the next backup of the job, once
 * it is older than the job's timeout (so it cannot belong to a backup still running).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { listCommand } from '#agent/commands/list';
import { pruneCommand } from '#agent/commands/prune';
import { openRuntime } from '#agent/runtime';
import { findJob } from '#core/plan';
import { writeFileVaultPlan } from '#test/support/cli';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
let work: string;
let plan: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strongbox-leftovers-'));
  await mkdir(join(work, 'data'));
  await run('dd', ['if=/dev/urandom', `of=${join(work, 'data', 'weights.bin')}`, 'bs=1M', 'count=256']);
  plan = await writeFileVaultPlan(
    work,
    `  - name: models
    timeout: 1h
    source: { kind: files, paths: ["${join(work, 'data')}"] }`,
  );
}, 60_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Every partial file in the vault, as paths relative to it. */
async function partials(): Promise<string[]> {
  const names = await readdir(join(work, 'vault'), { recursive: true }).catch(() => [] as string[]);
  return names.filter((name) => /\.partial-[0-9a-f]{16}$/.test(name));
}

/** Runs `strongbox backup` and kills it with SIGKILL once its data object is being written. */
async function killedBackup(): Promise<void> {
  const cli = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'agent', 'main.ts'), 'backup', '--plan', plan, '--job', 'models'],
    { cwd: root, stdio: 'ignore' },
  );
  const exited = new Promise((resolve) => cli.once('exit', resolve));
  const until = Date.now() + 60_000;
  while ((await partials()).length === 0) {
    if (Date.now() > until) throw new Error('the backup never started writing');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  cli.kill('SIGKILL');
  await exited;
}

const hoursLater = (hours: number) => ({ now: () => new Date(Date.now() + hours * 3600_000) });

describe('partial files of a killed backup', () => {
  it('are listed by prune --dry-run, removed by prune, and never while they may be in use', async () => {
    await killedBackup();
    const left = await partials();
    expect(left).toHaveLength(1);
    // list --all shows it (plain list does not), however recent.
    const listed = await listCommand(await openRuntime(plan, {}), { jobs: ['models'], all: true });
    expect((listed.json as { unfinished: { key: string }[] }).unfinished.map((u) => u.key)).toEqual([
      expect.stringMatching(/^backups\/models\/\S+\/data\.zst\.sbx$/),
    ]);
    expect(listed.text).toMatch(/models: unfinished write backups\/models\/\S+\/data\.zst\.sbx/);
    expect((await listCommand(await openRuntime(plan, {}), { jobs: ['models'] })).text).not.toMatch(
      /unfinished/,
    );

    const early = await pruneCommand(await openRuntime(plan, {}), { jobs: ['models'] });
    expect((early.json as { abandoned: unknown[] }).abandoned).toEqual([]);
    expect(await partials()).toEqual(left);

    const dry = await pruneCommand(await openRuntime(plan, {}, { clock: hoursLater(2) }), {
      jobs: ['models'],
      dryRun: true,
    });
    expect((dry.json as { abandoned: { key: string }[] }).abandoned.map((a) => a.key)).toEqual([
      expect.stringMatching(/^backups\/models\/\S+\/data\.zst\.sbx$/),
    ]);
    expect(await partials()).toEqual(left);

    const pruned = await pruneCommand(await openRuntime(plan, {}, { clock: hoursLater(2) }), {
      jobs: ['models'],
    });
    expect(pruned.text).toMatch(/deleted unfinished write backups\/models\//);
    expect(await partials()).toEqual([]);
  }, 120_000);

  it('are removed by the next backup of the job', async () => {
    await killedBackup();
    expect(await partials()).toHaveLength(1);
    const runtime = await openRuntime(plan, {}, { clock: hoursLater(2) });

    const result = await runBackup(runtime, findJob(runtime.plan, 'models'));

    expect(result.objects).toBe(1);
    expect(await partials()).toEqual([]);
  }, 120_000);
});
