/**
 * The SourceDriver contract (core/ports.ts), one suite run against every registered driver — each later
 * kind joins by adding its fixture to FIXTURES. Each driver must:
 * - declare what it does truthfully (optional methods exactly for its capabilities);
 * - round-trip: back up, restore into a new target identical to the source, its checks all passing;
 * - on an input that fails midway, remove the target it created, rethrow the input's own error and leave
 *   existing targets untouched; refuse an existing target without touching it;
 * - on an aborted backup leave nothing in the vault that looks complete (no manifest, no data object);
 * - find a wrong restore with its drill checks.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  appendFile,
  chown,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileVault } from '#adapters/vaults/file';
import { runBackup } from '#agent/backup';
import { checkRestored, runRestore, sourceContext } from '#agent/restore';
import { allDrivers, detailsOf, sourceDriver } from '#agent/sources/index';
import { listBackups, readManifest } from '#core/catalog';
import { IntegrityError, RestoreError } from '#core/errors';
import type { Job } from '#core/plan';
import type { PutOptions, RestoreInput, SourceContext, SourceDriver, Vault } from '#core/ports';
import { SOURCE_KINDS, type SourceConfig, type SourceKind } from '#core/sources/index';
import { type InfluxServer, influxDigest, startInflux } from '#test/support/influxdb';
import { type PgServer, startPostgres } from '#test/support/postgres';
import { datasetDigest, type RedisServer, startRedis } from '#test/support/redis';
import { testRuntime } from '#test/support/runtime';

/** What the suite needs of a kind: a world to back up, and ways to look at targets. */
interface SourceFixture {
  kind: SourceKind;
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
  /** The job's source config, pointing at the data setUp made. */
  config(): SourceConfig;
  /** A target name no one has used yet. */
  freshTarget(label: string): string;
  /** Makes a target that exists and holds something of its own. */
  makeExisting(label: string): Promise<string>;
  /** A digest of everything a target holds, to compare before and after. */
  fingerprint(target: string): Promise<string>;
  /** The digest the source's data has (what a correct restore holds). */
  sourceFingerprint(): Promise<string>;
  /** Changes a restored target so that a check must notice. */
  spoil(target: string): Promise<void>;
  /**
   * What `originalTarget` says while the source holds its data: the place, occupied (each named);
   * `unobserved` when the driver cannot look (a restore command decides); or refused with a message.
   */
  original: { target: RegExp; occupied: RegExp } | { target: RegExp; unobserved: true } | { refused: RegExp };
}

let pg: PgServer;
let pgTargets = 0;

const postgresFixture: SourceFixture = {
  kind: 'postgres',
  async setUp() {
    pg = await startPostgres({ databases: ['contract'] });
    await pg.psql(
      `CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
       INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;
       CREATE SCHEMA sales;
       CREATE TABLE sales.orders (id bigserial PRIMARY KEY, item int REFERENCES items, qty int);
       INSERT INTO sales.orders (item, qty) SELECT 1 + g % 500, g FROM generate_series(1, 2000) g;`,
      'contract',
    );
  },
  tearDown: () => pg?.stop() ?? Promise.resolve(),
  config: () => ({
    kind: 'postgres',
    database: 'contract',
    host: '127.0.0.1',
    port: pg.port,
    user: 'postgres',
    excludeTables: [],
    rowCounts: true,
    noOwner: false,
    noTablespaces: false,
    rolePasswords: false,
  }),
  freshTarget: (label) => `contract_${label.replace(/\W/g, '_')}_${++pgTargets}`,
  async makeExisting(label) {
    const name = `contract_existing_${label.replace(/\W/g, '_')}_${++pgTargets}`;
    await pg.psql(`CREATE DATABASE ${name}`);
    await pg.psql(`CREATE TABLE marker (note text); INSERT INTO marker VALUES ('precious');`, name);
    return name;
  },
  fingerprint: (database) => databaseFingerprint(database),
  sourceFingerprint: () => databaseFingerprint('contract'),
  spoil: async (database) => {
    await pg.psql('DELETE FROM sales.orders WHERE id % 10 = 0', database);
  },
  original: { target: /^contract$/, occupied: /database 'contract' exists on 127\.0\.0\.1:\d+/ },
};

