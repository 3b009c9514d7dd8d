/**
 * Restoring a base backup into a new data directory, never one that holds anything (let alone one in
 * use): the tar is extracted as the data directory's owner (`osUser`), the copy's settings are
 * overridden so it cannot archive into the source's archive (`archive_mode = off`), and — for a
 * point-in-time restore — `recovery.signal` plus recovery settings in `postgresql.auto.conf` make it
 * replay the job's WAL archive through `strongbox wal-fetch` to the target, then promote. `start` starts
 * the copy on a free port with its own socket directory and waits until it is promoted.
 */
import { appendFile, chmod, chown, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { settleAll } from '#agent/pipeline/flow';
import { RestoreError, SourceError } from '#core/errors';
import { quoteConfValue, type RecoveryTarget, recoverySettings } from '#core/recovery';
import type { PostgresPhysicalDetails, PostgresPhysicalSourceConfig } from '#core/sources/index';
import type { SourceContext } from '../context';
import { freePort } from '../kit';
import { isRoot, physicalTools, runAs, spawnAs, userIds } from './tools';

/** How a restore recovers and whether it starts the copy. */
export interface PhysicalRestoreOptions {
  /** The data directory to create (or an empty directory). */
  targetDir: string;
  /**
   * Replay the WAL archive to this target; absent: the backup's own end, without the archive. With an
   * `archiveCommand` the copy archives its new timeline from promotion on (it becomes the primary).
   */
  recovery?: { target: RecoveryTarget; restoreCommand: string; archiveCommand?: string };
  /** Start the copy on a free port and wait for it to be promoted. */
  start?: boolean;
  /** Seconds a started copy may take to finish recovery. @default 3600 */
  startTimeoutSeconds?: number;
  ctx: SourceContext;
}

/** Name of the server log a started copy writes, inside its data directory. */
export const RESTORE_LOG = 'strongbox-restore.log';

/**
 * Extracts a base backup into `targetDir` and prepares (and optionally starts) the copy.
 * @throws RestoreError when the target exists and is not empty, or the copy does not recover; the
 *   input's own error (an IntegrityError) when its data fails authentication. The target is removed
 *   again on any failure (an empty directory that existed before is emptied, not removed).
 */
export async function restorePhysical(
  config: PostgresPhysicalSourceConfig,
  details: PostgresPhysicalDetails | undefined,
  base: Readable,
  options: PhysicalRestoreOptions,
): Promise<{ port?: number }> {
  const dir = options.targetDir;
  if (!isAbsolute(dir)) throw new RestoreError(`target data directory '${dir}' must be an absolute path`);
  const existed = await prepareTarget(dir);
  try {
    if (isRoot()) {
      const { uid, gid } = await userIds(config.osUser);
      await chown(dir, uid, gid);
    }
    await chmod(dir, 0o700);
    const tar = spawnAs(config.osUser, 'tar', ['-x', '-f', '-', '-C', dir], {
      signal: options.ctx.signal,
      stdout: 'ignore',
      name: 'tar',
    });
    if (!tar.stdin) throw new SourceError('tar has no stdin');
    const controller = new AbortController();
    await settleAll([pipeline(base, tar.stdin), tar.done], controller);
    await configureCopy(config, dir, options);
    if (!options.start) return {};
    const port = await freePort();
    await startCopy(config, details, dir, port, options);
    return { port };
  } catch (error) {
    await stopCopy(config, dir).catch(() => {});
    if (existed) {
      for (const entry of await readdir(dir).catch(() => []))
        await rm(join(dir, entry), { recursive: true, force: true });
    } else {
      await rm(dir, { recursive: true, force: true });
    }
    throw error;
  }
}

/** Whether `dir` existed (empty); creates it otherwise. @throws RestoreError when it holds anything. */
async function prepareTarget(dir: string): Promise<boolean> {
  const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw new RestoreError(`cannot read target data directory ${dir}: ${error.code ?? error.message}`);
  });
  if (entries === undefined) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return false;
  }
  if (entries.includes('postmaster.pid'))
    throw new RestoreError(
      `target data directory ${dir} is in use (postmaster.pid): restore into a new directory`,
    );
  if (entries.length > 0)
    throw new RestoreError(
      `target data directory ${dir} is not empty: restore into a new or empty directory`,
    );
  return true;
}

/**
 * The copy's own settings, appended to postgresql.auto.conf (they win over postgresql.conf): no archiving
 * into the source's archive — unless the copy becomes the primary, then archiving with the given
 * command, on from the moment of promotion so the history file and the new timeline's first segment are
 * archived too — and the recovery settings with recovery.signal when recovering.
 */
