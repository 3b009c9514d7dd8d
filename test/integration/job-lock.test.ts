/**
 * One run of a job at a time, through the real CLI: a second backup of a job that is still being backed
 * up is refused (exit 75, one error line naming the running pid) and leaves nothing in the vault; a lock
 * left by a dead process, or by a pid the kernel has since given to another process, is taken over; a
 * prune that would delete waits for no one and refuses while the job runs; a fresh host's state
 * directory is created.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LockHolder, processStartOf } from '#agent/job-lock';
import { JOB_LOCKED_EXIT } from '#core/errors';
import { strongbox, writeFileVaultPlan } from '#test/support/cli';

let work: string;
let plan: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'strongbox-lock-'));
  // `slow` writes its data after 4 s, long enough for a second run to start beside it.
  plan = await writeFileVaultPlan(
    work,
    `  - name: slow
    source:
      kind: command
      backup: { shell: "sleep 4; echo slow-data" }
      restore: { argv: [cat] }
  - name: quick
    source:
      kind: command
      backup: { shell: "echo quick-data" }
      restore: { argv: [cat] }`,
  );
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** A state directory that does not exist yet, two levels deep. */
async function freshState(name: string): Promise<string> {
  return join(work, name, 'var', 'strongbox');
}

async function backupsOf(job: string): Promise<string[]> {
  return readdir(join(work, 'vault', 'backups', job)).catch(() => []);
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

function lockPath(state: string, job: string): string {
  return join(state, 'locks', `strongbox.${job}.lock`);
}

async function writeLock(state: string, job: string, holder: Partial<LockHolder>): Promise<void> {
  await mkdir(join(state, 'locks'), { recursive: true });
  const record: LockHolder = {
    pid: process.pid,
    host: hostname(),
    command: 'backup',
    startedAt: '2026-12-01T02:00:00.000Z',
    processStart: processStartOf(process.pid),
    token: 'planted',
    ...holder,
  };
  await writeFile(lockPath(state, job), JSON.stringify(record));
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid as number;
}

describe('job lock', () => {
  it('refuses a second backup of a running job and keeps it out of the vault', async () => {
    // Prepare: a state directory that a fresh host does not have yet.
    const state = await freshState('concurrent');
    const env = { STRONGBOX_STATE_DIR: state };
    // Act: the first backup runs; once it holds the lock, a second one starts.
    const first = strongbox(['backup', '--plan', plan, '--job', 'slow', '--json'], env);
    await until(() => exists(lockPath(state, 'slow')), 'the first backup to take its lock');
    const second = await strongbox(['backup', '--plan', plan, '--job', 'slow', '--json'], env);
    // Assess: the second is refused at once, naming who runs; the first completes alone.
    expect(second.code).toBe(JOB_LOCKED_EXIT);
    expect(second.lastError).toMatch(
      /^strongbox: error: backup slow: job slow is already running \(backup, pid \d+, since .+\); this run changed nothing/,
    );
    expect(second.json.error.kind).toBe('locked');
    const done = await first;
    expect(done.code, done.stderr).toBe(0);
    expect(await backupsOf('slow')).toEqual([done.json.backupId]);
    // The lock is gone once the run ended: the next backup runs.
    expect(await exists(lockPath(state, 'slow'))).toBe(false);
    const next = await strongbox(['backup', '--plan', plan, '--job', 'slow', '--json'], env);
    expect(next.code, next.stderr).toBe(0);
    expect(await backupsOf('slow')).toHaveLength(2);
  });

  it('locks each job on its own: another job of the plan runs meanwhile', async () => {
    const state = await freshState('per-job');
    await writeLock(state, 'slow', {});
    const other = await strongbox(['backup', '--plan', plan, '--job', 'quick', '--json'], {
      STRONGBOX_STATE_DIR: state,
    });
    expect(other.code, other.stderr).toBe(0);
  });

  it('refuses while the holder runs, in a several-job run too, and names the job', async () => {
    // Prepare: this test process holds the lock of `slow`, as a running backup would.
    const state = await freshState('held');
    await writeLock(state, 'slow', {});
    const before = await backupsOf('slow');
    // Act
    const run = await strongbox(['backup', '--plan', plan, '--json'], { STRONGBOX_STATE_DIR: state });
    // Assess: quick is backed up, slow is reported as running and nothing of it is written.
    expect(run.code).toBe(2);
    expect(run.json.failed).toEqual([
      {
        job: 'slow',
        error: { kind: 'locked', message: expect.stringContaining('job slow is already running') },
      },
    ]);
    expect(run.json.backups.map((b: { job: string }) => b.job)).toEqual(['quick']);
    expect(await backupsOf('slow')).toEqual(before);
    expect(await exists(lockPath(state, 'slow'))).toBe(true);
  });

  it.each([
    ['a dead pid', async () => ({ pid: await deadPid() })],
    ['a pid reused by another process', async () => ({ processStart: '1' })],
    ['an unreadable lock file', async () => undefined],
  ])('takes over a stale lock: %s', async (_, holder) => {
    const state = await freshState(`stale-${Math.random()}`);
    const fields = await holder();
    if (fields) await writeLock(state, 'quick', fields);
    else {
      await mkdir(join(state, 'locks'), { recursive: true });
      await writeFile(lockPath(state, 'quick'), '{"pid": ');
    }
    const run = await strongbox(['backup', '--plan', plan, '--job', 'quick', '--json'], {
      STRONGBOX_STATE_DIR: state,
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/job quick: took over (the lock of pid \d+|an unreadable lock file)/);
    expect(await exists(lockPath(state, 'quick'))).toBe(false);
  });

  it('refuses a prune while the job runs, and lets a dry run look', async () => {
    const state = await freshState('prune');
    await writeLock(state, 'quick', { command: 'backup' });
    const env = { STRONGBOX_STATE_DIR: state };
    const prune = await strongbox(['prune', '--plan', plan, '--job', 'quick'], env);
    expect(prune.code).toBe(JOB_LOCKED_EXIT);
    expect(prune.lastError).toMatch(/^strongbox: error: prune quick: job quick is already running/);
    const dryRun = await strongbox(['prune', '--plan', plan, '--job', 'quick', '--dry-run'], env);
    expect(dryRun.code, dryRun.stderr).toBe(0);
  });
});
