/**
 * `strongbox doctor`: everything a backup needs, checked one line at a time before a backup needs it —
 * what each job's source needs (its driver's own checks: for postgres the database reachable with the
 * configured credentials and tools new enough for the server, for files the paths readable), the
 * compressor, the vault writable and readable, the key usable, and space left in a file vault.
 */
import { randomBytes } from 'node:crypto';
import { readFile, realpath, stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describeAwsReply } from '#adapters/aws/errors';
import { openCopyRuntime } from '#agent/copy';
import { formatBytes } from '#agent/format';
import { toolVersion } from '#agent/pipeline/child';
import { sourceContext } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import { probe } from '#agent/sources/kit';
import { watchVaultStorage } from '#agent/storage-watch';
import { listBackups } from '#core/catalog';
import { describeError } from '#core/errors';
import { doctorProbeKey } from '#core/layout';
import { DOCTOR_KEY_CONTEXT } from '#core/manifest';
import { type Job, selectJobs } from '#core/plan';
import type { DoctorCheck, ObjectLockState } from '#core/ports';
import { usedRatio } from '#core/storage-watch';
import type { Outcome } from './outcome';

export type { DoctorCheck };

/** Seconds each check may take unless `--probe-timeout` says otherwise. */
export const DEFAULT_PROBE_TIMEOUT_SECONDS = 20;

export interface DoctorOptions {
  /** Jobs to check (default: every job of the plan). */
  jobs?: readonly string[];
  /** Seconds each check may take before it fails as hung (default 20). */
  probeTimeoutSeconds?: number;
}

/**
 * Runs every check, each within its time limit (a hung mount, a vault under /proc, a firewall that
 * drops packets fail their check instead of hanging doctor); exit 2 if any failed, 1 if only warnings.
 */
export async function doctorCommand(runtime: Runtime, options: DoctorOptions): Promise<Outcome> {
  const jobs = selectJobs(runtime.plan, options.jobs);
  const limitMs = (options.probeTimeoutSeconds ?? DEFAULT_PROBE_TIMEOUT_SECONDS) * 1000;
  const timed = <T>(subject: string, work: () => Promise<T>) =>
    withinTime(subject, work, limitMs, runtime.signal);
  const checks: DoctorCheck[] = [];
  if (jobs.some((j) => j.compression.algorithm === 'zstd')) {
    checks.push(await probe('zstd', () => timed('zstd', () => toolVersion('zstd', ['-V']))));
  }
  for (const job of jobs) {
    const subject = `${job.name}: source`;
    try {
      const found = await timed(subject, () =>
        sourceDriver(job.source).doctor(job.source, sourceContext(runtime, runtime.signal)),
      );
      checks.push(...found.map((check) => ({ ...check, subject: `${job.name}: ${check.subject}` })));
    } catch (error) {
      checks.push(await probe(subject, () => Promise.reject(error)));
    }
  }
  checks.push(await probe(`key (${runtime.plan.key.type})`, () => timed('key', () => keyRoundTrip(runtime))));
  checks.push(await probe(`vault ${runtime.vault.url}`, () => timed('vault', () => vaultRoundTrip(runtime))));
  const lock = runtime.plan.vault.objectLock;
  if (lock) {
    checks.push(
      await probe('vault object lock', () =>
        timed('vault object lock', () => objectLockMatches(runtime, lock)),
      ),
    );
  }
  if (runtime.plan.vault.url.startsWith('file://')) {
    const root = fileURLToPath(runtime.plan.vault.url);
    checks.push(
      await probe('vault mount', () => timed('vault mount', () => ownMount(root)), { warnOnly: true }),
    );
    checks.push(
      await probe('vault free space', () => timed('vault free space', () => freeSpace(runtime, jobs)), {
        warnOnly: true,
      }),
    );
    checks.push(await vaultFillCheck(runtime, timed));
  }
  // Each copy of the plan (3-2-1): its vault takes a write, and its own key, if it has one, works.
  for (const copy of runtime.plan.copies) {
    const subject = `copy ${copy.name}`;
    let target: Runtime;
    try {
      target = await openCopyRuntime(runtime, copy.name);
    } catch (error) {
      checks.push(await probe(subject, () => Promise.reject(error)));
      continue;
    }
    if (copy.key) {
      checks.push(
        await probe(`${subject}: key (${copy.key.type})`, () =>
          timed(`${subject} key`, () => keyRoundTrip(target)),
        ),
      );
    }
    checks.push(
      await probe(`${subject}: vault ${target.vault.url}`, () =>
        timed(`${subject} vault`, () => vaultRoundTrip(target)),
      ),
    );
  }
  const failed = checks.filter((c) => !c.ok && !c.warning).length;
  const warned = checks.filter((c) => !c.ok && c.warning).length;
  const text = [
    ...checks.map((c) => `${c.ok ? 'ok  ' : c.warning ? 'WARN' : 'FAIL'}  ${c.subject}: ${c.detail}`),
    failed ? `${failed} problem${failed === 1 ? '' : 's'} found` : 'everything a backup needs is in place',
  ].join('\n');
  return { exitCode: failed ? 2 : warned ? 1 : 0, json: { checks }, text };
}

