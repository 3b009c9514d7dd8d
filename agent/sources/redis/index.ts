/**
 * The redis source driver. A backup is one object, `dump.rdb`: the RDB a replica would be sent
 * (`redis-cli --rdb -`, no fork-and-write on our side, the server keeps serving) or, with `bgsave`, the
 * file a finished BGSAVE wrote, opened once the server reports the save done — never a half-written
 * file. The manifest records the server version, keys per database just before and after the snapshot,
 * and sampled keys (type and a digest of the value). A restore writes the RDB into a new directory; checks load
 * it into a scratch redis-server on a free port and compare counts and samples with the manifest.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { spawnTool, toolVersion } from '#agent/pipeline/child';
import { Meter } from '#agent/pipeline/meter';
import type { Finding } from '#core/agent-output';
import { describeError, RestoreError, SourceError, StrongboxError } from '#core/errors';
import type { DoctorCheck, SourceBackup, SourceDriver, TargetCheck } from '#core/ports';
import type { RedisDetails, RedisSourceConfig } from '#core/sources/index';
import { redisSource } from '#core/sources/redis';
import { resolvePassword, type SourceContext } from '../context';
import { claimNewDirectory, directoryTargets, EndGate, oneObject, probe } from '../kit';
import {
  cliEnv,
  connectionArgs,
  describeEndpoint,
  parseInfo,
  parseKeyspace,
  quotedStrings,
  type RedisEndpoint,
  redisCli,
} from './cli';
import { redisReplace } from './replace';
import { RDB_FILE, startScratchRedis } from './scratch';

export { freePort, RDB_FILE, type ScratchRedis, startScratchRedis } from './scratch';

/** The backup's one object. */
const OBJECT = 'dump.rdb';
/** How often a BGSAVE's progress is polled. */
const POLL_MS = 100;

function endpointOf(config: RedisSourceConfig): RedisEndpoint {
  return { host: config.host, port: config.port, user: config.user, tls: config.tls };
}

/** An RDB stream and the promise that it was produced whole. */
interface Snapshot {
  method: 'replication' | 'bgsave';
  stream: Readable;
  done: Promise<void>;
}

/**
 * Starts a backup: connects (so a wrong password or host fails here), records the version, the key
 * counts and the samples, then starts the snapshot. `done` resolves after the RDB was streamed whole
 * and the key counts were taken again.
 * @throws SourceError when the server cannot be reached or refuses both methods.
 */
export async function backupRedis(
  config: RedisSourceConfig,
  ctx: SourceContext,
): Promise<SourceBackup<RedisDetails>> {
  const password = await resolvePassword(config, ctx);
  const endpoint = endpointOf(config);
  const where = describeEndpoint(endpoint);
  const server = parseInfo(await redisCli(endpoint, password, ctx, ['INFO', 'server']));
  const persistence = parseInfo(await redisCli(endpoint, password, ctx, ['INFO', 'persistence']));
  const before = parseKeyspace(await redisCli(endpoint, password, ctx, ['INFO', 'keyspace']));
  const sampledKeys = await sampleKeys(endpoint, password, ctx, before, config.sampleKeys);
  const cli = (await toolVersion('redis-cli', ['--version'])).replace(/^redis-cli\s*/, '');

  let snapshot: Snapshot | undefined;
  if (config.method !== 'bgsave')
    snapshot = await replicationSnapshot(endpoint, password, ctx, config.method);
  if (!snapshot) {
    if (config.method === 'auto') ctx.log?.(`${where}: replication refused, falling back to BGSAVE`);
    snapshot = await bgsaveSnapshot(endpoint, password, ctx);
  }
  const taken = snapshot;
  const meter = new Meter({ hash: false });
  const gate = new EndGate(async () => {
    await taken.done;
    if (meter.bytes === 0) throw new SourceError(`${where}: the ${taken.method} snapshot was empty`);
  });
  const output = pipeline(taken.stream, meter, gate);
  const done = (async () => {
    try {
      await Promise.all([taken.done, output]);
      const after = parseKeyspace(await redisCli(endpoint, password, ctx, ['INFO', 'keyspace']));
      const dbs = [...new Set([...before.keys(), ...after.keys()])].sort((a, b) => a - b);
      const details: RedisDetails = {
        kind: 'redis',
        serverVersion: server.get('redis_version') ?? 'unknown',
        method: taken.method,
        appendonly: persistence.get('aof_enabled') === '1',
        keyCounts: dbs.map((db) => ({ db, keys: before.get(db) ?? 0, keysAfter: after.get(db) ?? 0 })),
        sampledKeys,
      };
      return { details, tools: { 'redis-cli': cli } };
    } catch (error) {
      const failure =
        error instanceof StrongboxError
          ? error
          : new SourceError(`backup of ${where} failed: ${describeError(error)}`, { cause: error });
      gate.destroy(failure);
      taken.stream.destroy(failure);
      throw failure;
    }
  })();
  done.catch(() => {});
  return { objects: oneObject(gate, OBJECT), done };
}

