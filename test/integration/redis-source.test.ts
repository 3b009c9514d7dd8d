/**
 * The redis source against real redis-servers on free ports: replication and BGSAVE snapshots, the
 * fallback when SYNC is refused by an ACL, auth from the environment only, AOF servers, and drills that
 * load the RDB into a scratch server and compare key counts and sampled values with the manifest.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { runRestore } from '#agent/restore';
import { checkRedis } from '#agent/sources/redis/index';
import { listBackups, readManifest } from '#core/catalog';
import { PlanError, SourceError } from '#core/errors';
import type { Job } from '#core/plan';
import type { RedisDetails, RedisSourceConfig } from '#core/sources/index';
import { datasetDigest, type RedisServer, startRedis } from '#test/support/redis';
import { testRuntime } from '#test/support/runtime';

const PASSWORD = 'correct horse battery staple';
let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedis({ password: PASSWORD });
  await redis.cli(['DEBUG', 'POPULATE', '2000', 'k', '32']);
  await redis.cli(['HSET', 'h', 'a', '1', 'b', '2', 'c', '3']);
  await redis.cli(['ZADD', 'z', '1', 'one', '2', 'two'], 2);
  await redis.cli(['ACL', 'SETUSER', 'nosync', 'on', `>${PASSWORD}`, '~*', '&*', '+@all', '-sync', '-psync']);
});
afterAll(() => redis?.stop());

function job(source: Record<string, unknown>, name = 'cache') {
  return {
    name,
    source: { kind: 'redis', host: '127.0.0.1', port: redis.port, passwordEnv: 'REDIS_PASSWORD', ...source },
  };
}

/** Backs the job up, restores it into a new directory, and returns the manifest and the restore. */
async function roundTrip(
  source: Record<string, unknown>,
  env: Record<string, string> = { REDIS_PASSWORD: PASSWORD },
) {
  const { runtime, dir } = await testRuntime({ jobs: [job(source)] });
  runtime.env = { PATH: process.env.PATH, ...env };
  try {
    const j = runtime.plan.jobs[0] as Job;
    const backup = await runBackup(runtime, j);
    const manifest = await readManifest(runtime.vault, j.name, backup.backupId);
    const target = join(dir, 'restored');
    const restore = await runRestore(runtime, j, { target });
    const copy = await startRedis({ dir: target });
    const digest = await datasetDigest(copy).finally(() => copy.stop());
    return { manifest, restore, digest, dir };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

describe.each(['replication', 'bgsave'] as const)('method %s', (method) => {
  it('restores exactly the dataset, records server version and key counts per database, and passes its checks', async () => {
    const { manifest, restore, digest, dir } = await roundTrip({ method });
    try {
      const details = manifest.source as RedisDetails;
      expect(details.method).toBe(method);
      expect(details.serverVersion).toMatch(/^\d+\.\d+\.\d+$/);
      expect(details.keyCounts).toEqual([
        { db: 0, keys: 2001, keysAfter: 2001 },
        { db: 2, keys: 1, keysAfter: 1 },
      ]);
      expect(details.sampledKeys.length).toBeGreaterThan(20);
      expect(digest).toBe(await datasetDigest(redis));
      expect(restore.checks.map((c) => [c.check, c.passed])).toEqual([
        ['key-counts', true],
        ['sampled-keys', true],
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

it('falls back to BGSAVE when an ACL refuses SYNC (method auto)', async () => {
  const { manifest, digest, dir } = await roundTrip({ method: 'auto', user: 'nosync' });
  try {
    expect((manifest.source as RedisDetails).method).toBe('bgsave');
    expect(digest).toBe(await datasetDigest(redis));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('fails with a clear error and leaves nothing when replication is refused and required', async () => {
  const { runtime, dir, fileVault } = await testRuntime({
    jobs: [job({ method: 'replication', user: 'nosync' })],
  });
  runtime.env = { PATH: process.env.PATH, REDIS_PASSWORD: PASSWORD };
  try {
    const attempt = runBackup(runtime, runtime.plan.jobs[0] as Job);
    await expect(attempt).rejects.toBeInstanceOf(SourceError);
    await expect(attempt).rejects.toThrow(/redis-cli --rdb sent nothing/);
    expect(await listBackups(fileVault, 'cache')).toEqual([]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('takes the password from the environment: a wrong one fails naming the server, never showing it', async () => {
  const { runtime, dir } = await testRuntime({ jobs: [job({})] });
  runtime.env = { PATH: process.env.PATH, REDIS_PASSWORD: 'wrong-password-value' };
  try {
    const attempt = runBackup(runtime, runtime.plan.jobs[0] as Job);
    await expect(attempt).rejects.toThrow(
      new RegExp(`redis 127.0.0.1:${redis.port}: INFO failed: NOAUTH`, 's'),
    );
    await expect(attempt).rejects.not.toThrow(/wrong-password-value/);
    runtime.env = { PATH: process.env.PATH };
    await expect(runBackup(runtime, runtime.plan.jobs[0] as Job)).rejects.toBeInstanceOf(PlanError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('backs up an AOF server as an RDB that a scratch server loads with appendonly off', async () => {
  const aof = await startRedis({ extraArgs: ['--appendonly', 'yes'] });
  try {
    await aof.cli(['DEBUG', 'POPULATE', '300', 'a', '16']);
    const { runtime, dir } = await testRuntime({
      jobs: [{ name: 'aof', source: { kind: 'redis', host: '127.0.0.1', port: aof.port } }],
    });
    runtime.env = { PATH: process.env.PATH };
    try {
      const j = runtime.plan.jobs[0] as Job;
      const backup = await runBackup(runtime, j);
      const details = (await readManifest(runtime.vault, 'aof', backup.backupId)).source as RedisDetails;
      expect(details.appendonly).toBe(true);
      const restore = await runRestore(runtime, j, { target: join(dir, 'r') });
      expect(restore.checks.every((c) => c.passed)).toBe(true);
      expect((await readFile(join(dir, 'r', 'dump.rdb'))).subarray(0, 5).toString()).toBe('REDIS');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    await aof.stop();
  }
});

it('finds a restore that lost keys or holds other values', async () => {
  const { manifest, dir } = await roundTrip({ method: 'replication' });
  try {
    const target = join(dir, 'restored');
    const copy = await startRedis({ dir: target });
    const details = manifest.source as RedisDetails;
    const sampled = details.sampledKeys.find((s) => s.db === 0 && s.type === 'string');
    await copy.cli(['SET', sampled?.key ?? 'k:1', 'tampered']);
    await copy.cli(['DEL', 'z'], 2);
    await copy.cli(['SAVE']);
    await copy.stop();
    const checks = await checkRedis({ serverBinary: 'redis-server' } as RedisSourceConfig, details, target, {
      env: { PATH: process.env.PATH },
    });
    expect(checks.map((c) => [c.check, c.passed])).toEqual([
      ['key-counts', false],
      ['sampled-keys', false],
    ]);
    expect(checks[0]?.detail).toContain('db2 holds 0 keys, the backup recorded 1');
    expect(checks[1]?.detail).toMatch(/holds another value/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('doctor reaches the server with the configured password and warns about a replication delay', async () => {
  const { redisDriver } = await import('#agent/sources/redis/index');
  const slow = await startRedis({ extraArgs: ['--repl-diskless-sync-delay', '5'] });
  try {
    const base = {
      kind: 'redis',
      host: '127.0.0.1',
      method: 'auto',
      sampleKeys: 0,
      serverBinary: 'redis-server',
    } as const;
    const env = { PATH: process.env.PATH, REDIS_PASSWORD: PASSWORD };
    const good = await redisDriver.doctor(
      { ...base, port: redis.port, passwordEnv: 'REDIS_PASSWORD' },
      { env },
    );
    expect(good.filter((c) => !c.ok)).toEqual([]);
    const delayed = await redisDriver.doctor({ ...base, port: slow.port }, { env });
    expect(delayed.find((c) => c.subject === 'repl-diskless-sync-delay')).toMatchObject({
      ok: false,
      warning: true,
    });
    const wrong = await redisDriver.doctor({ ...base, port: redis.port }, { env });
    expect(wrong.find((c) => c.subject.startsWith('redis 127.0.0.1'))).toMatchObject({
      ok: false,
      detail: expect.stringContaining('NOAUTH'),
    });
  } finally {
    await slow.stop();
  }
});
