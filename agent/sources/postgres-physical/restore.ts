/**
 * Restoring a base backup into a new data directory, never one that holds anything (let alone one in
 * use): the tars are extracted as the data directory's owner (`osUser`) — each tablespace's into its
 * new location (`--tablespace-map OLD=NEW`, else a directory beside the data directory, never one that
 * holds anything) with `pg_tblspc/<oid>` pointing there — the copy's settings are
 * overridden so it cannot archive into the source's archive (`archive_mode = off`), and — for a
 * point-in-time restore — `recovery.signal` plus recovery settings in `postgresql.auto.conf` make it
 * replay the job's WAL archive through `strongbox wal-fetch` to the target, then promote. `start` starts
 * the copy on a free port with its own socket directory and waits until it is promoted.
 */
import { createWriteStream } from 'node:fs';
import {
  appendFile,
  chmod,
  chown,
  lchown,
  mkdir,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { isAbsolute, join, normalize, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { settleAll } from '#agent/pipeline/flow';
import { RestoreError, SourceError } from '#core/errors';
import type { RestoreInput } from '#core/ports';
import { quoteConfValue, type RecoveryTarget, recoverySettings } from '#core/recovery';
import type { PostgresPhysicalDetails, PostgresPhysicalSourceConfig } from '#core/sources/index';
import type { SourceContext } from '../context';
import { freePort } from '../kit';
import { BASE_OBJECT, MANIFEST_OBJECT, tablespaceObject } from './backup';
import { isRoot, physicalTools, runAs, spawnAs, userIds } from './tools';

/** How a restore recovers and whether it starts the copy. */
export interface PhysicalRestoreOptions {
  /** The data directory to create (or an empty directory). */
  targetDir: string;
  /**
   * New locations of the backup's tablespaces by their original location (pg_basebackup's `-T
   * OLD=NEW`); a tablespace not named goes beside the data directory ({@link defaultTablespaceDir}).
   */
  tablespaceMap?: Readonly<Record<string, string>>;
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
/** The list of tablespace directories a restore created, inside the data directory (for discard). */
export const TABLESPACES_FILE = 'strongbox-tablespaces.json';

/** Where a tablespace goes without a map entry: `<data directory>-tablespace-<name>` beside it. */
export function defaultTablespaceDir(targetDir: string, tablespace: { oid: number; name: string }): string {
  const name = /^[A-Za-z0-9_.-]{1,63}$/.test(tablespace.name) ? tablespace.name : String(tablespace.oid);
  return `${targetDir.replace(/\/+$/, '')}-tablespace-${name}`;
}

/** One tablespace of the backup and where this restore puts it. */
export interface TablespacePlacement {
  oid: number;
  name: string;
  /** Its location on the source server. */
  from: string;
  /** Its new location. */
  to: string;
}

/**
 * Where each tablespace of a backup goes.
 * @throws RestoreError when a map entry names no tablespace of the backup, a new location is relative,
 *   inside the data directory or shared by two tablespaces.
 */
export function placeTablespaces(
  details: PostgresPhysicalDetails | undefined,
  targetDir: string,
  map: Readonly<Record<string, string>> = {},
): TablespacePlacement[] {
  const tablespaces = details?.tablespaces ?? [];
  const known = new Map(tablespaces.map((t) => [samePath(t.location), t]));
  const problems: string[] = [];
  for (const old of Object.keys(map)) {
    if (!known.has(samePath(old)))
      problems.push(
        `--tablespace-map ${old}=…: ${old} is not a tablespace location of this backup (${
          tablespaces.map((t) => `${t.location} (${t.name})`).join(', ') || 'it has no tablespaces'
        })`,
      );
  }
  const mapped = new Map(Object.entries(map).map(([old, to]) => [samePath(old), to]));
  const placements = tablespaces.map((t) => ({
    oid: t.oid,
    name: t.name,
    from: t.location,
    to: mapped.get(samePath(t.location)) ?? defaultTablespaceDir(targetDir, t),
  }));
  const seen = new Set<string>();
  for (const p of placements) {
    if (!isAbsolute(p.to))
      problems.push(`tablespace ${p.name}: new location '${p.to}' must be an absolute path`);
    const inside = relative(targetDir, p.to);
    if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside)))
      problems.push(`tablespace ${p.name}: new location ${p.to} is inside the data directory ${targetDir}`);
    if (seen.has(samePath(p.to)))
      problems.push(`tablespace ${p.name}: ${p.to} is the new location of two tablespaces`);
    seen.add(samePath(p.to));
  }
  if (problems.length > 0) throw new RestoreError(problems.join('; '));
  return placements;
}