/**
 * `redis-cli --rdb -`: the server forks and streams the RDB it would send a replica. With `auto`,
 * a redis-cli that ends without a byte (SYNC refused by an ACL or a managed service) gives undefined,
 * for the BGSAVE fallback.
 */
async function replicationSnapshot(
  endpoint: RedisEndpoint,
  password: string | undefined,
  ctx: SourceContext,
  method: 'auto' | 'replication',
): Promise<Snapshot | undefined> {
  const tool = spawnTool('redis-cli', [...connectionArgs(endpoint), '--rdb', '-'], {
    env: cliEnv(ctx, password),
    signal: ctx.signal,
    stdin: 'ignore',
  });
  const stdout = tool.stdout as Readable;
  const first = await Promise.race([
    new Promise<'data'>((resolve) => stdout.once('readable', () => resolve('data'))),
    tool.done.then(
      () => 'ended' as const,
      () => 'failed' as const,
    ),
  ]);
  if (first === 'data' && stdout.readableLength > 0) {
    const done = tool.done.catch((error: unknown) => {
      throw new SourceError(`${describeEndpoint(endpoint)}: ${describeError(error)}`, { cause: error });
    });
    done.catch(() => {});
    return { method: 'replication', stream: stdout, done };
  }
  const ended = await tool.done.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (method === 'auto' && !ctx.signal?.aborted) return undefined;
  throw new SourceError(
    `${describeEndpoint(endpoint)}: redis-cli --rdb sent nothing${ended ? `: ${describeError(ended)}` : ''}`,
    { cause: ended },
  );
}

/**
 * BGSAVE, then the finished file: waits until no save runs, asks for one, polls INFO persistence until
 * the save count moved and no save runs, checks it succeeded, then opens `<dir>/<dbfilename>` (the
 * server renames a finished RDB into place, so the file opened is whole; the open descriptor keeps it
 * even if another save replaces it).
 */
async function bgsaveSnapshot(
  endpoint: RedisEndpoint,
  password: string | undefined,
  ctx: SourceContext,
): Promise<Snapshot> {
  const where = describeEndpoint(endpoint);
  const cli = (args: string[]) => redisCli(endpoint, password, ctx, args);
  const dir = quotedStrings(await cli(['CONFIG', 'GET', 'dir']))[1];
  const file = quotedStrings(await cli(['CONFIG', 'GET', 'dbfilename']))[1];
  if (!dir || !file) throw new SourceError(`${where}: CONFIG GET dir/dbfilename gave no answer`);
  const persistence = async () => parseInfo(await cli(['INFO', 'persistence']));
  let state = await persistence();
  while (state.get('rdb_bgsave_in_progress') === '1') {
    await sleep(POLL_MS, ctx.signal);
    state = await persistence();
  }
  const savesBefore = state.get('rdb_saves');
  const timeBefore = Number(state.get('rdb_last_save_time'));
  // Without rdb_saves (before Redis 7) a save is told by its time, in whole seconds: let one pass.
  if (savesBefore === undefined) await sleep(1_100, ctx.signal);
  await cli(['BGSAVE', 'SCHEDULE']);
  for (;;) {
    await sleep(POLL_MS, ctx.signal);
    state = await persistence();
    const moved =
      savesBefore !== undefined
        ? state.get('rdb_saves') !== savesBefore
        : Number(state.get('rdb_last_save_time')) > timeBefore;
    if (moved && state.get('rdb_bgsave_in_progress') === '0') break;
  }
  if (state.get('rdb_last_bgsave_status') !== 'ok') {
    throw new SourceError(
      `${where}: BGSAVE failed (rdb_last_bgsave_status:${state.get('rdb_last_bgsave_status')}); see the server's log`,
    );
  }
  const path = join(dir, file);
  const handle = await open(path, 'r').catch((error: unknown) => {
    throw new SourceError(
      `${where}: BGSAVE wrote ${path} on the server, which cannot be read here (${describeError(error)}): method bgsave needs the agent on the Redis host with read access`,
      { cause: error },
    );
  });
  const stream = handle.createReadStream({ autoClose: true });
  const done = new Promise<void>((resolve, reject) => {
    stream.once('end', () => resolve());
    stream.once('error', (error) =>
      reject(new SourceError(`reading ${path} failed: ${error.message}`, { cause: error })),
    );
  });
  done.catch(() => {});
  return { method: 'bgsave', stream, done };
}

