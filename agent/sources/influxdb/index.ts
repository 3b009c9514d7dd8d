/**
 * The influxdb source driver (InfluxDB 1.x). A backup runs `influxd backup -portable` against influxd's
 * RPC service (online; the server keeps serving). The tool writes only into a directory — the metadata
 * (`<stamp>.meta`), one `tar.gz` per shard and a `<stamp>.manifest` naming them — so it writes them
 * into a private staging directory (mode 0700, below `stagingDir` or the system temp directory) that is
 * removed on every exit path; each file is then streamed to the vault as one object of the backup, with
 * no second copy. The manifest records the server version and, per database, each measurement's series
 * just before and after the backup.
 *
 * A restore writes the objects into a private staging directory again (influxd restore reads only a
 * directory) and runs `influxd restore -portable`:
 * - into a directory (an absolute target): a new data directory that a scratch influxd, on free ports,
 *   serves while the tool restores into it; drills check it in another scratch influxd;
 * - into a database name (any other target): a new database on the job's own server (`-db X -newdb Y`),
 *   refused when that database exists; the backup must hold one database.
 * Checks compare databases, measurements and series counts with the manifest.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { spawnTool, toolVersion } from '#agent/pipeline/child';
import type { Finding } from '#core/agent-output';
import { describeError, RestoreError, SourceError, StrongboxError } from '#core/errors';
import type {
  DoctorCheck,
  RestoreInput,
  SourceBackup,
  SourceDriver,
  SourceObject,
  TargetCheck,
} from '#core/ports';
import type { InfluxdbDetails, InfluxdbSourceConfig } from '#core/sources/index';
import { influxdbSource } from '#core/sources/influxdb';
import { resolvePassword, type SourceContext } from '../context';
import { claimNewDirectory, directoryTargets, probe } from '../kit';
import {
  databasesOf,
  describeInflux,
  type InfluxEndpoint,
  measurementsOf,
  pingInflux,
  queryInflux,
  quoteIdentifier,
} from './http';
import { startScratchInflux } from './scratch';
import { waitUntilUploadsTaken } from './uploads';

export { type ScratchInflux, startScratchInflux } from './scratch';

/** Measurements and their series, per database. */
type Counts = Map<string, Map<string, number>>;

/** How long the RPC service may take to accept a connection before a backup is refused. */
const RPC_CONNECT_TIMEOUT_MS = 5_000;

async function endpointOf(config: InfluxdbSourceConfig, ctx: SourceContext): Promise<InfluxEndpoint> {
  const password = await resolvePassword(config, ctx);
  return { host: config.host, port: config.port, user: config.user, password };
}

/** The environment influxd runs in: no `INFLUXDB_*` setting of the agent's leaks into it. */
function toolEnv(ctx: SourceContext): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(ctx.env).filter(([name]) => !name.startsWith('INFLUXDB_')));
}

/** Measurements and series of the given databases (or every one but `_internal`). */
async function countsOf(
  endpoint: InfluxEndpoint,
  only: string | undefined,
  signal?: AbortSignal,
): Promise<Counts> {
  const all = await databasesOf(endpoint, signal);
  if (only !== undefined && !all.includes(only)) {
    throw new SourceError(
      `${describeInflux(endpoint)}: database '${only}' does not exist (databases: ${all.join(', ') || 'none'})`,
    );
  }
  const counts: Counts = new Map();
  for (const db of only !== undefined ? [only] : all)
    counts.set(db, await measurementsOf(endpoint, db, signal));
  return counts;
}

/**
 * Fails fast when influxd's RPC service does not accept connections: `influxd backup` itself retries a
 * refused connection for minutes before it gives up.
 */
async function probeRpc(host: string, port: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = connect({ host, port, signal });
    socket.setTimeout(RPC_CONNECT_TIMEOUT_MS);
    const fail = (why: string) => {
      socket.destroy();
      reject(
        new SourceError(
          `influxd's backup service at ${host}:${port} ${why}: check the top-level bind-address in influxdb.conf and source.rpcPort`,
        ),
      );
    };
    socket.once('connect', () => {
      socket.end();
      resolve();
    });
    socket.once('timeout', () => fail(`did not answer within ${RPC_CONNECT_TIMEOUT_MS} ms`));
    socket.once('error', (error) => fail(`refused the connection (${error.message})`));
  });
}

