/**
 * `strongbox doctor`: everything a backup needs, checked one line at a time before a backup needs it —
 * what each job's source needs (its driver's own checks: for postgres the database reachable with the
 * configured credentials and tools new enough for the server, for files the paths readable), the
 * compressor, the vault writable and readable, the key usable, and space left in a file vault.
 */
import { randomBytes } from 'node:crypto';
import { statfs } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { formatBytes } from '#agent/format';
import { toolVersion } from '#agent/pipeline/child';
import { sourceContext } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import { probe } from '#agent/sources/kit';
import { listBackups } from '#core/catalog';
import { type Job, selectJobs } from '#core/plan';
import type { DoctorCheck } from '#core/ports';
import type { Outcome } from './outcome';

export type { DoctorCheck };

/** Runs every check; exit 2 if any failed, 1 if only warnings. */
export async function doctorCommand(
  runtime: Runtime,
  options: { jobs?: readonly string[] },
): Promise<Outcome> {
  const jobs = selectJobs(runtime.plan, options.jobs);
  const checks: DoctorCheck[] = [];
  if (jobs.some((j) => j.compression.algorithm === 'zstd')) {
    checks.push(await probe('zstd', () => toolVersion('zstd', ['-V'])));
  }
  for (const job of jobs) {
    const found = await sourceDriver(job.source).doctor(job.source, sourceContext(runtime, runtime.signal));
    checks.push(...found.map((check) => ({ ...check, subject: `${job.name}: ${check.subject}` })));
  }
  checks.push(await probe(`key (${runtime.plan.key.type})`, () => keyRoundTrip(runtime)));
  checks.push(await probe(`vault ${runtime.vault.url}`, () => vaultRoundTrip(runtime)));
  if (runtime.plan.vault.url.startsWith('file://')) {
    checks.push(await probe('vault free space', () => freeSpace(runtime, jobs), { warnOnly: true }));
  }
  const failed = checks.filter((c) => !c.ok && !c.warning).length;
  const warned = checks.filter((c) => !c.ok && c.warning).length;
  const text = [
    ...checks.map((c) => `${c.ok ? 'ok  ' : c.warning ? 'WARN' : 'FAIL'}  ${c.subject}: ${c.detail}`),
    failed ? `${failed} problem${failed === 1 ? '' : 's'} found` : 'everything a backup needs is in place',
  ].join('\n');
  return { exitCode: failed ? 2 : warned ? 1 : 0, json: { checks }, text };
}

async function keyRoundTrip(runtime: Runtime): Promise<string> {
  const context = { 'strongbox:job': 'doctor', 'strongbox:backup': 'doctor' };
  const dataKey = await runtime.keys.generateDataKey(context);
  const back = await runtime.keys.decryptDataKey(dataKey.wrapped, dataKey.key, context);
  if (!back.equals(dataKey.plaintext)) throw new Error('a data key did not unwrap to itself');
  return `data keys wrap and unwrap (${dataKey.key.type === 'local' ? `fingerprint ${dataKey.key.fingerprint}` : dataKey.key.keyId})`;
}

async function vaultRoundTrip(runtime: Runtime): Promise<string> {
  const key = `doctor/${runtime.host}-${randomBytes(4).toString('hex')}.probe`;
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