/** Up to `perDb` keys of each database that has keys: their type and value digest. */
async function sampleKeys(
  endpoint: RedisEndpoint,
  password: string | undefined,
  ctx: SourceContext,
  counts: Map<number, number>,
  perDb: number,
): Promise<RedisDetails['sampledKeys']> {
  const samples: RedisDetails['sampledKeys'] = [];
  if (perDb === 0) return samples;
  for (const [db, keys] of [...counts].sort((a, b) => a[0] - b[0])) {
    if (keys === 0) continue;
    const found = new Set<string>();
    let cursor = '0';
    do {
      const reply = quotedStrings(
        await redisCli(endpoint, password, ctx, ['SCAN', cursor, 'COUNT', '100'], { db }),
      );
      cursor = reply[0] ?? '0';
      for (const key of reply.slice(1)) {
        // Keys that are not plain text cannot be passed on in argv: they are not sampled.
        if (key !== undefined && found.size < perDb) found.add(key);
      }
    } while (cursor !== '0' && found.size < perDb);
    for (const key of found) {
      const sample = await describeKey(endpoint, password, ctx, db, key);
      if (sample) samples.push(sample);
    }
  }
  return samples;
}

/** Elements of a value up to which its digest is taken (larger values are compared by type). */
const MAX_DIGEST_ELEMENTS = 10_000;

/** A key's type and value digest; undefined when it no longer exists. */
async function describeKey(
  endpoint: RedisEndpoint,
  password: string | undefined,
  ctx: SourceContext,
  db: number,
  key: string,
): Promise<RedisDetails['sampledKeys'][number] | undefined> {
  const cli = (args: string[]) => redisCli(endpoint, password, ctx, args, { db });
  const type = (await cli(['TYPE', key])).trim();
  if (type === 'none') return undefined;
  const valueSha256 = await valueDigest(cli, type, key);
  return { db, key, type, ...(valueSha256 ? { valueSha256 } : {}) };
}

/**
 * SHA-256 of a value in a form that does not depend on the server's encoding or hash seed: a string
 * as it is, a list and a sorted set (with scores) in order, a set's members and a hash's field/value
 * pairs sorted. Undefined for other types and for values of more than MAX_DIGEST_ELEMENTS elements.
 */
