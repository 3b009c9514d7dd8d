/**
 * The agent's own state on a host: job locks (agent/job-lock.ts) and the record of each job's last
 * scheduled run (`schedule status` reads it where no systemd can tell). Nothing here is needed to
 * restore: the vault holds everything that matters; this directory only coordinates runs on one host.
 *
 * Where: `$STRONGBOX_STATE_DIR` when set, else `/var/lib/strongbox` for root, else
 * `$XDG_STATE_HOME/strongbox` (`~/.local/state/strongbox`) — or, for a service user whose home cannot
 * be written (`nobody`, HOME=/nonexistent), a private `strongbox-<uid>` in the system's temp directory.
 * Created (mode 0700) when first needed.
 */
import { accessSync, constants, lstatSync, mkdirSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Env } from '#agent/runtime';
import { StrongboxError } from '#core/errors';

/** The environment variable that moves the state directory. */
export const STATE_DIR_ENV = 'STRONGBOX_STATE_DIR';

/**
 * The agent's state directory for this environment and user.
 * @example stateDirOf({ STRONGBOX_STATE_DIR: '/srv/strongbox-state' }) // '/srv/strongbox-state'
 */
export function stateDirOf(env: Env, uid: number | undefined = process.getuid?.()): string {
  const chosen = env[STATE_DIR_ENV];
  if (chosen) return chosen;
  if (uid === 0) return '/var/lib/strongbox';
  const home = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return canCreate(home) ? join(home, 'strongbox') : privateTempDir(uid);
}

/** Whether this user may create `path`: the nearest part of it that exists is a writable directory. */
function canCreate(path: string): boolean {
  for (let at = path; ; at = dirname(at)) {
    try {
      accessSync(at, constants.W_OK | constants.X_OK);
      return lstatSync(at).isDirectory();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(at) === at) return false;
    }
  }
}

/**
 * `<tmp>/strongbox-<uid>`, made mode 0700 and checked to be this user's own directory: in a directory
 * every user may write, another user could have made it first to read or steer the locks.
 */
function privateTempDir(uid: number | undefined): string {
  const path = join(tmpdir(), `strongbox-${uid ?? 'user'}`);
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const stat = lstatSync(path);
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o077) !== 0) {
    throw new StrongboxError(
      `state directory ${path} is not this user's private directory (uid ${uid}, mode 0700): ` +
        `remove it, or set ${STATE_DIR_ENV} to a directory this user owns`,
    );
  }
  return path;
}

/** Creates a directory of the state (and its parents) when it does not exist yet. */
export async function ensureStateDir(path: string): Promise<string> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  return path;
}

/** What the agent remembers of one job's last run of one command (`backup`, `drill`, `verify`, `prune`). */
export interface LastRun {
  command: string;
  job: string;
  startedAt: string;
  finishedAt: string;
  /** The run's exit status: 0 ok, 1 warning, 2 error, 75 refused (the job was running). */
  exitCode: number;
  /** The error line's message when it failed. */
  error?: string;
}

function lastRunPath(stateDir: string, plan: string, job: string, command: string): string {
  return join(stateDir, 'runs', `${plan}.${job}.${command}.json`);
}

/** Records a run, atomically (a reader sees the old record or the new one, never half of one). */
export async function recordLastRun(stateDir: string, plan: string, run: LastRun): Promise<void> {
  const path = lastRunPath(stateDir, plan, run.job, run.command);
  await ensureStateDir(join(stateDir, 'runs'));
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(run)}\n`, { mode: 0o600 });
  await rename(temp, path);
}

/** The recorded last run of a job's command, or undefined when there is none (or it is unreadable). */
export async function readLastRun(
  stateDir: string,
  plan: string,
  job: string,
  command: string,
): Promise<LastRun | undefined> {
  try {
    const run = JSON.parse(await readFile(lastRunPath(stateDir, plan, job, command), 'utf8')) as LastRun;
    return typeof run.finishedAt === 'string' && typeof run.exitCode === 'number' ? run : undefined;
  } catch {
    return undefined;
  }
}
