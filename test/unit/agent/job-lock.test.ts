/**
 * The job lock as a unit: taken and released, refused while its holder runs, and held by
 * `restore --replace` before anything of the restore starts (no database needed: the refusal comes first).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRestoreOptions, restoreCommand } from '#agent/commands/restore';
import { acquireJobLock, holderRuns, processStartOf } from '#agent/job-lock';
import { vaultScope } from '#agent/state';
import { JobLockedError } from '#core/errors';
import { testRuntime } from '#test/support/runtime';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function runtimeWithState() {
  const { runtime, dir } = await testRuntime({
    jobs: [{ name: 'db', source: { kind: 'postgres', database: 'app', host: '127.0.0.1', port: 1 } }],
  });
  dirs.push(dir);
  const stateDir = join(dir, 'state', 'not', 'there', 'yet');
  return { runtime: { ...runtime, env: { STRONGBOX_STATE_DIR: stateDir } }, stateDir };
}

describe('acquireJobLock', () => {
  it('creates the state directory, refuses a second holder and is free again once released', async () => {
    const { stateDir } = await runtimeWithState();
    const options = {
      stateDir,
      vault: 'v1',
      job: 'db',
      command: 'backup',
      now: new Date('2026-12-02T02:00:00Z'),
    };
    const lock = await acquireJobLock(options);
    await expect(acquireJobLock({ ...options, command: 'prune' })).rejects.toThrow(
      new JobLockedError(
        `job db is already running (backup, pid ${process.pid}, since 2026-12-02T02:00:00.000Z); this run changed nothing (lock ${lock.path})`,
      ),
    );
    // Another job of the same plan is not affected.
    const other = await acquireJobLock({ ...options, job: 'media' });
    await other.release();
    await lock.release();
    const again = await acquireJobLock(options);
    await again.release();
  });

  it('knows a running holder from a gone one', () => {
    const me = { pid: process.pid, host: 'h', command: 'backup', startedAt: '', token: 't' };
    expect(holderRuns({ ...me, processStart: processStartOf(process.pid) }, 'h')).toBe(true);
    expect(holderRuns({ ...me, processStart: 'not-my-start' }, 'h')).toBe(false);
    expect(holderRuns({ ...me, pid: 2 ** 22 + 1 }, 'h')).toBe(false);
    // A holder on another host cannot be checked from here: it is assumed to run.
    expect(holderRuns({ ...me, pid: 2 ** 22 + 1 }, 'elsewhere')).toBe(true);
  });
});

describe('restore --replace', () => {
  it('is refused while the job is running, before it touches anything', async () => {
    const { runtime, stateDir } = await runtimeWithState();
    const lock = await acquireJobLock({
      stateDir,
      vault: vaultScope(runtime.plan.vault),
      job: 'db',
      command: 'backup',
      now: new Date(),
    });
    await expect(
      restoreCommand(runtime, parseRestoreOptions({ job: 'db', replace: true, confirm: 'db' })),
    ).rejects.toThrow(/job db is already running \(backup, pid \d+/);
    await lock.release();
  });
});