/**
 * A private staging directory (mode 0700) below `stagingDir` (created as needed) or the temp directory.
 */
async function makeStaging(config: InfluxdbSourceConfig, label: string): Promise<string> {
  const parent = config.stagingDir ?? tmpdir();
  await mkdir(parent, { recursive: true, mode: 0o700 });
  return mkdtemp(join(parent, `strongbox-influxdb-${label}-`));
}

/** Staging files in the order they are stored: the metadata, the shards, the tool's manifest last. */
function storeOrder(a: string, b: string): number {
  const rank = (name: string) => (name.endsWith('.meta') ? 0 : name.endsWith('.manifest') ? 2 : 1);
  return rank(a) - rank(b) || a.localeCompare(b, 'en', { numeric: true });
}

/**
 * Starts a backup: checks the HTTP API (version, counts) and the RPC service, then runs `influxd backup
 * -portable` into a private staging directory and yields its files once it exited 0. `done` resolves
 * after every file was streamed and the counts were taken again; the staging directory is removed
 * whatever happens.
 * @throws SourceError when the server cannot be reached or the database does not exist.
 */
export async function backupInflux(
  config: InfluxdbSourceConfig,
  ctx: SourceContext,
): Promise<SourceBackup<InfluxdbDetails>> {
  const endpoint = await endpointOf(config, ctx);
  const where = describeInflux(endpoint);
  const serverVersion = await pingInflux(endpoint, ctx.signal);
  const before = await countsOf(endpoint, config.database, ctx.signal);
  await probeRpc(config.host, config.rpcPort, ctx.signal);
  const tool = (await toolVersion(config.serverBinary, ['version'])).replace(/^InfluxDB\s*/, '');

  const staging = await makeStaging(config, 'backup');
  let removal: Promise<void> | undefined;
  const removeStaging = () => {
    removal ??= rm(staging, { recursive: true, force: true });
    return removal;
  };
  const backup = spawnTool(
    config.serverBinary,
    [
      'backup',
      '-portable',
      '-host',
      `${config.host}:${config.rpcPort}`,
      ...(config.database !== undefined ? ['-database', config.database] : []),
      staging,
    ],
    { env: toolEnv(ctx), signal: ctx.signal, stdin: 'ignore', stdout: 'ignore', name: 'influxd' },
  );
  const written = (async () => {
    await backup.done;
    const files = (await readdir(staging)).sort(storeOrder);
    if (!files.some((f) => f.endsWith('.manifest'))) {
      throw new SourceError(`${where}: influxd backup exited 0 but wrote no manifest`);
    }
    return files;
  })();
  written.catch(() => {});

  let streamedAll: () => void = () => {};
  let streamFailed: (error: unknown) => void = () => {};
  const streamed = new Promise<void>((resolve, reject) => {
    streamedAll = resolve;
    streamFailed = reject;
  });
  streamed.catch(() => {});
  const onAbort = () => streamFailed(ctx.signal?.reason);
  ctx.signal?.addEventListener('abort', onAbort, { once: true });

  async function* objects(): AsyncGenerator<SourceObject> {
    try {
      for (const name of await written) {
        const stream = createReadStream(join(staging, name));
        const ended = new Promise<void>((resolve, reject) => {
          stream.once('end', () => resolve());
          stream.once('close', () =>
            stream.readableEnded ? resolve() : reject(new SourceError(`${name}: not read to the end`)),
          );
          stream.once('error', reject);
        });
        ended.catch(() => {});
        yield { name, stream };
        await ended;
      }
      streamedAll();
    } catch (error) {
      streamFailed(error);
      throw error;
    } finally {
      // Stopped early (the consumer failed): nothing is left behind.
      streamFailed(new SourceError(`${where}: the backup's files were not all stored`));
    }
  }

  const done = (async () => {
    try {
      const files = await written;
      await streamed;
      const after = await countsOf(endpoint, config.database, ctx.signal).catch((error: unknown) => {
        // A database dropped meanwhile: the backup holds what it held; count it as empty afterwards.
        if (config.database !== undefined) throw error;
        return new Map() as Counts;
      });
      const details: InfluxdbDetails = {
        kind: 'influxdb',
        version: 1,
        serverVersion,
        databases: [...before.keys()].map((name) => {
          const was = before.get(name) ?? new Map<string, number>();
          const now = after.get(name) ?? new Map<string, number>();
          const measurements = [...new Set([...was.keys(), ...now.keys()])].sort();
          return {
            name,
            measurements: measurements.map((m) => ({
              name: m,
              series: was.get(m) ?? 0,
              seriesAfter: now.get(m) ?? 0,
            })),
          };
        }),
        files,
      };
      return { details, tools: { influxd: tool } };
    } catch (error) {
      throw error instanceof StrongboxError
        ? error
        : new SourceError(`backup of ${where} failed: ${describeError(error)}`, { cause: error });
    } finally {
      ctx.signal?.removeEventListener('abort', onAbort);
      await removeStaging();
    }
  })();
  done.catch(() => {});
  return { objects: objects(), done };
}

