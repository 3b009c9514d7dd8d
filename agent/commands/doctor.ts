/**
 * `strongbox doctor`: everything a backup needs, checked one line at a time before a backup needs it —
 * tools present and new enough for the server, the database reachable with the configured credentials,
 * paths readable, the vault writable and readable, the key usable, and space left in a file vault.
 */
import { randomBytes } from 'node:crypto';
import { access, constants, statfs } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { formatBytes } from '#agent/format';
import { toolVersion } from '#agent/pipeline/child';
import type { Runtime } from '#agent/runtime';
import { resolvePassword } from '#agent/sources/context';
import { connectPostgres, locatePostgresTools, serverMajorOf } from '#agent/sources/postgres-connect';
import { listBackups } from '#core/catalog';
import { describeError } from '#core/errors';
import type { FilesSourceConfig, Job, PostgresSourceConfig } from '#core/plan';
import type { Outcome } from './outcome';

/** One line of the report. */
export interface DoctorCheck {
  ok: boolean;
  /** A warning does not fail the run (exit 1). */
  warning?: boolean;
  subject: string;
  detail: string;
}

type Probe = () => Promise<string>;

async function probe(
  subject: string,
  run: Probe,
  options: { warnOnly?: boolean } = {},
): Promise<DoctorCheck> {
  try {
    return { ok: true, subject, detail: await run() };
  } catch (error) {
    return { ok: false, warning: options.warnOnly, subject, detail: describeError(error) };
  }
}

/** Runs every check; exit 2 if any failed, 1 if only warnings. */
export async function doctorCommand(runtime: Runtime, options: { job?: string }): Promise<Outcome> {
  const jobs = runtime.plan.jobs.filter((j) => !options.job || j.name === options.job);
  const checks: DoctorCheck[] = [];
  if (jobs.some((j) => j.compression.algorithm === 'zstd')) {
    checks.push(await probe('zstd', () => toolVersion('zstd', ['-V'])));
  }
  for (const job of jobs) {
    if (job.source.kind === 'postgres') checks.push(...(await postgresChecks(runtime, job, job.source)));
    else checks.push(...(await filesChecks(job, job.source)));
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

async function postgresChecks(
  runtime: Runtime,
  job: Job,
  config: PostgresSourceConfig,
): Promise<DoctorCheck[]> {
  const ctx = { env: runtime.env };
  const checks: DoctorCheck[] = [];
  let serverMajor: number | undefined;
  checks.push(
    await probe(`${job.name}: database ${config.database} on ${config.host}:${config.port}`, async () => {
      const password = await resolvePassword(config, ctx);
      const client = await connectPostgres(config, config.database, password, ctx);
      try {
        serverMajor = await serverMajorOf(client);
        const { rows } = await client.query<{ v: string; size: string }>(
          'SELECT version() AS v, pg_size_pretty(pg_database_size(current_database())) AS size',
        );
        return `reachable as ${config.user}, ${rows[0]?.v.split(',')[0]}, ${rows[0]?.size}`;
      } finally {
        await client.end().catch(() => {});
      }
    }),
  );
  const tools = locatePostgresTools(config.binDir, serverMajor ?? 0);
  for (const [name, path] of [
    ['pg_dump', tools.pgDump],
    ['pg_restore', tools.pgRestore],
  ] as const) {
    checks.push(
      await probe(`${job.name}: ${name}`, async () => {
        const version = await toolVersion(path);
        const major = Number(/(\d+)(\.\d+)?/.exec(version)?.[1]);
        if (serverMajor !== undefined && major < serverMajor) {
          throw new Error(
            `${path} is ${version}, older than the server (${serverMajor}): install postgresql-client-${serverMajor}`,
          );
        }
        return `${path} (${version})`;
      }),
    );
  }
  return checks;
}

async function filesChecks(job: Job, config: FilesSourceConfig): Promise<DoctorCheck[]> {
  return Promise.all(
    config.paths.map((path) =>
      probe(`${job.name}: ${path}`, async () => {
        await access(path, constants.R_OK);
        return 'readable';
      }),
    ),
  );
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
