/**
 * One run of a job at a time on a host: a lock file per job in the agent's state directory
 * (`<state>/locks/<job>.<vault>.lock`, `<vault>` naming the vault the job writes to, agent/state
 * `vaultScope`: the job is its backups in that vault, whichever plan file names them), taken by `backup`, `prune` and `restore --replace` before they
 * touch the job and released when they end.
 *
 * The lock is created with its content in one step (written to a temporary file, then hard-linked to
 * the lock's name, which fails when the name exists), so a lock file is never seen half written. It
 * records the holder's pid, host, command, start time and the kernel's start time of that pid
 * (`/proc/<pid>/stat`), so a lock whose holder died (killed, crashed, power lost) is recognised even
 * when its pid was reused, and is taken over. Taking over is itself serialised by a short-lived
 * `<lock>.takeover` file, so of two runs that find the same stale lock only one takes it.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { processRuns } from '#agent/pipeline/child';
import type { Runtime } from '#agent/runtime';
import { ensureStateDir, stateDirOf, vaultScope } from '#agent/state';
import { describeError, JobLockedError, StrongboxError } from '#core/errors';

/** What a lock file says about its holder. */
export interface LockHolder {
  pid: number;
  host: string;
  /** The command holding it: `backup`, `prune`, `restore --replace`. */
  command: string;
  startedAt: string;
  /** The holder's process start time in clock ticks since boot (`/proc/<pid>/stat` field 22). */
  processStart?: string;
  /** Tells this holder's lock from a later one with the same pid. */
  token: string;
}

/** A held lock. */
export interface JobLock {
  path: string;
  holder: LockHolder;
  /** Removes the lock if it is still this run's; never fails the run it ends. */
  release(): Promise<void>;
}

/** How long a `.takeover` file may exist before it counts as left behind by a dead run. */
const TAKEOVER_STALE_MS = 10_000;

/** The start time of a process, or undefined when /proc does not say (not Linux, gone). */
export function processStartOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the holder of a lock still runs. A holder on another host is assumed to. */
export function holderRuns(holder: LockHolder, host = hostname()): boolean {
  if (holder.host !== host) return true;
  if (!processRuns(holder.pid)) return false;
  const start = processStartOf(holder.pid);
  return holder.processStart === undefined || start === undefined || start === holder.processStart;
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const holder = JSON.parse(text) as LockHolder;
    return Number.isInteger(holder.pid) && typeof holder.token === 'string' ? holder : undefined;
  } catch {
    return undefined;
  }
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/** Creates `path` holding `text`, or fails with EEXIST: never a moment with the name and no content. */
async function createWithContent(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.${randomUUID()}.tmp`;
  await writeFile(temp, text, { mode: 0o600 });
  try {
    await link(temp, path);
  } finally {
    await unlinkIfPresent(temp);
  }
}

/** Options of {@link acquireJobLock}. */
export interface AcquireOptions {
  /** The agent's state directory (agent/state `stateDirOf`); its `locks/` is created when missing. */
  stateDir: string;
  /** The vault the job writes to (agent/state `vaultScope`). */
  vault: string;
  job: string;
  command: string;
  now: Date;
  /** Where a taken-over lock is reported. */
  log?: (line: string) => void;
}

/**
 * Takes the lock of one job, taking over a lock whose holder no longer runs.
 * @throws JobLockedError naming the holder (`job db is already running (backup, pid 123 since …)`).
 * @example const lock = await acquireJobLock({ stateDir, vault, job: 'db', command: 'backup', now });
 */
export async function acquireJobLock(options: AcquireOptions): Promise<JobLock> {
  const dir = await ensureStateDir(join(options.stateDir, 'locks'));
  const path = join(dir, `${options.job}.${options.vault}.lock`);
  const taken = await tryLockFile(path, {
    what: `job ${options.job}`,
    command: options.command,
    now: options.now,
    log: options.log,
  });
  if ('path' in taken) return taken;
  const other = taken.heldBy;
  const where = other.host === hostname() ? '' : ` on ${other.host}`;
  throw new JobLockedError(
    `job ${options.job} is already running (${other.command}, pid ${other.pid}${where}, since ${other.startedAt}); this run changed nothing (lock ${path})`,
  );
}

/** Options of {@link tryLockFile}. */
export interface LockFileOptions {
  /** What the lock is of, for messages: `job db`, `the WAL pusher of job db`. */
  what: string;
  /** The command taking it, recorded for whoever finds it held. */
  command: string;
  now: Date;
  /** Where a taken-over lock is reported. */
  log?: (line: string) => void;
}

/**
 * Takes the lock file at `path` (its directory exists) for this process, taking over a lock whose
 * holder no longer runs — the one-holder rule of job locks, for any lock file of the agent.
 * @returns the lock, or the holder that runs and has it.
 * @throws JobLockedError when the lock kept changing hands; StrongboxError when it cannot be written.
 */
export async function tryLockFile(
  path: string,
  options: LockFileOptions,
): Promise<JobLock | { heldBy: LockHolder }> {
  const holder: LockHolder = {
    pid: process.pid,
    host: hostname(),
    command: options.command,
    startedAt: options.now.toISOString(),
    processStart: processStartOf(process.pid),
    token: randomUUID(),
  };
  const text = `${JSON.stringify(holder)}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await createWithContent(path, text);
      return { path, holder, release: () => releaseLock(path, holder.token, options.log) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StrongboxError(`cannot take the lock of ${options.what} (${path})`, { cause: error });
      }
    }
    const found = await readText(path);
    if (found === undefined) continue; // released meanwhile: try again
    const other = parseHolder(found);
    if (other && holderRuns(other)) return { heldBy: other };
    if (await takeOver(path, found)) {
      options.log?.(
        other
          ? `${options.what}: took over the lock of pid ${other.pid} (${other.command} since ${other.startedAt}), which no longer runs`
          : `${options.what}: took over an unreadable lock file ${path}`,
      );
    }
  }
  throw new JobLockedError(`${options.what}: its lock ${path} kept changing hands; try again`);
}