export async function valueDigest(
  cli: (args: string[]) => Promise<string>,
  type: string,
  key: string,
): Promise<string | undefined> {
  const sizeCommand: Record<string, string> = { list: 'LLEN', set: 'SCARD', zset: 'ZCARD', hash: 'HLEN' };
  const sizeOf = sizeCommand[type];
  if (sizeOf) {
    const size = Number(/\(integer\) (\d+)/.exec(await cli([sizeOf, key]))?.[1] ?? Number.NaN);
    if (!(size <= MAX_DIGEST_ELEMENTS)) return undefined;
  }
  const items = (reply: string) =>
    reply
      .split('\n')
      .map((line) => line.replace(/^\s*(?:\d+\)\s*)+/, ''))
      .filter((l) => l !== '');
  let canonical: string[];
  if (type === 'string') canonical = [await cli(['GET', key])];
  else if (type === 'list') canonical = items(await cli(['LRANGE', key, '0', '-1']));
  else if (type === 'zset') canonical = items(await cli(['ZRANGE', key, '0', '-1', 'WITHSCORES']));
  else if (type === 'set') canonical = items(await cli(['SMEMBERS', key])).sort();
  else if (type === 'hash') {
    const flat = items(await cli(['HGETALL', key]));
    const pairs: string[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) pairs.push(`${flat[i]}\u0000${flat[i + 1]}`);
    canonical = pairs.sort();
  } else return undefined;
  return createHash('sha256')
    .update(`${type}\n${canonical.join('\n')}`)
    .digest('hex');
}

/**
 * Writes the backup's RDB into `target/dump.rdb`, a directory this creates (it must not exist). On
 * failure the directory is removed and the first error rethrown.
 */