/** Tables and an order-independent digest of each one's rows. */
async function databaseFingerprint(database: string, server: Pick<PgServer, 'psql'> = pg): Promise<string> {
  const tables = (
    await server.psql("SELECT schemaname || '.' || relname FROM pg_stat_user_tables ORDER BY 1", database)
  )
    .split('\n')
    .filter(Boolean);
  const parts: string[] = [];
  for (const table of tables) {
    parts.push(
      `${table}=${await server.psql(`SELECT count(*) || ':' || coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') FROM ${table} t`, database)}`,
    );
  }
  return parts.join(';');
}

let filesRoot: string;
let filesTargets = 0;

const filesFixture: SourceFixture = {
  kind: 'files',
  async setUp() {
    filesRoot = await mkdtemp(join(tmpdir(), 'strongbox-contract-files-'));
    const tree = join(filesRoot, 'source', 'etc', 'app');
    await mkdir(join(tree, 'conf.d'), { recursive: true });
    await writeFile(join(tree, 'app.yaml'), 'listen: 8080\n');
    await writeFile(join(tree, 'conf.d', 'db.yaml'), 'host: db\n');
    await writeFile(join(tree, 'model.bin'), Buffer.alloc(300_000, 7));
  },
  tearDown: () => (filesRoot ? rm(filesRoot, { recursive: true, force: true }) : Promise.resolve()),
  config: () => ({ kind: 'files', paths: [join(filesRoot, 'source')], exclude: [], unreadable: 'error' }),
  freshTarget: (label) => join(filesRoot, `target-${label.replace(/\W/g, '-')}-${++filesTargets}`),
  async makeExisting(label) {
    const dir = join(filesRoot, `existing-${label.replace(/\W/g, '-')}-${++filesTargets}`);
    await mkdir(dir);
    await writeFile(join(dir, 'precious.txt'), 'precious');
    return dir;
  },
  fingerprint: (dir) => treeFingerprint(dir),
  sourceFingerprint: () => treeFingerprint(join(filesRoot, 'source')),
  spoil: async (dir) => {
    const [file] = (await readdir(dir, { recursive: true, withFileTypes: true })).filter(
      (e) => e.isFile() && e.name === 'db.yaml',
    );
    if (file) await unlink(join(file.parentPath, file.name));
  },
  original: { target: /\/source$/, occupied: /\/source exists/ },
};

/** Relative paths below the restored copy of the source (or any directory) and their contents' digests. */
async function treeFingerprint(dir: string): Promise<string> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  const parts: string[] = [];
  for (const file of files.sort()) {
    // A restore lands below the target as <target>/<absolute source path>: compare from the source's name on.
    const name = file.slice(file.indexOf('/etc/app/') >= 0 ? file.indexOf('/etc/app/') : dir.length);
    parts.push(
      `${name}=${createHash('sha256')
        .update(await readFile(file))
        .digest('hex')}`,
    );
  }
  return parts.join(';');
}

let physical: PgServer;
let physicalRoot: string;
let physicalTargets = 0;
const sh = promisify(execFile);

const physicalFixture: SourceFixture = {
  kind: 'postgres-physical',
  async setUp() {
    physical = await startPostgres({ databases: ['contract'], settings: { wal_level: 'replica' } });
    await physical.psql(
      `CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);
       INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;`,
      'contract',
    );
    // Where a site keeps data directories (/var/lib/postgresql): owned by the postgres user.
    physicalRoot = await mkdtemp(join(tmpdir(), 'strongbox-contract-pgdata-'));
    const [uid, gid] = await Promise.all(
      ['-u', '-g'].map(async (f) => Number((await sh('id', [f, 'postgres'])).stdout)),
    );
    await chown(physicalRoot, uid as number, gid as number);
  },
  async tearDown() {
    await physical?.stop();
    if (physicalRoot) await rm(physicalRoot, { recursive: true, force: true });
  },
  config: () => ({
    kind: 'postgres-physical',
    host: '127.0.0.1',
    port: physical.port,
    user: 'postgres',
    database: 'postgres',
    osUser: 'postgres',
  }),
  freshTarget: (label) => join(physicalRoot, `pgdata-${label.replace(/\W/g, '-')}-${++physicalTargets}`),
  async makeExisting(label) {
    const dir = join(physicalRoot, `existing-${label.replace(/\W/g, '-')}-${++physicalTargets}`);
    await mkdir(dir);
    await writeFile(join(dir, 'precious.txt'), 'precious');
    return dir;
  },
  // A data directory is compared by what its server serves: start it on its own port, read, stop.
  fingerprint: async (dir) =>
    existsSync(join(dir, 'PG_VERSION')) ? servedFingerprint(dir) : treeFingerprint(dir),
  sourceFingerprint: () => databaseFingerprint('contract', physical),
  spoil: async (dir) => {
    const [file] = (await readdir(join(dir, 'base', '1'))).filter((name) => /^\d+$/.test(name));
    await appendFile(join(dir, 'base', '1', file as string), Buffer.alloc(1));
  },
  original: { refused: /names no data directory.*--target/ },
};

