/**
 * `restore --replace` of a redis job. Redis reads its RDB only at startup, so after agent/restore.ts
 * took a safety backup and checked the restored copy beside the live data (in a scratch server), the
 * swap is: run the plan's `replace.stop`, wait until the server no longer answers, rename the live
 * `<dir>/<dbfilename>` to `<dbfilename>.strongbox-<stamp>` (kept), move the new RDB into place (same
 * owner and mode as the old one), run `replace.start` and wait until the server answers PING. If
 * anything after the stop fails, the new RDB is removed, the old one put back and the server started
 * again; the restored copy beside is removed either way. Servers with `appendonly yes` ignore the RDB:
 * they are refused before anything changes.
 */
import { chmod, chown, copyFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startCommand } from '#agent/pipeline/command';
import { describeError, RestoreError } from '#core/errors';
import type { ReplaceSupport, SourceContext } from '#core/ports';
import type { RedisDetails, RedisSourceConfig } from '#core/sources/index';
import { resolvePassword } from '../context';
import { describeEndpoint, parseInfo, quotedStrings, type RedisEndpoint, redisCli } from './cli';
import { RDB_FILE } from './scratch';

type ReplaceConfig = NonNullable<RedisSourceConfig['replace']>;

function replaceConfig(config: RedisSourceConfig): ReplaceConfig {
  if (!config.replace) {
    throw new RestoreError(
      'replace: this redis job has no source.replace (stop and start commands, dir): add them to the plan, or restore into a --target directory',
    );
  }
  return config.replace;
}

function endpointOf(config: RedisSourceConfig): RedisEndpoint {
  return { host: config.host, port: config.port, user: config.user, tls: config.tls };
}

/** Runs one of the plan's replace commands to its end. */
async function runPlanCommand(
  config: RedisSourceConfig,
  which: 'stop' | 'start',
  ctx: SourceContext,
): Promise<void> {
  const command = replaceConfig(config)[which];
  const tool = await startCommand(command, {
    where: `source.replace.${which}`,
    ctx,
    stdout: 'ignore',
    extraEnv: { STRONGBOX_REDIS_RDB: liveRdb(config) },
  });
  await tool.done;
}

function liveRdb(config: RedisSourceConfig): string {
  const { dir, dbfilename } = replaceConfig(config);
  return join(dir, dbfilename);
}

/** Polls PING until `up` is what it says, or the deadline passes. */
async function waitFor(
  config: RedisSourceConfig,
  ctx: SourceContext,
  up: boolean,
  timeoutMs: number,
): Promise<void> {
  const password = await resolvePassword(config, ctx);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answers = await redisCli(endpointOf(config), password, ctx, ['PING']).then(
      (reply) => reply.trim() === 'PONG',
      () => false,
    );
    if (answers === up) return;
    if (Date.now() > deadline) {
      throw new RestoreError(
        `${describeEndpoint(endpointOf(config))} ${up ? 'did not answer PING' : 'still answers'} ${Math.round(timeoutMs / 1000)} s after source.replace.${up ? 'start' : 'stop'}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The redis `replace` support (core/ports ReplaceSupport). */
export const redisReplace: ReplaceSupport<RedisSourceConfig, RedisDetails> = {
  liveTarget: (config) => (config.replace ? liveRdb(config) : `${config.host}:${config.port}`),

  /**
   * The plan has stop and start commands; the server answers, keeps its RDB where the plan says, and
   * does not run with appendonly (which would ignore the RDB).
   */
  async preflight(config, { ctx }) {
    const { dir, dbfilename } = replaceConfig(config);
    const endpoint = endpointOf(config);
    const where = describeEndpoint(endpoint);
    const password = await resolvePassword(config, ctx);
    const cli = (args: string[]) => redisCli(endpoint, password, ctx, args);
    const persistence = parseInfo(await cli(['INFO', 'persistence']));
    if (persistence.get('aof_enabled') === '1') {
      throw new RestoreError(
        `${where} runs with appendonly yes: it loads its AOF at startup and ignores an RDB, so a replace would bring it back unchanged; restore into a --target directory and load it with appendonly off (then CONFIG SET appendonly yes to rewrite the AOF)`,
      );
    }
    const liveDir = quotedStrings(await cli(['CONFIG', 'GET', 'dir']))[1];
    const liveFile = quotedStrings(await cli(['CONFIG', 'GET', 'dbfilename']))[1];
    if (liveDir !== undefined && liveDir !== dir) {
      throw new RestoreError(`source.replace.dir is ${dir} but ${where} keeps its RDB in ${liveDir}`);
    }
    if (liveFile !== undefined && liveFile !== dbfilename) {
      throw new RestoreError(`source.replace.dbfilename is ${dbfilename} but ${where} writes ${liveFile}`);
    }
    await stat(dir).catch((error: unknown) => {
      throw new RestoreError(`source.replace.dir ${dir} cannot be read here: ${describeError(error)}`, {
        cause: error,
      });
    });
  },

  async swap(config, { live, beside, ctx, now = new Date() }) {
    const { startTimeoutSeconds } = replaceConfig(config);
    const keptAs = `${live}.strongbox-${now.toISOString().replace(/[-:.]/g, '')}`;
    const incoming = `${live}.strongbox-incoming`;
    let previous: Awaited<ReturnType<typeof stat>> | undefined;
    let stopped = false;
    let movedOld = false;
    let placed = false;
    try {
      // The new RDB next to the live one first (same file system, so the final rename is atomic).
      await copyFile(join(beside, RDB_FILE), incoming);
      await runPlanCommand(config, 'stop', ctx);
      stopped = true;
      await waitFor(config, ctx, false, 60_000);
      // Only now: a stopping server may write its RDB one last time.
      previous = await stat(live).catch(() => undefined);
      if (previous) {
        await chown(incoming, previous.uid, previous.gid).catch(() => {});
        await chmod(incoming, previous.mode & 0o777);
        await rename(live, keptAs);
        movedOld = true;
      }
      await rename(incoming, live);
      placed = true;
      await runPlanCommand(config, 'start', ctx);
      await waitFor(config, ctx, true, startTimeoutSeconds * 1000);
    } catch (error) {
      const reason = describeError(error);
      const undo: string[] = [];
      if (placed) await rm(live, { force: true }).catch((e: unknown) => undo.push(describeError(e)));
      else await rm(incoming, { force: true }).catch(() => {});
      if (movedOld) await rename(keptAs, live).catch((e: unknown) => undo.push(describeError(e)));
      if (stopped) {
        await runPlanCommand(config, 'start', ctx).catch((e: unknown) => undo.push(describeError(e)));
      }
      throw new RestoreError(
        undo.length === 0
          ? `replacing the RDB of ${describeEndpoint(endpointOf(config))} failed: ${reason}; the previous RDB was put back${stopped ? ' and the server started again' : ''}`
          : `replacing the RDB of ${describeEndpoint(endpointOf(config))} failed: ${reason}; putting the previous one back failed too (${undo.join('; ')}): it is ${movedOld ? keptAs : live}`,
        { cause: error },
      );
    } finally {
      // The restored copy is a scratch directory under the temp dir: once in place (or once the swap
      // failed: a retry restores afresh) nothing else would ever remove it. Cleanup, not the outcome.
      await rm(beside, { recursive: true, force: true }).catch(() => {});
    }
    return { keptAs: previous ? keptAs : `${live} (there was no RDB before)` };
  },
};
