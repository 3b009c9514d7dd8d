/**
 * The PostgreSQL programs a physical backup and restore run, and running them as the operating-system
 * user that owns data directories: initdb, pg_ctl and postgres refuse root, and a data directory must be
 * owned by that user (mode 0700). As root the agent runs them under `runuser -u <osUser> --`.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type SpawnToolOptions, spawnTool, type ToolProcess } from '#agent/pipeline/child';
import { SourceError } from '#core/errors';

/** Paths of the programs, from one directory (or PATH). */
export interface PhysicalTools {
  pgBasebackup: string;
  pgCtl: string;
  pgControldata: string;
  pgVerifybackup: string;
  binDir?: string;
}

/**
 * The programs for a cluster of major version `major`: `binDir` when given, else Debian's
 * `/usr/lib/postgresql/<major>/bin` (server programs must match the cluster's major exactly), else the
 * newest one there that is newer (pg_basebackup accepts older servers), else PATH.
 * @example physicalTools(undefined, 15).pgCtl // '/usr/lib/postgresql/15/bin/pg_ctl'
 */
export function physicalTools(
  binDir: string | undefined,
  major: number,
  versionsRoot = '/usr/lib/postgresql',
): PhysicalTools {
  let dir = binDir;
  if (!dir && existsSync(join(versionsRoot, String(major), 'bin', 'pg_ctl'))) {
    dir = join(versionsRoot, String(major), 'bin');
  }
  if (!dir && existsSync(versionsRoot)) {
    const newer = readdirSync(versionsRoot)
      .filter((n) => /^\d+$/.test(n) && Number(n) >= major)
      .sort((a, b) => Number(b) - Number(a))[0];
    if (newer && existsSync(join(versionsRoot, newer, 'bin', 'pg_basebackup')))
      dir = join(versionsRoot, newer, 'bin');
  }
  const at = (name: string) => (dir ? join(dir, name) : name);
  return {
    pgBasebackup: at('pg_basebackup'),
    pgCtl: at('pg_ctl'),
    pgControldata: at('pg_controldata'),
    pgVerifybackup: at('pg_verifybackup'),
    ...(dir ? { binDir: dir } : {}),
  };
}

/** Whether the agent runs as root. */
export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Starts a program as `osUser`: through `runuser -u` when the agent is root, directly otherwise (the
 * agent then is that user, or the program fails with its own permission error).
 */
export function spawnAs(
  osUser: string,
  command: string,
  args: string[],
  options: SpawnToolOptions = {},
): ToolProcess {
  const name = options.name ?? command.split('/').pop();
  if (isRoot() && osUser !== 'root') {
    return spawnTool('runuser', ['-u', osUser, '--', command, ...args], { ...options, name });
  }
  return spawnTool(command, args, { ...options, name });
}

/**
 * Runs a program as `osUser` to the end and returns its stdout (bounded to 4 MiB).
 * @throws SourceError naming the program and the tail of its stderr when it fails.
 */
export async function runAs(
  osUser: string,
  command: string,
  args: string[],
  options: SpawnToolOptions = {},
): Promise<string> {
  const tool = spawnAs(osUser, command, args, { stdin: 'ignore', ...options });
  const chunks: Buffer[] = [];
  let size = 0;
  tool.stdout?.on('data', (chunk: Buffer) => {
    if (size < 4 * 1024 * 1024) chunks.push(chunk);
    size += chunk.length;
  });
  const closed = new Promise<void>((resolve) => {
    if (!tool.stdout) return resolve();
    tool.stdout.on('close', () => resolve());
    tool.stdout.on('error', () => resolve());
  });
  await tool.done;
  await closed;
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The numeric user and group id of an operating-system user (`id -u`, `id -g`).
 * @throws SourceError when there is no such user.
 */
export async function userIds(user: string): Promise<{ uid: number; gid: number }> {
  const id = (flag: string) =>
    new Promise<number>((resolve, reject) => {
      execFile('id', [flag, user], { encoding: 'utf8' }, (error, stdout) => {
        if (error) reject(new SourceError(`there is no operating-system user '${user}' (source.osUser)`));
        else resolve(Number(stdout.trim()));
      });
    });
  return { uid: await id('-u'), gid: await id('-g') };
}