/** A path as a key: normalized, without a trailing slash (`/srv/ts/` and `/srv/ts` are one place). */
function samePath(path: string): string {
  return normalize(path).replace(/(.)\/+$/, '$1');
}

/** A backup's objects as the restore opens them, by name. */
export interface PhysicalInput extends Pick<RestoreInput, 'open' | 'openInto'> {
  names: readonly string[];
}

/**
 * Extracts a base backup into `targetDir` (and its tablespaces into their new locations) and prepares
 * (and optionally starts) the copy.
 * @returns where each tablespace went (empty without tablespaces) and the started copy's port.
 * @throws RestoreError when the target or a tablespace location exists and is not empty, the map is
 *   wrong, or the copy does not recover; the input's own error (an IntegrityError) when its data fails
 *   authentication. What it created is removed again on any failure (an empty directory that existed
 *   before is emptied, not removed).
 */
export async function restorePhysical(
  config: PostgresPhysicalSourceConfig,
  details: PostgresPhysicalDetails | undefined,
  input: PhysicalInput,
  options: PhysicalRestoreOptions,
): Promise<{ port?: number; tablespaces: TablespacePlacement[] }> {
  const dir = options.targetDir;
  if (!isAbsolute(dir)) throw new RestoreError(`target data directory '${dir}' must be an absolute path`);
  const tablespaces = placeTablespaces(details, dir, options.tablespaceMap);
  for (const t of tablespaces)
    if (!input.names.includes(tablespaceObject(t.oid)))
      throw new RestoreError(`the backup lacks ${tablespaceObject(t.oid)}, the data of tablespace ${t.name}`);
  const made: { dir: string; existed: boolean }[] = [];
  try {
    // Every place is checked before anything is written: a refused restore leaves everything as it was.
    for (const place of [dir, ...tablespaces.map((t) => t.to)]) await refuseUsed(place, place === dir);
    for (const place of [dir, ...tablespaces.map((t) => t.to)]) {
      made.push({ dir: place, existed: await prepareTarget(place, place === dir) });
      if (isRoot()) {
        const { uid, gid } = await userIds(config.osUser);
        await chown(place, uid, gid);
      }
      await chmod(place, 0o700);
    }
    for (const t of tablespaces) await extract(config, input, tablespaceObject(t.oid), t.to, options);
    await extract(config, input, BASE_OBJECT, dir, options, tablespaces.length > 0);
    if (tablespaces.length > 0) await linkTablespaces(config, dir, tablespaces);
    if (input.names.includes(MANIFEST_OBJECT)) {
      // Beside the data, as pg_basebackup -Ft leaves it (pg_verifybackup reads it there).
      const manifest = await input.open(MANIFEST_OBJECT);
      await pipeline(manifest, createWriteStream(join(dir, MANIFEST_OBJECT), { mode: 0o600 }));
      if (isRoot()) {
        const { uid, gid } = await userIds(config.osUser);
        await chown(join(dir, MANIFEST_OBJECT), uid, gid);
      }
    }
    await configureCopy(config, dir, options);
    if (!options.start) return { tablespaces };
    const port = await freePort();
    await startCopy(config, details, dir, port, options);
    return { port, tablespaces };
  } catch (error) {
    await stopCopy(config, dir).catch(() => {});
    for (const { dir: place, existed } of made) {
      if (existed) {
        for (const entry of await readdir(place).catch(() => []))
          await rm(join(place, entry), { recursive: true, force: true });
      } else {
        await rm(place, { recursive: true, force: true });
      }
    }
    throw error;
  }
}