/** Starts a restored data directory as postgres on a free port, fingerprints `contract`, stops it. */
async function servedFingerprint(dir: string): Promise<string> {
  const bin = physical.binDir;
  const port = String(20_000 + Math.floor(Math.random() * 20_000));
  const asPostgres = (file: string, args: string[]) => sh('runuser', ['-u', 'postgres', '--', file, ...args]);
  await asPostgres(join(bin, 'pg_ctl'), [
    ...['-D', dir, '-l', join(physicalRoot, `${port}.log`), '-w', 'start'],
    ...['-o', `-c port=${port} -c listen_addresses='' -c unix_socket_directories=${dir}`],
  ]);
  try {
    const psql = async (sql: string, database = 'postgres') =>
      (
        await sh(join(bin, 'psql'), [
          '-X',
          '-q',
          '-A',
          '-t',
          '-h',
          dir,
          '-p',
          port,
          '-U',
          'postgres',
          '-d',
          database,
          '-c',
          sql,
        ])
      ).stdout.trim();
    return await databaseFingerprint('contract', { psql });
  } finally {
    await asPostgres(join(bin, 'pg_ctl'), ['-D', dir, '-m', 'fast', '-w', 'stop']);
  }
}

let commandRoot: string;
let commandTargets = 0;

/** The command source with real tools: `tar -c` to stdout, `tar -x` from stdin, `sha256sum -c` as the check. */
const commandFixture: SourceFixture = {
  kind: 'command',
  async setUp() {
    commandRoot = await mkdtemp(join(tmpdir(), 'strongbox-contract-command-'));
    const tree = join(commandRoot, 'source');
    await mkdir(join(tree, 'manifests'), { recursive: true });
    await writeFile(join(tree, 'manifests', 'deploy.yaml'), 'kind: Deployment\nreplicas: 3\n');
    await writeFile(join(tree, 'image.tar'), Buffer.alloc(200_000, 3));
    const sums = [];
    for (const name of ['manifests/deploy.yaml', 'image.tar']) {
      const digest = createHash('sha256')
        .update(await readFile(join(tree, name)))
        .digest('hex');
      sums.push(`${digest}  ${name}\n`);
    }
    await writeFile(join(tree, 'SHA256SUMS'), sums.join(''));
  },
  tearDown: () => (commandRoot ? rm(commandRoot, { recursive: true, force: true }) : Promise.resolve()),
  // Both a valid plan entry and the driver's parsed config (the timeouts take their default in the plan).
  config: () =>
    ({
      kind: 'command',
      backup: { argv: ['tar', '-cf', '-', '-C', join(commandRoot, 'source'), '.'], env: {}, secretEnv: {} },
      restore: { argv: ['tar', '-xf', '-'], env: {}, secretEnv: {} },
      check: { argv: ['sha256sum', '--quiet', '--strict', '-c', 'SHA256SUMS'], env: {}, secretEnv: {} },
    }) as SourceConfig,
  freshTarget: (label) => join(commandRoot, `target-${label.replace(/\W/g, '-')}-${++commandTargets}`),
  async makeExisting(label) {
    const dir = join(commandRoot, `existing-${label.replace(/\W/g, '-')}-${++commandTargets}`);
    await mkdir(dir);
    await writeFile(join(dir, 'precious.txt'), 'precious');
    return dir;
  },
  fingerprint: (dir) => relativeTreeFingerprint(dir),
  sourceFingerprint: () => relativeTreeFingerprint(join(commandRoot, 'source')),
  spoil: (dir) => writeFile(join(dir, 'manifests', 'deploy.yaml'), 'kind: Deployment\nreplicas: 0\n'),
  original: { target: /^source\.restore \(/, unobserved: true },
};

/** Paths relative to `dir` and their contents' digests. */
async function relativeTreeFingerprint(dir: string): Promise<string> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  const parts: string[] = [];
  for (const file of files.sort()) {
    const digest = createHash('sha256')
      .update(await readFile(file))
      .digest('hex');
    parts.push(`${file.slice(dir.length)}=${digest}`);
  }
  return parts.join(';');
}

