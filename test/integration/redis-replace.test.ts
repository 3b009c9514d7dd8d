/**
 * `restore --replace` of a redis job against a real redis-server run by the plan's own stop and start
 * commands (a daemonized server with a pid file, as a service manager would run it): the backed-up
 * dataset comes back after the restart, the old RDB is kept beside, servers with appendonly are
 * refused before anything changes, and a start that fails puts the old RDB back and starts the server
 * again.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { runRestore } from '#agent/restore';
import { freePort } from '#agent/sources/kit';
import { redisCli } from '#agent/sources/redis/cli';
import { RestoreError } from '#core/errors';
import type { Job } from '#core/plan';
import { testRuntime } from '#test/support/runtime';

const env = { PATH: process.env.PATH };
let dir: string;
let port: number;
let serverLine: string;

const cli = (args: string[]) => redisCli({ host: '127.0.0.1', port }, undefined, { env }, args);
const digest = async () => (await cli(['DEBUG', 'DIGEST'])).trim().replace(/^"|"$/g, '');

async function sh(line: string): Promise<void> {
  const { execFile } = await import('node:child_process');
  await new Promise<void>((resolve, reject) =>
    execFile('/bin/sh', ['-c', line], (error) => (error ? reject(error) : resolve())),
  );
}

async function waitUp(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await cli(['PING']).catch(() => '')).trim() === 'PONG') return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('redis did not start');
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-redis-live-'));
  port = await freePort();
  serverLine = `redis-server --port ${port} --bind 127.0.0.1 --dir ${dir} --dbfilename dump.rdb --daemonize yes --pidfile ${dir}/redis.pid --logfile ${dir}/redis.log --save '' --repl-diskless-sync-delay 0 --enable-debug-command local`;
});
afterEach(async () => {
  await cli(['SHUTDOWN', 'NOSAVE']).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

function job(extra: { start?: string; appendonly?: boolean } = {}) {
  return {
    name: 'cache',
    source: {
      kind: 'redis',
      host: '127.0.0.1',
      port,
      method: 'replication',
      replace: {
        // A service manager's stop saves the RDB; then the process is gone.
        stop: {
          shell: `redis-cli -p ${port} SHUTDOWN SAVE; while [ -e ${dir}/redis.pid ]; do sleep 0.05; done`,
        },
        start: { shell: extra.start ?? serverLine },
        dir,
      },
    },
  };
}

async function runtimeFor(extra: { start?: string } = {}) {
  const made = await testRuntime({ jobs: [job(extra)] });
  made.runtime.env = env;
  return { ...made, job: made.runtime.plan.jobs[0] as Job };
}

it('brings the backed-up dataset back after a restart and keeps the old RDB beside', async () => {
  await sh(serverLine);
  await waitUp();
  await cli(['DEBUG', 'POPULATE', '300', 'key', '16']);
  const { runtime, dir: work, job: j } = await runtimeFor();
  try {
    const backup = await runBackup(runtime, j);
    const backedUp = await digest();
    await cli(['DEL', 'key:1', 'key:2']);
    await cli(['SET', 'written-after', 'x']);
    const changed = await digest();

    const result = await runRestore(runtime, j, {
      backupId: backup.backupId,
      replace: true,
      confirm: 'cache',
    });

    expect(result.mode).toBe('replace');
    expect(result.target).toBe(join(dir, 'dump.rdb'));
    expect(await digest()).toBe(backedUp);
    expect(result.keptAs).toMatch(/dump\.rdb\.strongbox-\d{8}T\d+Z$/);
    expect((await readdir(dir)).filter((f) => f.startsWith('dump.rdb'))).toEqual(
      expect.arrayContaining(['dump.rdb', (result.keptAs as string).split('/').at(-1)]),
    );
    expect(result.safetyBackupId).toBeDefined();
    expect(changed).not.toBe(backedUp);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

it('refuses a server with appendonly yes before anything changes', async () => {
  await sh(`${serverLine} --appendonly yes`);
  await waitUp();
  await cli(['SET', 'a', '1']);
  const { runtime, dir: work, job: j } = await runtimeFor();
  try {
    await runBackup(runtime, j);
    const before = await digest();
    const attempt = runRestore(runtime, j, { replace: true, confirm: 'cache' });

    await expect(attempt).rejects.toBeInstanceOf(RestoreError);
    await expect(attempt).rejects.toThrow(/appendonly yes.*ignores an RDB/);
    expect(await digest()).toBe(before);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

it('puts the old RDB back and starts the server again when the start fails', async () => {
  await sh(serverLine);
  await waitUp();
  await cli(['DEBUG', 'POPULATE', '100', 'key', '16']);
  // The first start fails (a broken unit), the second — the agent's putting back — works.
  const flaky = `if [ ! -e ${dir}/failed-once ]; then touch ${dir}/failed-once; exit 1; fi; ${serverLine}`;
  const { runtime, dir: work, job: j } = await runtimeFor({ start: flaky });
  try {
    const backup = await runBackup(runtime, j);
    await cli(['SET', 'written-after', 'x']);
    const changed = await digest();

    const attempt = runRestore(runtime, j, { backupId: backup.backupId, replace: true, confirm: 'cache' });

    await expect(attempt).rejects.toThrow(/the previous RDB was put back and the server started again/);
    await waitUp();
    expect(await digest()).toBe(changed);
    expect((await readdir(dir)).filter((f) => f.includes('strongbox'))).toEqual([]);
  } finally {
    await rm(work, { recursive: true, force: true });
    await writeFile(join(dir, 'done'), '');
  }
});
