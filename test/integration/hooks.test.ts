/**
 * A job's before/after hooks with real shell commands: before runs first and its failure (or timeout)
 * stops the backup before the source starts; after always runs, told how the backup went; a failing
 * after hook fails the run without undoing a complete backup.
 */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { listBackups } from '#core/catalog';
import { SourceError } from '#core/errors';
import type { Job } from '#core/plan';
import { testRuntime } from '#test/support/runtime';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strongbox-hooks-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** A job whose backup is `cat` of a file the before hook makes, logging every step to `log`. */
function hookedJob(dir: string, hooks: { before?: unknown[]; after?: unknown[] }, backup?: unknown) {
  const log = join(dir, 'log');
  return {
    log,
    job: {
      name: 'hooked',
      source: {
        kind: 'command',
        backup: backup ?? { shell: `echo backup >> ${log}; cat ${join(dir, 'snapshot')}` },
        restore: { argv: ['cat'] },
      },
      hooks,
    },
  };
}

const logAfter = (log: string) => ({
  shell: `echo "after $STRONGBOX_JOB $STRONGBOX_HOOK $STRONGBOX_BACKUP_STATUS $STRONGBOX_BACKUP_ID" >> ${log}`,
});

async function lines(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8').catch(() => ''))
    .split('\n')
    .map((l) => l.trimEnd())
    .filter(Boolean);
}

it('runs before hooks first, then the backup, then after hooks told the backup id', async () => {
  const dir = await mkdtemp(join(work, 'ok-'));
  const { job, log } = hookedJob(dir, {
    before: [
      { shell: `echo before >> ${dir}/log; echo snapshot-data > ${dir}/snapshot`, timeout: '10s' },
      { argv: ['sh', '-c', `echo "before2 $STRONGBOX_HOOK" >> ${dir}/log`] },
    ],
    after: [logAfter(join(dir, 'log'))],
  });
  const { runtime, dir: runtimeDir } = await testRuntime({ jobs: [job] });
  try {
    const result = await runBackup(runtime, runtime.plan.jobs[0] as Job);
    expect(result.sourceBytes).toBe('snapshot-data\n'.length);
    expect(await lines(log)).toEqual([
      'before',
      'before2 before',
      'backup',
      `after hooked after ok ${result.backupId}`,
    ]);
  } finally {
    await rm(runtimeDir, { recursive: true, force: true });
  }
});

it.each([
  [
    'fails',
    { shell: 'echo cannot quiesce >&2; exit 3' },
    /hooks\.before\[0\].*exited with status 3:\ncannot quiesce/s,
  ],
  [
    'exceeds its timeout',
    { shell: 'sleep 30', timeout: '1s' },
    /hooks\.before\[0\].*exceeded its timeout of 1s/s,
  ],
])(
  'a before hook that %s fails the backup cleanly: no source run, nothing stored, after still runs',
  async (_what, hook, message) => {
    const dir = await mkdtemp(join(work, 'before-'));
    const { job, log } = hookedJob(dir, {
      before: [hook, { shell: `echo second >> ${dir}/log` }],
      after: [logAfter(join(dir, 'log'))],
    });
    const { runtime, dir: runtimeDir, fileVault } = await testRuntime({ jobs: [job] });
    try {
      const started = Date.now();
      const attempt = runBackup(runtime, runtime.plan.jobs[0] as Job);
      await expect(attempt).rejects.toBeInstanceOf(SourceError);
      await expect(attempt).rejects.toThrow(message);
      await expect(attempt).rejects.toThrow(/the backup of hooked was not started/);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(await lines(log)).toEqual(['after hooked after failed']);
      expect(await listBackups(fileVault, 'hooked')).toEqual([]);
      expect(await readdir(join(runtimeDir, 'vault')).catch(() => [])).toEqual([]);
    } finally {
      await rm(runtimeDir, { recursive: true, force: true });
    }
  },
);

it('runs after hooks when the backup itself fails, and reports the backup error', async () => {
  const dir = await mkdtemp(join(work, 'backup-fails-'));
  const { job, log } = hookedJob(dir, { after: [logAfter(join(dir, 'log'))] }, { argv: ['true'] });
  const { runtime, dir: runtimeDir } = await testRuntime({ jobs: [job] });
  try {
    await expect(runBackup(runtime, runtime.plan.jobs[0] as Job)).rejects.toThrow(/wrote nothing/);
    expect(await lines(log)).toEqual(['after hooked after failed']);
  } finally {
    await rm(runtimeDir, { recursive: true, force: true });
  }
});

it('fails the run when an after hook fails, keeping the complete backup and running the other after hooks', async () => {
  const dir = await mkdtemp(join(work, 'after-fails-'));
  const { job, log } = hookedJob(dir, {
    before: [{ shell: `echo data > ${dir}/snapshot` }],
    after: [{ shell: 'echo cannot resume >&2; exit 5' }, logAfter(join(dir, 'log'))],
  });
  const { runtime, dir: runtimeDir, fileVault } = await testRuntime({ jobs: [job] });
  try {
    const attempt = runBackup(runtime, runtime.plan.jobs[0] as Job);
    await expect(attempt).rejects.toThrow(
      /backup \S+ of hooked is complete, but .*hooks\.after\[0\].*exited with status 5:\ncannot resume/s,
    );
    const backups = await listBackups(fileVault, 'hooked');
    expect(backups).toHaveLength(1);
    expect(backups[0]?.complete).toBe(true);
    expect((await lines(log)).at(-1)).toMatch(/^after hooked after ok \d/);
  } finally {
    await rm(runtimeDir, { recursive: true, force: true });
  }
});

it('runs after hooks even when the backup is aborted', async () => {
  const dir = await mkdtemp(join(work, 'aborted-'));
  const controller = new AbortController();
  const { job, log } = hookedJob(dir, { after: [logAfter(join(dir, 'log'))] }, { shell: 'echo x; sleep 30' });
  const { runtime, dir: runtimeDir } = await testRuntime({ jobs: [job], signal: controller.signal });
  try {
    setTimeout(() => controller.abort(new Error('stopped by the operator')), 300);
    await expect(runBackup(runtime, runtime.plan.jobs[0] as Job)).rejects.toThrow();
    expect(await lines(log)).toEqual(['after hooked after failed']);
    await expect(stat(join(dir, 'snapshot'))).rejects.toThrow(/ENOENT/);
  } finally {
    await rm(runtimeDir, { recursive: true, force: true });
  }
});