async function configureCopy(
  config: PostgresPhysicalSourceConfig,
  dir: string,
  options: PhysicalRestoreOptions,
): Promise<void> {
  const archiveCommand = options.recovery?.archiveCommand;
  const settings: Record<string, string> = archiveCommand
    ? { archive_mode: 'on', archive_command: quoteConfValue(archiveCommand) }
    : { archive_mode: 'off' };
  if (options.recovery)
    Object.assign(settings, recoverySettings(options.recovery.target, options.recovery.restoreCommand));
  const lines = Object.entries(settings).map(([name, value]) => `${name} = ${value}`);
  const why = archiveCommand
    ? 'the copy becomes the primary and archives its new timeline into the job'
    : "the copy must not archive into the source's archive";
  await appendFile(
    join(dir, 'postgresql.auto.conf'),
    `\n# written by strongbox restore: ${why}\n${lines.join('\n')}\n`,
  );
  if (options.recovery) await writeFile(join(dir, 'recovery.signal'), '');
  if (isRoot()) {
    const { uid, gid } = await userIds(config.osUser);
    await chown(join(dir, 'postgresql.auto.conf'), uid, gid);
    if (options.recovery) await chown(join(dir, 'recovery.signal'), uid, gid);
  }
}

/**
 * Starts the copy on `port` (127.0.0.1, its socket in its own data directory) and waits until it runs as
 * a primary: recovery finished and, after a point-in-time recovery, promoted.
 * @throws RestoreError with the tail of the server log when it stops or does not get there in time.
 */
async function startCopy(
  config: PostgresPhysicalSourceConfig,
  details: PostgresPhysicalDetails | undefined,
  dir: string,
  port: number,
  options: PhysicalRestoreOptions,
): Promise<void> {
  const tools = physicalTools(config.binDir, await majorOf(details, dir));
  await appendFile(
    join(dir, 'postgresql.auto.conf'),
    `port = ${port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ${quoteConfValue(dir)}\n`,
  );
  const logFile = join(dir, RESTORE_LOG);
  const timeoutSeconds = options.startTimeoutSeconds ?? 3600;
  try {
    await runAs(
      config.osUser,
      tools.pgCtl,
      ['-D', dir, '-l', logFile, '-w', '-t', String(timeoutSeconds), 'start'],
      {
        signal: options.ctx.signal,
      },
    );
  } catch (error) {
    throw new RestoreError(`the restored copy in ${dir} did not start: ${await logTail(logFile)}`, {
      cause: error,
    });
  }
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    options.ctx.signal?.throwIfAborted();
    const control = await runAs(config.osUser, tools.pgControldata, ['-D', dir]).catch(() => '');
    if (/^Database cluster state:\s+in production$/m.test(control)) return;
    const running = await runAs(config.osUser, tools.pgCtl, ['-D', dir, 'status']).then(
      () => true,
      () => false,
    );
    if (!running)
      throw new RestoreError(
        `the restored copy in ${dir} stopped during recovery: ${await logTail(logFile)}`,
      );
    if (Date.now() > deadline)
      throw new RestoreError(
        `the restored copy in ${dir} was still recovering after ${timeoutSeconds} s: ${await logTail(logFile)}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Stops a copy this restore started (`pg_ctl stop -m fast`); nothing when none runs. */
export async function stopCopy(config: PostgresPhysicalSourceConfig, dir: string): Promise<void> {
  const pid = await stat(join(dir, 'postmaster.pid')).catch(() => undefined);
  if (!pid) return;
  const tools = physicalTools(config.binDir, await majorOf(undefined, dir));
  await runAs(config.osUser, tools.pgCtl, ['-D', dir, '-m', 'fast', '-w', 'stop']);
}

/** Major version of a data directory (its PG_VERSION), else of the backup's server. */
export async function majorOf(details: PostgresPhysicalDetails | undefined, dir: string): Promise<number> {
  const text = await readFile(join(dir, 'PG_VERSION'), 'utf8').catch(() => '');
  const major = Number.parseInt(text.trim(), 10);
  if (Number.isInteger(major) && major > 0) return major;
  return details ? Math.floor(details.serverVersionNum / 10_000) : 0;
}

/** The last lines of the server log that say why (FATAL, PANIC, ERROR first). */
export async function logTail(logFile: string): Promise<string> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const lines = text.trim().split('\n').filter(Boolean);
  const serious = lines.filter((l) => /\b(FATAL|PANIC|ERROR)\b|strongbox: error/.test(l));
  const chosen = (serious.length ? serious : lines).slice(-6);
  return chosen.join(' | ') || `no server log in ${logFile}`;
}
