/**
 * The agent's own state on a host: job locks (agent/job-lock.ts), the record of each job's last
 * scheduled run (`schedule status` reads it where no systemd can tell) and when a throttled alert (a
 * failing wal-push) was last sent. Nothing here is needed to
 * restore: the vault holds everything that matters; this directory only coordinates runs on one host.
 *
 * Where: `$STRONGBOX_STATE_DIR` when set, else `/var/lib/strongbox` for root, else
 * `$XDG_STATE_HOME/strongbox` (`~/.local/state/strongbox`) — or, for a service user whose home cannot
 * be written (`nobody`, HOME=/nonexistent), a private `strongbox-<uid>` in the system's temp directory.
 * Created (mode 0700) when first needed.
 */
import { createHash } from 'node:crypto';
import { accessSync, constants, lstatSync, mkdirSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
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

/**
 * A short name of a vault for file names in the state directory: two plans (or two tests) whose jobs
 * share a name but not a vault never share a lock or a run record; two plan files that write the same
 * job to the same vault do.
 * @example vaultScope({ url: 'file:///mnt/nas/strongbox' }) // 'a1b2c3d4e5f6' (12 hex digits)
 */
export function vaultScope(vault: { url: string; endpoint?: string }): string {
  return createHash('sha256')
    .update(`${vault.url}\n${vault.endpoint ?? ''}`)
    .digest('hex')
    .slice(0, 12);
}

function lastRunPath(stateDir: string, vault: string, job: string, command: string): string {
  return join(stateDir, 'runs', `${job}.${vault}.${command}.json`);
}

/** Records a run, atomically (a reader sees the old record or the new one, never half of one). */
export async function recordLastRun(stateDir: string, vault: string, run: LastRun): Promise<void> {
  await writeRecord(lastRunPath(stateDir, vault, run.job, run.command), run);
}

/** Writes a JSON record atomically (temp file then rename), creating its directory when needed. */
async function writeRecord(path: string, record: object): Promise<void> {
  await ensureStateDir(dirname(path));
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  await rename(temp, path);
}

/** The recorded last run of a job's command, or undefined when there is none (or it is unreadable). */
export async function readLastRun(
  stateDir: string,
  vault: string,
  job: string,
  command: string,
): Promise<LastRun | undefined> {
  try {
    const run = JSON.parse(await readFile(lastRunPath(stateDir, vault, job, command), 'utf8')) as LastRun;
    return typeof run.finishedAt === 'string' && typeof run.exitCode === 'number' ? run : undefined;
  } catch {
    return undefined;
  }
}

function alertPath(stateDir: string, vault: string, job: string, kind: string): string {
  return join(stateDir, 'alerts', `${job}.${vault}.${kind}.json`);
}

/** When an alert of this kind was last sent for the job, or undefined (never, or since {@link forgetAlert}). */
export async function lastAlertSent(
  stateDir: string,
  vault: string,
  job: string,
  kind: string,
): Promise<Date | undefined> {
  try {
    const { sentAt } = JSON.parse(await readFile(alertPath(stateDir, vault, job, kind), 'utf8')) as {
      sentAt?: unknown;
    };
    const at = typeof sentAt === 'string' ? new Date(sentAt) : undefined;
    return at && !Number.isNaN(at.getTime()) ? at : undefined;
  } catch {
    return undefined;
  }
}

/** Remembers that an alert of this kind was sent for the job (atomically, like {@link recordLastRun}). */
export async function recordAlertSent(
  stateDir: string,
  vault: string,
  job: string,
  kind: string,
  sentAt: Date,
): Promise<void> {
  await writeRecord(alertPath(stateDir, vault, job, kind), { sentAt: sentAt.toISOString() });
}

/** Forgets the last alert of this kind (the condition it was about has cleared). */
export async function forgetAlert(stateDir: string, vault: string, job: string, kind: string): Promise<void> {
  await rm(alertPath(stateDir, vault, job, kind), { force: true });
}