/**
 * Runs one check with a time limit; the work may go on in the background (a syscall cannot be
 * cancelled), and the CLI exits when the report is printed.
 */
function withinTime<T>(
  subject: string,
  work: () => Promise<T>,
  limitMs: number,
  signal: AbortSignal,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new Error(
          `did not finish within ${limitMs / 1000}s (${subject} hangs: a stale mount, a firewall, a server that does not answer?)`,
        ),
      );
    }, limitMs);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work()
      .then(resolve, reject)
      .finally(() => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      });
  });
}

/**
 * Whether a file vault is on a mounted file system of its own: a vault on the root file system is
 * often a NAS that is not mounted, and backups would fill the root disk. Reads /proc/self/mountinfo
 * for the mount holding the vault (or the nearest existing parent, as a backup would create it).
 */
async function ownMount(root: string): Promise<string> {
  let existing = root;
  while (
    !(await stat(existing).then(
      () => true,
      () => false,
    )) &&
    dirname(existing) !== existing
  ) {
    existing = dirname(existing);
  }
  const real = await realpath(existing);
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => Boolean(point))
    .map((point) => point.replace(/\\040/g, ' '));
  const holding = mounts
    .filter((point) => point === '/' || real === point || real.startsWith(`${point}/`))
    .sort((a, b) => b.length - a.length)[0];
  if (holding === undefined || holding === '/') {
    throw new Error(
      `${root} is on the root file system, not on a mount of its own: if a disk or NAS should be mounted there, it is not, and backups would fill the root disk`,
    );
  }
  return `${root} is on the file system mounted at ${holding}`;
}

/**
 * The plan declares Object Lock (`vault.objectLock`): the bucket must have it enabled, with the plan's
 * default retention mode and days. An endpoint that ignores Object Lock (many S3-compatible servers)
 * or a bucket created without it would let anyone with the host's credentials delete every backup.
 */
async function objectLockMatches(
  runtime: Runtime,
  lock: NonNullable<Runtime['plan']['vault']['objectLock']>,
): Promise<string> {
  const wanted = `${lock.mode}, ${lock.days} days`;
  if (!runtime.vault.objectLock)
    throw new Error(
      `the plan asks for Object Lock (${wanted}), but ${runtime.vault.url} cannot lock objects`,
    );
  let state: ObjectLockState;
  try {
    state = await runtime.vault.objectLock();
  } catch (error) {
    throw new Error(
      `the plan asks for Object Lock (${wanted}), but ${runtime.vault.url} does not say it has it (${describeAwsReply(error) ?? describeError(error)}): an endpoint that ignores Object Lock leaves backups deletable`,
    );
  }
  if (!state.enabled) {
    throw new Error(
      `the plan asks for Object Lock (${wanted}), but the bucket of ${runtime.vault.url} has none: backups can be deleted with the host's credentials (Object Lock can only be enabled on a bucket that was created with it)`,
    );
  }
  const found = state.mode ? `${state.mode}, ${state.days ?? '?'} days` : 'no default retention';
  if (state.mode !== lock.mode || state.days !== lock.days) {
    throw new Error(`the bucket's Object Lock default retention is ${found}, the plan says ${wanted}`);
  }
  return `enabled, default retention ${found} as the plan says`;
}