/** Writes every object of a backup into `dir` under its own name (what influxd restore reads). */
async function stageObjects(input: RestoreInput, dir: string): Promise<void> {
  for (const { name } of input.objects) {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new RestoreError(`the backup has a bad object name '${name}'`);
    const stream: Readable = await input.open(name);
    await pipeline(stream, createWriteStream(join(dir, name), { mode: 0o600, flags: 'wx' }));
  }
}

/** How far `influxd restore` got: `meta` once the server took the databases (the point of no return). */
type RestoreProgress = { meta: boolean };

/**
 * Runs `influxd restore -portable` on a staging directory. `progress.meta` stays false while the server
 * has not created the restored databases: the tool failed with `error updating meta` (the server refused
 * a database that exists, atomically) or never got that far.
 */
async function runRestoreTool(
  config: InfluxdbSourceConfig,
  rpc: string,
  staging: string,
  ctx: SourceContext,
  rename?: { db: string; newdb: string },
): Promise<RestoreProgress> {
  const progress: RestoreProgress = { meta: false };
  const tool = spawnTool(
    config.serverBinary,
    [
      'restore',
      '-portable',
      '-host',
      rpc,
      ...(rename ? ['-db', rename.db, '-newdb', rename.newdb] : []),
      staging,
    ],
    {
      env: toolEnv(ctx),
      signal: ctx.signal,
      stdin: 'ignore',
      stdout: 'pipe',
      name: 'influxd',
    },
  );
  // The tool prints "Restoring shard N live from backup …" on stdout once the server took the meta.
  const lines = createInterface({ input: tool.stdout as Readable, crlfDelay: Number.POSITIVE_INFINITY });
  const read = (async () => {
    for await (const line of lines) if (/Restoring shard/.test(line)) progress.meta = true;
  })().catch(() => {});
  try {
    await Promise.all([tool.done, read]);
    progress.meta = true;
    return progress;
  } catch (error) {
    throw Object.assign(
      new RestoreError(`influxd restore failed: ${describeError(error)}`, { cause: error }),
      {
        progress,
      },
    );
  }
}

/** How long a restore waits for the server to take the uploads and show the manifest's counts. */
const SERVED_TIMEOUT_MS = 120_000;

/**
 * Waits until the server took every shard upload `influxd restore` sent (see uploads.ts) and then shows
 * what the manifest recorded (`compareCounts`): a database restored into a live server also answers
 * `shard is disabled` for a moment. Without details (none recorded) it waits until the databases answer.
 * @throws RestoreError naming the counts that still differ, or with the server's last answer.
 */