let redis: RedisServer;
let redisRoot: string;
let redisTargets = 0;

/** A real redis-server with strings, a hash, a list and a set in two databases. */
const redisFixture: SourceFixture = {
  kind: 'redis',
  async setUp() {
    redisRoot = await mkdtemp(join(tmpdir(), 'strongbox-contract-redis-'));
    redis = await startRedis();
    await redis.cli(['DEBUG', 'POPULATE', '500', 'item', '64']);
    await redis.cli(['HSET', 'user:1', 'name', 'Ada', 'role', 'admin']);
    await redis.cli(['RPUSH', 'queue', 'a', 'b', 'c'], 3);
    await redis.cli(['SADD', 'tags', 'x', 'y'], 3);
  },
  tearDown: async () => {
    await redis?.stop();
    if (redisRoot) await rm(redisRoot, { recursive: true, force: true });
  },
  config: () => ({
    kind: 'redis',
    host: '127.0.0.1',
    port: redis.port,
    method: 'replication',
    sampleKeys: 10,
    serverBinary: 'redis-server',
  }),
  freshTarget: (label) => join(redisRoot, `target-${label.replace(/\W/g, '-')}-${++redisTargets}`),
  async makeExisting(label) {
    const dir = join(redisRoot, `existing-${label.replace(/\W/g, '-')}-${++redisTargets}`);
    await mkdir(dir);
    await writeFile(join(dir, 'precious.txt'), 'precious');
    return dir;
  },
  async fingerprint(dir) {
    const files = (await readdir(dir)).sort();
    if (!files.includes('dump.rdb')) return `files:${files.join(',')}`;
    const copy = await startRedis({ dir });
    try {
      return await datasetDigest(copy);
    } finally {
      await copy.stop();
    }
  },
  sourceFingerprint: () => datasetDigest(redis),
  async spoil(dir) {
    const copy = await startRedis({ dir });
    try {
      await copy.cli(['DEL', 'item:1', 'item:2', 'user:1']);
      await copy.cli(['SAVE']);
    } finally {
      await copy.stop();
    }
  },
  original: { refused: /needs source\.replace/ },
};

let influx: InfluxServer;
let influxRoot: string;
let influxTargets = 0;

/** A real influxd with two databases, tags and several fields; restored into scratch data directories. */
const influxdbFixture: SourceFixture = {
  kind: 'influxdb',
  async setUp() {
    influxRoot = await mkdtemp(join(tmpdir(), 'strongbox-contract-influx-'));
    influx = await startInflux();
    await influx.query('CREATE DATABASE metrics');
    await influx.query('CREATE DATABASE events');
    const t0 = 1_700_000_000_000_000_000n;
    const lines: string[] = [];
    for (let i = 0; i < 60; i++) {
      lines.push(
        `cpu,host=h${i % 20},region=eu usage=${i / 3},cores=${i % 8}i ${t0 + BigInt(i) * 1_000_000_000n}`,
      );
      lines.push(`mem,host=h${i % 10} used=${i * 1024}i ${t0 + BigInt(i) * 1_000_000_000n}`);
    }
    await influx.write('metrics', lines);
    await influx.write('events', [`login,user=ada ok=true ${t0}`, `login,user=bob ok=false ${t0 + 1n}`]);
  },
  tearDown: async () => {
    await influx?.stop();
    if (influxRoot) await rm(influxRoot, { recursive: true, force: true });
  },
  config: () => ({
    kind: 'influxdb',
    version: 1,
    host: '127.0.0.1',
    port: influx.httpPort,
    rpcPort: influx.rpcPort,
    serverBinary: 'influxd',
  }),
  freshTarget: (label) => join(influxRoot, `target-${label.replace(/\W/g, '-')}-${++influxTargets}`),
  async makeExisting(label) {
    const dir = join(influxRoot, `existing-${label.replace(/\W/g, '-')}-${++influxTargets}`);
    await mkdir(dir);
    await writeFile(join(dir, 'precious.txt'), 'precious');
    return dir;
  },
  async fingerprint(dir) {
    const files = (await readdir(dir)).sort();
    if (!files.includes('meta')) return `files:${files.join(',')}`;
    const copy = await startInflux({ dir });
    try {
      return await influxDigest(copy.endpoint);
    } finally {
      await copy.stop();
    }
  },
  sourceFingerprint: () => influxDigest(influx.endpoint),
  async spoil(dir) {
    const copy = await startInflux({ dir });
    try {
      await copy.query('DROP MEASUREMENT mem', 'metrics');
    } finally {
      await copy.stop();
    }
  },
  original: {
    target: /^(metrics,events|events,metrics)$/,
    occupied: /database 'metrics' exists on influxdb 127\.0\.0\.1:\d+/,
  },
};