async function restoreRedis(input: Readable | (() => Promise<Readable>), target: string): Promise<void> {
  await claimNewDirectory(target, 'redis');
  try {
    const stream = typeof input === 'function' ? await input() : input;
    await pipeline(stream, createWriteStream(join(target, RDB_FILE), { mode: 0o600, flags: 'wx' }));
  } catch (error) {
    await rm(target, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Loads `target/dump.rdb` into a scratch redis-server and compares it with the manifest: `key-counts`
 * (each database's keys between the counts taken before and after the snapshot, no other database)
 * and `sampled-keys` (each sample there with its type and value digest). A sample that differs is critical when its database's
 * count did not change during the snapshot, else a warning (it may have been written meanwhile).
 */
export async function checkRedis(
  config: RedisSourceConfig,
  details: RedisDetails,
  target: string,
  ctx: SourceContext,
): Promise<TargetCheck[]> {
  const critical = (check: string, message: string): Finding => ({
    job: '',
    severity: 'critical',
    check,
    message,
  });
  let scratch: Awaited<ReturnType<typeof startScratchRedis>>;
  try {
    await stat(join(target, RDB_FILE));
    scratch = await startScratchRedis(target, ctx, { binary: config.serverBinary });
  } catch (error) {
    const message = `${target}: ${describeError(error)}`;
    return [
      { check: 'key-counts', passed: false, detail: message, findings: [critical('key-counts', message)] },
    ];
  }
  try {
    const local: RedisEndpoint = { host: '127.0.0.1', port: scratch.port };
    const cli = (args: string[], db?: number) => redisCli(local, undefined, ctx, args, { db });
    const found = parseKeyspace(await cli(['INFO', 'keyspace']));
    const countFindings: Finding[] = [];
    for (const { db, keys, keysAfter } of details.keyCounts) {
      const n = found.get(db) ?? 0;
      if (n < Math.min(keys, keysAfter) || n > Math.max(keys, keysAfter)) {
        const expected =
          keys === keysAfter
            ? `${keys}`
            : `between ${Math.min(keys, keysAfter)} and ${Math.max(keys, keysAfter)}`;
        countFindings.push(
          critical('key-counts', `db${db} holds ${n} keys, the backup recorded ${expected}`),
        );
      }
    }
    for (const [db, n] of found) {
      if (!details.keyCounts.some((c) => c.db === db) && n > 0) {
        countFindings.push(critical('key-counts', `db${db} holds ${n} keys, the backup recorded none`));
      }
    }
    const total = [...found.values()].reduce((a, b) => a + b, 0);
    const checks: TargetCheck[] = [
      {
        check: 'key-counts',
        passed: countFindings.length === 0,
        detail:
          countFindings.length === 0
            ? `${total} keys in ${found.size} database(s), as the backup recorded`
            : countFindings.map((f) => f.message).join('; '),
        findings: countFindings,
      },
    ];
    if (details.sampledKeys.length > 0) {
      const sampleFindings: Finding[] = [];
      for (const sample of details.sampledKeys) {
        const count = details.keyCounts.find((c) => c.db === sample.db);
        const severity = count && count.keys === count.keysAfter ? 'critical' : 'warning';
        const type = (await cli(['TYPE', sample.key], sample.db)).trim();
        let problem: string | undefined;
        if (type !== sample.type) {
          problem = `is ${type === 'none' ? 'missing' : `a ${type}`}, the backup recorded a ${sample.type}`;
        } else if (sample.valueSha256) {
          const digest = await valueDigest((args) => cli(args, sample.db), type, sample.key);
          if (digest !== sample.valueSha256) problem = 'holds another value than the backup recorded';
        }
        if (problem) {
          sampleFindings.push({
            job: '',
            severity,
            check: 'sampled-keys',
            message: `db${sample.db} key ${JSON.stringify(sample.key)} ${problem}`,
          });
        }
      }
      checks.push({
        check: 'sampled-keys',
        passed: sampleFindings.length === 0,
        detail:
          sampleFindings.length === 0
            ? `${details.sampledKeys.length} sampled keys match in type and value`
            : sampleFindings.map((f) => f.message).join('; '),
        findings: sampleFindings,
      });
    }
    return checks;
  } finally {
    await scratch.stop();
  }
}

/** redis-cli and redis-server present, the server reachable with the configured credentials. */
async function doctorRedis(config: RedisSourceConfig, ctx: SourceContext): Promise<DoctorCheck[]> {
  const endpoint = endpointOf(config);
  const checks = [
    await probe('redis-cli', () => toolVersion('redis-cli', ['--version'])),
    await probe('redis-server (drills)', () => toolVersion(config.serverBinary, ['--version']), {
      warnOnly: true,
    }),
    await probe(describeEndpoint(endpoint), async () => {
      const password = await resolvePassword(config, ctx);
      const info = parseInfo(await redisCli(endpoint, password, ctx, ['INFO', 'server']));
      return `Redis ${info.get('redis_version') ?? '?'}, method ${config.method}`;
    }),
  ];
  if (config.method !== 'bgsave') {
    checks.push(
      await probe(
        'repl-diskless-sync-delay',
        async () => {
          const password = await resolvePassword(config, ctx);
          const delay = quotedStrings(
            await redisCli(endpoint, password, ctx, ['CONFIG', 'GET', 'repl-diskless-sync-delay']),
          )[1];
          if (delay && delay !== '0')
            throw new SourceError(
              `${delay} s: every replication backup waits that long before the transfer starts`,
            );
          return delay ?? 'unknown';
        },
        { warnOnly: true },
      ),
    );
  }
  return checks;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

/**
 * The plan's server: an RDB is loaded into it the way `restore --replace` does (stop, place, start), so
 * the plan needs source.replace; keys it holds now are named.
 * @throws RestoreError without source.replace.
 */
async function originalRedis(config: RedisSourceConfig, _details: RedisDetails, ctx: SourceContext) {
  const endpoint = endpointOf(config);
  const where = describeEndpoint(endpoint);
  if (!config.replace) {
    throw new RestoreError(
      `${where}: putting a backup back into the server needs source.replace in the plan (its stop and start commands, where it keeps its RDB)`,
    );
  }
  const keyspace = parseKeyspace(
    await redisCli(endpoint, await resolvePassword(config, ctx), ctx, ['INFO', 'keyspace']),
  );
  const keys = [...keyspace.values()].reduce((sum, n) => sum + n, 0);
  return {
    target: where,
    via: 'replace' as const,
    occupied: keys > 0 ? [`${where} holds ${keys} key(s)`] : [],
  };
}

/** The `redis` driver. */
export const redisDriver: SourceDriver<'redis'> = {
  spec: redisSource,
  backup: backupRedis,
  restore: (_config, input, { target }) => restoreRedis(() => input.open(OBJECT), target),
  check: (config, details, { target, ctx }) => checkRedis(config, details, target, ctx),
  doctor: doctorRedis,
  replace: redisReplace,
  originalTarget: originalRedis,
  ...directoryTargets,
};