async function waitUntilRestored(
  endpoint: InfluxEndpoint,
  rpcPort: number,
  restored: {
    details: InfluxdbDetails | undefined;
    databases: string[];
    rename?: { from: string; to: string };
  },
  signal?: AbortSignal,
): Promise<void> {
  const where = describeInflux(endpoint);
  await waitUntilUploadsTaken(rpcPort, { timeoutMs: SERVED_TIMEOUT_MS, signal, where });
  const deadline = Date.now() + SERVED_TIMEOUT_MS;
  for (;;) {
    let failure: unknown;
    try {
      const found: Counts = new Map();
      for (const db of restored.databases) found.set(db, await measurementsOf(endpoint, db, signal));
      const failed = restored.details
        ? compareCounts(restored.details, found, restored.rename).filter((c) => !c.passed)
        : [];
      if (failed.length === 0) return;
      failure = new RestoreError(
        `${where}: the restored data does not match the backup's manifest: ${failed.map((c) => c.detail).join('; ')}`,
      );
    } catch (error) {
      failure = error;
    }
    if (Date.now() > deadline || signal?.aborted) throw failure;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Restores a backup into a new data directory: the target is created (it must not exist), served by a
 * scratch influxd while `influxd restore` runs, which is stopped (SIGTERM, waited for) only once it took
 * every shard and shows the manifest's counts. On failure the target is removed and the first error
 * rethrown.
 */
async function restoreIntoDirectory(
  config: InfluxdbSourceConfig,
  input: RestoreInput,
  target: string,
  details: InfluxdbDetails | undefined,
  ctx: SourceContext,
): Promise<void> {
  await claimNewDirectory(target, 'influxdb');
  const staging = await makeStaging(config, 'restore');
  let scratch: Awaited<ReturnType<typeof startScratchInflux>> | undefined;
  try {
    await stageObjects(input, staging);
    scratch = await startScratchInflux(target, ctx, { binary: config.serverBinary });
    await runRestoreTool(config, `127.0.0.1:${scratch.rpcPort}`, staging, ctx);
    await waitUntilRestored(
      { host: '127.0.0.1', port: scratch.httpPort },
      scratch.rpcPort,
      { details, databases: details?.databases.map((d) => d.name) ?? [] },
      ctx.signal,
    );
    await scratch.stop();
    scratch = undefined;
  } catch (error) {
    await scratch?.stop();
    await rm(target, { recursive: true, force: true });
    throw error;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** The database of a backup that a restore into a database name restores. */
function sourceDatabase(config: InfluxdbSourceConfig, details: InfluxdbDetails | undefined, target: string) {
  const names = details?.databases.map((d) => d.name) ?? (config.database ? [config.database] : []);
  if (names.length !== 1) {
    throw new RestoreError(
      `a restore into database '${target}' restores one database, and this backup holds ${names.length} (${names.join(', ') || 'none recorded'}): restore it into a directory (an absolute --target) instead`,
    );
  }
  return names[0] as string;
}

/**
 * The databases a target names on the job's server, and whether they are the backup's own names: a
 * comma-separated list of exactly the backup's databases restores each under its own name (what a
 * whole-host recovery does); one name restores the backup's one database under that name.
 * @throws RestoreError for a list that is not the backup's databases, or one name for several.
 */
function databaseTarget(config: InfluxdbSourceConfig, details: InfluxdbDetails | undefined, target: string) {
  const names = target.split(',');
  const backedUp = details?.databases.map((d) => d.name) ?? (config.database ? [config.database] : []);
  if (names.length > 1 || (backedUp.length > 1 && target === backedUp.join(','))) {
    if ([...names].sort().join(',') !== [...backedUp].sort().join(',')) {
      throw new RestoreError(
        `target '${target}' lists databases, and a list must be exactly the backup's databases (${backedUp.join(', ') || 'none recorded'})`,
      );
    }
    return { names, rename: undefined };
  }
  return { names, rename: { from: sourceDatabase(config, details, target), to: target } };
}

/**
 * Restores into databases of the job's server: the backup's one database as a new database `target`
 * (`-db X -newdb Y`), or every database under its own name (a target listing them). A database that
 * exists is refused untouched: here first, for a clear message naming each, and by the server itself
 * when the tool sends the meta (influxd refuses an existing name atomically), so a database made by
 * someone else between the two is never written to. On failure the databases are dropped only when
 * this restore created them (the server took the meta), and the first error rethrown.
 */
async function restoreAsDatabase(
  config: InfluxdbSourceConfig,
  input: RestoreInput,
  target: string,
  details: InfluxdbDetails | undefined,
  ctx: SourceContext,
): Promise<void> {
  const endpoint = await endpointOf(config, ctx);
  const where = describeInflux(endpoint);
  const { names, rename } = databaseTarget(config, details, target);
  const existing = await databasesOf(endpoint, ctx.signal);
  const taken = names.filter((name) => existing.includes(name));
  if (taken.length > 0) {
    throw new RestoreError(
      `${taken.map((name) => `database '${name}'`).join(', ')} exist${taken.length === 1 ? 's' : ''} on ${where}: a restore creates new databases (left untouched)`,
    );
  }
  await probeRpc(config.host, config.rpcPort, ctx.signal);
  const staging = await makeStaging(config, 'restore');
  let created = false;
  try {
    await stageObjects(input, staging);
    try {
      await runRestoreTool(
        config,
        `${config.host}:${config.rpcPort}`,
        staging,
        ctx,
        rename && { db: rename.from, newdb: rename.to },
      );
    } catch (error) {
      created = (error as { progress?: RestoreProgress }).progress?.meta ?? false;
      const now = await databasesOf(endpoint).catch(() => [] as string[]);
      const raced = names.filter((name) => now.includes(name));
      if (!created && raced.length > 0) {
        throw new RestoreError(
          `${raced.map((name) => `database '${name}'`).join(', ')} ${raced.length === 1 ? 'exists' : 'exist'} on ${where} now (created by someone else while this restore ran): influxd refused to restore into ${raced.length === 1 ? 'it' : 'them'}, left untouched`,
          { cause: error },
        );
      }
      throw error;
    }
    created = true;
    await waitUntilRestored(endpoint, config.rpcPort, { details, databases: names, rename }, ctx.signal);
  } catch (error) {
    if (created) {
      for (const name of names) {
        await queryInflux(endpoint, `DROP DATABASE ${quoteIdentifier(name)}`, { method: 'POST' }).catch(
          () => {},
        );
      }
    }
    throw error;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Compares a restored server's counts with the manifest: `databases` (each backed-up database there),
 * `measurements` (each measurement that had series before or after the backup), `series` (each
 * measurement's series between the counts taken before and after). `rename` maps the backed-up database
 * to the one restored.
 */
export function compareCounts(
  details: InfluxdbDetails,
  found: Counts,
  rename?: { from: string; to: string },
): TargetCheck[] {
  const finding = (check: string, message: string): Finding => ({
    job: '',
    severity: 'critical',
    check,
    message,
  });
  const missingDbs: Finding[] = [];
  const missingMeasurements: Finding[] = [];
  const wrongSeries: Finding[] = [];
  let measurements = 0;
  let series = 0;
  for (const database of details.databases) {
    if (rename && database.name !== rename.from) continue;
    const name = rename ? rename.to : database.name;
    const restored = found.get(name);
    if (!restored) {
      missingDbs.push(finding('databases', `database '${name}' is missing`));
      continue;
    }
    for (const m of database.measurements) {
      const n = restored.get(m.name);
      const low = Math.min(m.series, m.seriesAfter);
      const high = Math.max(m.series, m.seriesAfter);
      if (n === undefined) {
        if (low > 0) missingMeasurements.push(finding('measurements', `${name}.${m.name} is missing`));
        continue;
      }
      measurements++;
      series += n;
      if (n < low || n > high) {
        const expected = low === high ? `${low}` : `between ${low} and ${high}`;
        wrongSeries.push(
          finding('series', `${name}.${m.name} has ${n} series, the backup recorded ${expected}`),
        );
      }
    }
  }
  const dbCount = rename ? 1 : details.databases.length;
  const check = (name: string, findings: Finding[], ok: string): TargetCheck => ({
    check: name,
    passed: findings.length === 0,
    detail: findings.length === 0 ? ok : findings.map((f) => f.message).join('; '),
    findings,
  });
  return [
    check('databases', missingDbs, `${dbCount} database(s), as the backup recorded`),
    check('measurements', missingMeasurements, `${measurements} measurement(s), as the backup recorded`),
    check('series', wrongSeries, `${series} series, as the backup recorded`),
  ];
}

/**
 * The checks of a restored target: a directory is served by a scratch influxd for them, a database is
 * read on the job's server. A restore's shards can take a moment to show their series: failing counts
 * are read again a few times before they are reported.
 */
export async function checkInflux(
  config: InfluxdbSourceConfig,
  details: InfluxdbDetails,
  target: string,
  ctx: SourceContext,
): Promise<TargetCheck[]> {
  const measure = async (
    endpoint: InfluxEndpoint,
    rename?: { from: string; to: string },
    only?: string[],
  ) => {
    let checks: TargetCheck[];
    for (let attempt = 1; ; attempt++) {
      try {
        const found: Counts = new Map();
        if (only) for (const db of only) found.set(db, await measurementsOf(endpoint, db, ctx.signal));
        const counts = only ? found : await countsOf(endpoint, undefined, ctx.signal);
        checks = compareCounts(details, counts, rename);
        if (checks.every((c) => c.passed) || attempt === 5) return checks;
      } catch (error) {
        if (attempt === 5) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  };
  const failed = (error: unknown): TargetCheck[] => {
    const message = `${target}: ${describeError(error)}`;
    return [
      {
        check: 'databases',
        passed: false,
        detail: message,
        findings: [{ job: '', severity: 'critical', check: 'databases', message }],
      },
    ];
  };
  if (!isAbsolute(target)) {
    try {
      const endpoint = await endpointOf(config, ctx);
      const existing = await databasesOf(endpoint, ctx.signal);
      const { names, rename } = databaseTarget(config, details, target);
      const missing = names.filter((name) => !existing.includes(name));
      if (missing.length > 0) {
        return failed(
          new RestoreError(
            `database '${missing.join("', '")}' does not exist on ${describeInflux(endpoint)}`,
          ),
        );
      }
      return await measure(endpoint, rename, names);
    } catch (error) {
      return failed(error);
    }
  }
  let scratch: Awaited<ReturnType<typeof startScratchInflux>>;
  try {
    await stat(join(target, 'meta'));
    scratch = await startScratchInflux(target, ctx, { binary: config.serverBinary });
  } catch (error) {
    return failed(error);
  }
  try {
    return await measure({ host: '127.0.0.1', port: scratch.httpPort });
  } catch (error) {
    return failed(error);
  } finally {
    await scratch.stop();
  }
}

/** influxd present, the HTTP API reachable with the configured credentials, the RPC service open. */
async function doctorInflux(config: InfluxdbSourceConfig, ctx: SourceContext): Promise<DoctorCheck[]> {
  return [
    await probe('influxd', () => toolVersion(config.serverBinary, ['version'])),
    await probe(describeInflux(config), async () => {
      const endpoint = await endpointOf(config, ctx);
      const version = await pingInflux(endpoint, ctx.signal);
      const databases = await databasesOf(endpoint, ctx.signal);
      if (config.database !== undefined && !databases.includes(config.database)) {
        throw new SourceError(
          `database '${config.database}' does not exist (databases: ${databases.join(', ')})`,
        );
      }
      return `InfluxDB ${version}, ${config.database !== undefined ? `database ${config.database}` : `${databases.length} database(s)`}`;
    }),
    await probe(`influxd backup service ${config.host}:${config.rpcPort}`, async () => {
      await probeRpc(config.host, config.rpcPort, ctx.signal);
      return 'accepts connections';
    }),
  ];
}

/** The `influxdb` driver. */
export const influxdbDriver: SourceDriver<'influxdb'> = {
  spec: influxdbSource,
  backup: backupInflux,
  restore: (config, input, { target, details, ctx }) =>
    isAbsolute(target)
      ? restoreIntoDirectory(config, input, target, details, ctx)
      : restoreAsDatabase(config, input, target, details, ctx),
  check: (config, details, { target, ctx }) => checkInflux(config, details, target, ctx),
  doctor: doctorInflux,
  targetExists: async (config, target, ctx) => {
    if (isAbsolute(target)) return directoryTargets.targetExists(config, target);
    const existing = await databasesOf(await endpointOf(config, ctx), ctx.signal);
    return target.split(',').some((name) => existing.includes(name));
  },
  discard: async (config, target, ctx) => {
    if (isAbsolute(target)) return directoryTargets.discard(config, target);
    const endpoint = await endpointOf(config, ctx);
    for (const name of target.split(','))
      await queryInflux(endpoint, `DROP DATABASE ${quoteIdentifier(name)}`, { method: 'POST' });
  },
  /** The backup's databases under their own names (a list when several), each one that exists named. */
  originalTarget: async (config, details, ctx) => {
    const endpoint = await endpointOf(config, ctx);
    const existing = await databasesOf(endpoint, ctx.signal);
    const names = details.databases.map((d) => d.name);
    return {
      target: names.join(','),
      via: 'target',
      occupied: names
        .filter((name) => existing.includes(name))
        .map((name) => `database '${name}' exists on ${describeInflux(endpoint)}`),
    };
  },
  scratchTarget: directoryTargets.scratchTarget,
};