/** Every registered kind has a fixture here: a new kind fails this suite until it joins. */
const FIXTURES: readonly SourceFixture[] = [
  postgresFixture,
  physicalFixture,
  filesFixture,
  commandFixture,
  redisFixture,
  influxdbFixture,
];

it('has a fixture for every registered source kind', () => {
  expect(FIXTURES.map((f) => f.kind).sort()).toEqual([...SOURCE_KINDS].sort());
});

describe.each(FIXTURES.map((fixture) => [fixture.kind, fixture] as const))(
  'the %s driver',
  (kind, fixture) => {
    let driver: SourceDriver;
    let work: string;
    const ctx: SourceContext = { env: {} };

    beforeAll(async () => {
      driver = sourceDriver(kind) as SourceDriver;
      await fixture.setUp();
      work = await mkdtemp(join(tmpdir(), `strongbox-contract-${kind}-`));
    });
    afterAll(async () => {
      await fixture.tearDown();
      if (work) await rm(work, { recursive: true, force: true });
    });

    function job(): Record<string, unknown> {
      return { name: `contract-${kind}`, source: fixture.config() };
    }

    /** The raw objects of one backup, read by the driver itself (no vault). */
    async function backupObjects(): Promise<Map<string, Buffer>> {
      const backup = await driver.backup(fixture.config() as never, ctx);
      const objects = new Map<string, Buffer>();
      const reading = (async () => {
        for await (const object of backup.objects) {
          const chunks: Buffer[] = [];
          for await (const chunk of object.stream) chunks.push(chunk as Buffer);
          objects.set(object.name, Buffer.concat(chunks));
        }
      })();
      await Promise.all([reading, backup.done]);
      return objects;
    }

    /** A RestoreInput over objects in memory; `fail` makes every object stop with that error halfway. */
    function inputOf(objects: Map<string, Buffer>, fail?: Error): RestoreInput {
      const open = async (name: string) => {
        const data = objects.get(name);
        if (!data) throw new Error(`no object ${name}`);
        if (!fail) return Readable.from([data]);
        return Readable.from(
          (async function* () {
            yield data.subarray(0, Math.floor(data.length / 2));
            await new Promise((resolve) => setTimeout(resolve, 50));
            throw fail;
          })(),
        );
      };
      const names = [...objects.keys()];
      return {
        objects: names.map((name) => ({ name, sourceBytes: objects.get(name)?.length ?? 0 })),
        open,
        only: () => {
          if (names.length !== 1) throw new IntegrityError('several objects');
          return open(names[0] as string);
        },
        openInto: async (name, stdin) => pipeline(await open(name), stdin),
      };
    }

    it('declares optional methods exactly for its capabilities', () => {
      const { capabilities } = driver.spec;
      expect(driver.spec.kind).toBe(kind);
      expect(Boolean(driver.replace)).toBe(capabilities.replace);
      expect(Boolean(driver.sqlChecks)).toBe(capabilities.sqlChecks);
      expect(allDrivers().filter((d) => d.spec.kind === kind)).toHaveLength(1);
    });

    it('round-trips through the vault: the restored target holds the source data and passes its checks', async () => {
      const { runtime, dir } = await testRuntime({ jobs: [job()] });
      try {
        const target = fixture.freshTarget('roundtrip');
        const jobConfig = runtime.plan.jobs[0] as Job;
        const backup = await runBackup(runtime, jobConfig);
        expect(backup.objects).toBeGreaterThanOrEqual(1);

        const restore = await runRestore(runtime, jobConfig, { target });

        expect(await fixture.fingerprint(target)).toBe(await fixture.sourceFingerprint());
        expect(restore.checks.length).toBeGreaterThan(0);
        expect(restore.checks.filter((c) => !c.passed)).toEqual([]);
        await driver.discard(fixture.config() as never, target, ctx);
        expect(await driver.targetExists(fixture.config() as never, target, ctx)).toBe(false);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('removes the target it created and rethrows the error of an input that fails midway', async () => {
      const objects = await backupObjects();
      const existing = await fixture.makeExisting('bystander');
      const before = await fixture.fingerprint(existing);
      const target = fixture.freshTarget('broken');
      const broken = new IntegrityError('chunk 7 failed authentication');

      const restoring = driver.restore(fixture.config() as never, inputOf(objects, broken), { target, ctx });

      await expect(restoring).rejects.toBe(broken);
      expect(await driver.targetExists(fixture.config() as never, target, ctx)).toBe(false);
      expect(await fixture.fingerprint(existing)).toBe(before);
    });

    it('refuses to restore into a target that exists, and leaves it untouched', async () => {
      const objects = await backupObjects();
      const existing = await fixture.makeExisting('taken');
      const before = await fixture.fingerprint(existing);

      const restoring = driver.restore(fixture.config() as never, inputOf(objects), {
        target: existing,
        ctx,
      });

      await expect(restoring).rejects.toBeInstanceOf(RestoreError);
      expect(await fixture.fingerprint(existing)).toBe(before);
    });

    it('leaves nothing that looks complete when the backup is aborted midway', async () => {
      const controller = new AbortController();
      const { runtime, dir, fileVault } = await testRuntime({
        jobs: [job()],
        wrapVault: (vault) => abortOnFirstChunk(vault, controller),
        signal: controller.signal,
      });
      try {
        const attempt = runBackup(runtime, runtime.plan.jobs[0] as Job);

        await expect(attempt).rejects.toThrow();
        expect(await listBackups(fileVault, `contract-${kind}`)).toEqual([]);
        const left = await readdir(join(dir, 'vault'), { recursive: true, withFileTypes: true }).catch(
          () => [],
        );
        expect(left.filter((e) => e.isFile()).map((e) => e.name)).toEqual([]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('names the original place of its data, and what holds data there now', async () => {
      const { runtime, dir } = await testRuntime({ jobs: [job()] });
      try {
        const jobConfig = runtime.plan.jobs[0] as Job;
        const backup = await runBackup(runtime, jobConfig);
        const manifest = await readManifest(runtime.vault, jobConfig.name, backup.backupId);
        const details = detailsOf(manifest.source, kind);

        const original = driver.originalTarget(fixture.config() as never, details as never, ctx);

        const expected = fixture.original;
        if ('refused' in expected) {
          await expect(original).rejects.toBeInstanceOf(RestoreError);
          await expect(original).rejects.toThrow(expected.refused);
          return;
        }
        const found = await original;
        expect(found.target).toMatch(expected.target);
        if ('unobserved' in expected) expect(found.occupied).toEqual([]);
        else expect(found.occupied.join('; ')).toMatch(expected.occupied);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('finds a wrong restore with its checks', async () => {
      const { runtime, dir } = await testRuntime({ jobs: [job()] });
      try {
        const jobConfig = runtime.plan.jobs[0] as Job;
        await runBackup(runtime, jobConfig);
        const target = fixture.freshTarget('spoiled');
        const restore = await runRestore(runtime, jobConfig, { target });
        await fixture.spoil(target);
        const manifest = await readManifest(runtime.vault, jobConfig.name, restore.backupId);
        const { checks, findings } = await checkRestored(
          jobConfig,
          manifest,
          target,
          undefined,
          sourceContext(runtime),
        );

        expect(checks.some((c) => !c.passed)).toBe(true);
        expect(findings.some((f) => f.severity === 'critical' && f.backupId === restore.backupId)).toBe(true);
        await driver.discard(fixture.config() as never, target, ctx);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  },
);

/** A vault whose puts abort the backup once the first bytes of a data object reach it. */
function abortOnFirstChunk(vault: FileVault, controller: AbortController): Vault {
  return {
    url: vault.url,
    get: (key, options) => vault.get(key, options),
    head: (key) => vault.head(key),
    list: (prefix) => vault.list(prefix),
    delete: (keys) => vault.delete(keys),
    put: (key: string, body: Readable, options?: PutOptions) => {
      const watch = new Transform({
        transform(chunk, _encoding, callback) {
          controller.abort(new Error('interrupted by the test'));
          callback(null, chunk);
        },
      });
      pipeline(body, watch).catch(() => {});
      return vault.put(key, watch, options);
    },
  };
}