async function keyRoundTrip(runtime: Runtime): Promise<string> {
  const context = { ...DOCTOR_KEY_CONTEXT };
  const dataKey = await runtime.keys.generateDataKey(context);
  const back = await runtime.keys.decryptDataKey(dataKey.wrapped, dataKey.key, context);
  if (!back.equals(dataKey.plaintext)) throw new Error('a data key did not unwrap to itself');
  return `data keys wrap and unwrap (${dataKey.key.type === 'local' ? `fingerprint ${dataKey.key.fingerprint}` : dataKey.key.keyId})`;
}

async function vaultRoundTrip(runtime: Runtime): Promise<string> {
  const key = doctorProbeKey(runtime.host, randomBytes(4).toString('hex'));
  const body = randomBytes(64);
  await runtime.vault.put(key, Readable.from([body]));
  const parts: Buffer[] = [];
  for await (const part of await runtime.vault.get(key)) parts.push(part as Buffer);
  if (!Buffer.concat(parts).equals(body)) throw new Error(`${key} read back different bytes`);
  try {
    await runtime.vault.delete([key]);
    return 'write, read and delete work';
  } catch {
    return `write and read work (the probe ${key} could not be deleted: hosts on AWS may not delete, by design)`;
  }
}

async function freeSpace(runtime: Runtime, jobs: readonly Job[]): Promise<string> {
  const root = fileURLToPath(runtime.plan.vault.url);
  const stats = await statfs(root);
  const free = stats.bavail * stats.bsize;
  let largest = 0;
  for (const job of jobs) {
    for (const backup of await listBackups(runtime.vault, job.name)) {
      largest = Math.max(
        largest,
        backup.objects.reduce((sum, o) => sum + o.sizeBytes, 0),
      );
    }
  }
  if (largest > 0 && free < largest * 2) {
    throw new Error(
      `${formatBytes(free)} free, less than twice the largest backup (${formatBytes(largest)})`,
    );
  }
  return `${formatBytes(free)} free${largest ? `, largest backup ${formatBytes(largest)}` : ''}`;
}

/**
 * The storage watch (core/storage-watch): the vault's file system against the plan's `storage`
 * thresholds. Fuller than the warning level is a warning, than the critical level a failure; a file
 * system that cannot be measured is a warning.
 */
async function vaultFillCheck(
  runtime: Runtime,
  timed: <T>(subject: string, work: () => Promise<T>) => Promise<T>,
): Promise<DoctorCheck> {
  const subject = 'vault fill';
  try {
    const { usage, findings } = await timed(subject, () => watchVaultStorage(runtime, 'doctor'));
    const worst = findings[0];
    if (worst) {
      return {
        ok: false,
        ...(worst.severity === 'critical' ? {} : { warning: true }),
        subject,
        detail: worst.message,
      };
    }
    const { warnAbovePercent, criticalAbovePercent } = runtime.plan.storage;
    const percent = usage ? (usedRatio(usage) * 100).toFixed(1) : '?';
    return {
      ok: true,
      subject,
      detail: `${percent}% full (warning above ${warnAbovePercent}%, critical above ${criticalAbovePercent}%)`,
    };
  } catch (error) {
    return { ok: false, warning: true, subject, detail: describeError(error) };
  }
}