/** Removes a stale lock if it still holds `stale`; false when another run got there first. */
async function takeOver(path: string, stale: string): Promise<boolean> {
  const guard = `${path}.takeover`;
  try {
    await createWithContent(guard, `${process.pid}\n`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const age = await stat(guard).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > TAKEOVER_STALE_MS) await unlinkIfPresent(guard);
    else await new Promise((resolve) => setTimeout(resolve, 50));
    return false;
  }
  try {
    if ((await readText(path)) !== stale) return false;
    await unlinkIfPresent(path);
    return true;
  } finally {
    await unlinkIfPresent(guard);
  }
}

async function releaseLock(path: string, token: string, log?: (line: string) => void): Promise<void> {
  try {
    if (parseHolder((await readText(path)) ?? '')?.token === token) await unlink(path);
  } catch (error) {
    // A lock left behind is taken over by the next run; failing the run that ends here would be worse.
    log?.(`could not release the lock ${path}: ${describeError(error)}`);
  }
}

/**
 * Runs `work` holding the locks of the given jobs (taken in plan order, released in reverse, also when
 * `work` fails).
 * @throws JobLockedError when a job is already running; no lock of this run is left behind.
 */
export async function withJobLocks<T>(
  options: Omit<AcquireOptions, 'job'> & { jobs: readonly string[] },
  work: () => Promise<T>,
): Promise<T> {
  const held: JobLock[] = [];
  try {
    for (const job of options.jobs) held.push(await acquireJobLock({ ...options, job }));
    return await work();
  } finally {
    for (const lock of held.reverse()) await lock.release();
  }
}

/**
 * The lock options of a command run from a runtime: the state directory its environment names, the
 * plan's vault, the clock and the progress log.
 */
export function lockOptionsOf(runtime: Runtime, command: string): Omit<AcquireOptions, 'job'> {
  return {
    stateDir: stateDirOf(runtime.env),
    vault: vaultScope(runtime.plan.vault),
    command,
    now: runtime.clock.now(),
    log: runtime.log,
  };
}
