/**
 * The swap of a redis `restore --replace` that fails (here: the plan's stop command) leaves the live RDB
 * as it was and removes the restored copy beside it, a scratch directory nothing else would remove. No
 * redis server: the failure comes before the server is asked anything.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { redisReplace } from '#agent/sources/redis/replace';
import { RestoreError } from '#core/errors';
import { validatePlan } from '#core/plan';
import type { RedisSourceConfig } from '#core/sources/index';
import { tempDir } from '#test/support/temp';

function redisSource(dir: string): RedisSourceConfig {
  const plan = validatePlan({
    version: 1,
    vault: { url: 'file:///nonexistent/vault' },
    key: { type: 'local', path: '/nonexistent/master.key' },
    jobs: [
      {
        name: 'cache',
        source: {
          kind: 'redis',
          host: '127.0.0.1',
          port: 1,
          replace: { stop: { shell: 'exit 3' }, start: { shell: 'true' }, dir },
        },
      },
    ],
  });
  return plan.jobs[0]?.source as RedisSourceConfig;
}

describe('redis replace swap', () => {
  it('removes the restored copy beside when the swap fails, the live RDB left as it was', async () => {
    // Prepare
    const root = await tempDir('strongbox-redis-swap-');
    const liveDir = join(root, 'live');
    const beside = join(root, 'strongbox-restore-20261203T000000000Z');
    await mkdir(liveDir);
    await mkdir(beside);
    const live = join(liveDir, 'dump.rdb');
    await writeFile(live, 'the live RDB');
    await writeFile(join(beside, 'dump.rdb'), 'the restored RDB');

    // Act
    const swap = redisReplace.swap(redisSource(liveDir), {
      live,
      beside,
      ctx: { env: { PATH: process.env.PATH } },
    });

    // Assess
    await expect(swap).rejects.toBeInstanceOf(RestoreError);
    await expect(swap).rejects.toThrow(/source\.replace\.stop.*the previous RDB was put back/);
    expect(await readFile(live, 'utf8')).toBe('the live RDB');
    expect(await readdir(liveDir)).toEqual(['dump.rdb']);
    expect(await readdir(root)).toEqual(['live']);
  });
});