/**
 * Streams the tar object `name` into `dir` as the data directory's owner; base.tar without its pg_tblspc
 * links. The object goes straight into tar's stdin (RestoreInput `openInto`: zstd writes into it).
 */
async function extract(
  config: PostgresPhysicalSourceConfig,
  input: PhysicalInput,
  name: string,
  dir: string,
  options: PhysicalRestoreOptions,
  withoutLinks = false,
): Promise<void> {
  // The links point at the source server's locations: this restore makes its own (linkTablespaces).
  const exclude = withoutLinks ? ['--exclude=pg_tblspc/*', '--exclude=./pg_tblspc/*'] : [];
  const tar = spawnAs(config.osUser, 'tar', ['-x', '-f', '-', '-C', dir, ...exclude], {
    signal: options.ctx.signal,
    stdout: 'ignore',
    name: 'tar',
  });
  if (!tar.stdin) throw new SourceError('tar has no stdin');
  const controller = new AbortController();
  await settleAll([input.openInto(name, tar.stdin), tar.done], controller);
}

/** `pg_tblspc/<oid>` → each tablespace's new location, and the list discard removes. */
async function linkTablespaces(
  config: PostgresPhysicalSourceConfig,
  dir: string,
  tablespaces: TablespacePlacement[],
): Promise<void> {
  const links = join(dir, 'pg_tblspc');
  await mkdir(links, { recursive: true, mode: 0o700 });
  const ids = isRoot() ? await userIds(config.osUser) : undefined;
  for (const t of tablespaces) {
    const link = join(links, String(t.oid));
    await rm(link, { force: true });
    await symlink(t.to, link);
    if (ids) await lchown(link, ids.uid, ids.gid);
  }
  await writeFile(join(dir, TABLESPACES_FILE), `${JSON.stringify(tablespaces.map((t) => t.to))}\n`);
}

/** The tablespace directories a restore into `dir` created (what discard removes with it). */
export async function createdTablespaceDirs(dir: string): Promise<string[]> {
  const text = await readFile(join(dir, TABLESPACES_FILE), 'utf8').catch(() => '[]');
  const list: unknown = JSON.parse(text);
  return Array.isArray(list) ? list.filter((p): p is string => typeof p === 'string' && isAbsolute(p)) : [];
}

/** @throws RestoreError when `place` holds anything (naming the data directory or the tablespace location). */
async function refuseUsed(place: string, isDataDir: boolean): Promise<void> {
  const entries = await readdir(place).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw new RestoreError(`cannot read ${noun(isDataDir)} ${place}: ${error.code ?? error.message}`);
  });
  if (entries.includes('postmaster.pid'))
    throw new RestoreError(
      `${noun(isDataDir)} ${place} is in use (postmaster.pid): restore into a new directory`,
    );
  if (entries.length > 0)
    throw new RestoreError(
      `${noun(isDataDir)} ${place} is not empty: restore into a new or empty directory${isDataDir ? '' : ' (--tablespace-map OLD=NEW)'}`,
    );
}

function noun(isDataDir: boolean): string {
  return isDataDir ? 'target data directory' : 'tablespace location';
}

/** Whether `dir` existed (empty); creates it otherwise. @throws RestoreError when it holds anything. */
async function prepareTarget(dir: string, isDataDir: boolean): Promise<boolean> {
  await refuseUsed(dir, isDataDir);
  const existed = await stat(dir).then(
    () => true,
    () => false,
  );
  if (!existed) await mkdir(dir, { recursive: true, mode: 0o700 });
  return existed;
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
  // A FATAL line often only says that something failed; the line before it says what (a syntax error
  // in a configuration file, the WAL file that did not authenticate).
  const isSerious = (l: string) => /\b(FATAL|PANIC|ERROR)\b|strongbox: error/.test(l);
  const serious = lines.filter((l, i) => isSerious(l) || isSerious(lines[i + 1] ?? ''));
  const chosen = (serious.length ? serious : lines).slice(-6);
  return chosen.join(' | ') || `no server log in ${logFile}`;
}
