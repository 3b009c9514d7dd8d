/**
 * The influxdb source against a real influxd (1.x) with HTTP auth on: the password only from the
 * environment (never argv), one database or all, a restore as a new database of the live server
 * (`-db X -newdb Y`) that refuses an existing one, the staging directory gone on every exit path, an
 * unreachable backup service failing fast, and InfluxDB 2.x refused by the plan.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { runRestore } from '#agent/restore';
import { sourceDriver } from '#agent/sources/index';
import { queryInflux } from '#agent/sources/influxdb/http';
import { readManifest } from '#core/catalog';
import { PlanError, RestoreError, SourceError } from '#core/errors';
import type { Job } from '#core/plan';
import { validatePlan } from '#core/plan';
import type { InfluxdbDetails } from '#core/sources/index';
import { type InfluxServer, influxDigest, startInflux } from '#test/support/influxdb';
import { testRuntime } from '#test/support/runtime';

const PASSWORD = 'influx secret 7f3a';
let influx: InfluxServer;
let staging: string;

beforeAll(async () => {
  influx = await startInflux({ settings: { INFLUXDB_HTTP_AUTH_ENABLED: 'true' } });
  // With no user yet, influxd allows creating the first admin without credentials.
  await influx.query(`CREATE USER admin WITH PASSWORD '${PASSWORD}' WITH ALL PRIVILEGES`);
  influx.endpoint.user = 'admin';
  influx.endpoint.password = PASSWORD;
  const auth = { ...influx.endpoint };
  const q = (statement: string) => queryInflux(auth, statement, { method: 'POST' });
  await q('CREATE DATABASE plant');
  await q('CREATE DATABASE other');
  const lines = Array.from(
    { length: 40 },
    (_, i) => `temperature,line=l${i % 8},sensor=s${i} value=${20 + i / 10} ${1_700_000_000 + i}`,
  );
  const write = async (db: string, body: string[]) => {
    const response = await fetch(`http://127.0.0.1:${influx.httpPort}/write?db=${db}&precision=s`, {
      method: 'POST',
      headers: { Authorization: `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}` },
      body: body.join('\n'),
    });
    expect(response.status).toBe(204);
  };
  await write('plant', lines);
  await write('other', ['flow,pump=p1 rate=3 1700000000']);
  staging = await mkdtemp(join(tmpdir(), 'strongbox-influx-staging-'));
});
afterAll(async () => {
  await influx?.stop();
  if (staging) await rm(staging, { recursive: true, force: true });
});

function job(source: Record<string, unknown> = {}) {
  return {
    name: 'timeseries',
    source: {
      kind: 'influxdb',
      port: influx.httpPort,
      rpcPort: influx.rpcPort,
      user: 'admin',
      passwordEnv: 'INFLUX_PASSWORD',
      stagingDir: staging,
      ...source,
    },
  };
}

async function runtimeFor(source: Record<string, unknown> = {}, env = { INFLUX_PASSWORD: PASSWORD }) {
  const made = await testRuntime({ jobs: [job(source)] });
  made.runtime.env = { PATH: process.env.PATH, ...env };
  return { ...made, job: made.runtime.plan.jobs[0] as Job };
}

describe('backup', () => {
  it('records each database, measurement and series count, and leaves no staging directory', async () => {
    const { runtime, dir, job: j } = await runtimeFor();
    try {
      const backup = await runBackup(runtime, j);
      const manifest = await readManifest(runtime.vault, j.name, backup.backupId);
      const details = manifest.source as InfluxdbDetails;

      expect(details.serverVersion).toMatch(/^1\./);
      expect(details.databases.map((d) => d.name).sort()).toEqual(['other', 'plant']);
      expect(details.databases.find((d) => d.name === 'plant')?.measurements).toEqual([
        { name: 'temperature', series: 40, seriesAfter: 40 },
      ]);
      expect(details.files.at(-1)).toMatch(/\.manifest$/);
      expect(manifest.objects.length).toBe(details.files.length);
      expect(await readdir(staging)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('takes the password from the environment only: without it the backup fails naming the variable', async () => {
    const { runtime, dir, job: j } = await runtimeFor({}, {} as { INFLUX_PASSWORD: string });
    try {
      await expect(runBackup(runtime, j)).rejects.toThrow(/INFLUX_PASSWORD is not set/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a wrong password fails before influxd backup runs, and the password appears in no message', async () => {
    const { runtime, dir, job: j } = await runtimeFor({}, { INFLUX_PASSWORD: 'wrong-password-x' });
    try {
      const failure = (await runBackup(runtime, j).catch((error: unknown) => error)) as Error;
      expect(failure).toBeInstanceOf(SourceError);
      expect(failure.message).toMatch(/authorization failed|check source.user/);
      expect(failure.message).not.toContain('wrong-password-x');
      expect(await readdir(staging)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails fast, leaving no staging directory, when the backup service does not answer', async () => {
    const { runtime, dir, job: j } = await runtimeFor({ rpcPort: 1 });
    try {
      const started = Date.now();
      await expect(runBackup(runtime, j)).rejects.toThrow(/backup service at 127\.0\.0\.1:1 refused/);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await readdir(staging)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a database that does not exist', async () => {
    const { runtime, dir, job: j } = await runtimeFor({ database: 'nosuch' });
    try {
      await expect(runBackup(runtime, j)).rejects.toThrow(/database 'nosuch' does not exist/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('restore as a new database of the live server', () => {
  it('restores one database under a new name, checks it, and refuses that name the second time', async () => {
    const { runtime, dir, job: j } = await runtimeFor({ database: 'plant' });
    try {
      await runBackup(runtime, j);

      const restore = await runRestore(runtime, j, { target: 'plant_restored' });

      expect(restore.checks.map((c) => [c.check, c.passed])).toEqual([
        ['databases', true],
        ['measurements', true],
        ['series', true],
      ]);
      const rows = async (db: string) =>
        (await queryInflux(influx.endpoint, 'SELECT * FROM temperature', { db }))[0]?.values;
      expect((await rows('plant'))?.length).toBe(40);
      expect(await rows('plant_restored')).toEqual(await rows('plant'));

      const again = runRestore(runtime, j, { target: 'plant_restored' });
      await expect(again).rejects.toBeInstanceOf(RestoreError);
      await expect(again).rejects.toThrow(/exists.*left untouched/);
      expect(await rows('plant_restored')).toEqual(await rows('plant'));
      expect(await readdir(staging)).toEqual([]);
    } finally {
      await sourceDriver('influxdb').discard(j.source as never, 'plant_restored', {
        env: runtime.env,
      });
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a backup of several databases into one database name, creating nothing', async () => {
    const { runtime, dir, job: j } = await runtimeFor();
    try {
      await runBackup(runtime, j);
      await expect(runRestore(runtime, j, { target: 'all_in_one' })).rejects.toThrow(
        /restores one database, and this backup holds 2/,
      );
      const driver = sourceDriver('influxdb');
      expect(await driver.targetExists(j.source as never, 'all_in_one', { env: runtime.env })).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('restore into a new data directory', () => {
  it('stops the scratch influxd only once it took every shard, even over a slow RPC link', async () => {
    // influxd restore exits once its bytes are in the socket; this influxd takes each upload 1.5 s late.
    const slow = fileURLToPath(new URL('../fixtures/influxd-slow-rpc/influxd', import.meta.url));
    const { runtime, dir, job: j } = await runtimeFor({ serverBinary: slow });
    const target = join(dir, 'restored');
    try {
      await runBackup(runtime, j);

      const restore = await runRestore(runtime, j, { target });

      expect(restore.checks.filter((c) => !c.passed)).toEqual([]);
      const copy = await startInflux({ dir: target });
      try {
        expect(await influxDigest(copy.endpoint)).toBe(await influxDigest(influx.endpoint));
      } finally {
        await copy.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** The objects of one backup in memory, read by the driver itself (no vault), and its details. */
async function backupObjects(source: unknown, ctx: { env: Record<string, string | undefined> }) {
  const backup = await sourceDriver('influxdb').backup(source as never, ctx);
  const data = new Map<string, Buffer>();
  const reading = (async () => {
    for await (const object of backup.objects) data.set(object.name, await buffer(object.stream));
  })();
  const [, { details }] = await Promise.all([reading, backup.done]);
  return { data, details: details as InfluxdbDetails };
}

describe('restore into the original database names (a whole-host recovery)', () => {
  it('restores every database under its own name on a fresh server, then refuses them, each named', async () => {
    const driver = sourceDriver('influxdb');
    const ctx = { env: { PATH: process.env.PATH, INFLUX_PASSWORD: PASSWORD } };
    const source = job().source as Record<string, unknown>;
    const { data, details } = await backupObjects(
      { ...source, host: '127.0.0.1', serverBinary: 'influxd' },
      ctx,
    );
    const fresh = await startInflux();
    try {
      const config = {
        ...source,
        host: '127.0.0.1',
        port: fresh.httpPort,
        rpcPort: fresh.rpcPort,
        user: undefined,
        passwordEnv: undefined,
        serverBinary: 'influxd',
      };
      const input = () => ({
        objects: [...data.keys()].map((name) => ({ name, sourceBytes: data.get(name)?.length ?? 0 })),
        open: async (name: string) => Readable.from([data.get(name) as Buffer]),
        only: async () => {
          throw new Error('several objects');
        },
      });
      const original = await driver.originalTarget(config as never, details as never, ctx);
      expect(original).toEqual({ target: 'plant,other', via: 'target', occupied: [] });

      await driver.restore(config as never, input() as never, { target: original.target, details, ctx });

      expect(await influxDigest(fresh.endpoint)).toBe(await influxDigest(influx.endpoint));
      const again = driver.restore(config as never, input() as never, {
        target: original.target,
        details,
        ctx,
      });
      await expect(again).rejects.toThrow(/database 'plant', database 'other' exist on .*left untouched/);
    } finally {
      await fresh.stop();
    }
  });
});

describe('restore as a new database: the race with someone creating that database', () => {
  it('never drops or writes into a database created between the check and influxd restore', async () => {
    const { runtime, dir, job: j } = await runtimeFor({ database: 'other' });
    const driver = sourceDriver('influxdb');
    const auth = { ...influx.endpoint };
    try {
      const ctx = { env: runtime.env };
      const { data, details } = await backupObjects(j.source, ctx);
      let raced = false;
      const input = {
        objects: [...data.keys()].map((name) => ({ name, sourceBytes: data.get(name)?.length ?? 0 })),
        open: async (name: string) => {
          if (!raced) {
            // Someone else creates the target after the driver checked it, before influxd restore runs.
            raced = true;
            await queryInflux(auth, 'CREATE DATABASE contested', { method: 'POST' });
            await queryInflux(auth, 'CREATE RETENTION POLICY mine ON contested DURATION 1d REPLICATION 1', {
              method: 'POST',
            });
          }
          return Readable.from([data.get(name) as Buffer]);
        },
        only: async () => {
          throw new Error('several objects');
        },
      };

      const restoring = driver.restore(j.source as never, input as never, {
        target: 'contested',
        details,
        ctx,
      });

      await expect(restoring).rejects.toThrow(/'contested' exists .*created by someone else.*left untouched/);
      const policies = await queryInflux(auth, 'SHOW RETENTION POLICIES ON contested');
      expect(JSON.stringify(policies)).toContain('mine');
      expect(await queryInflux(auth, 'SHOW MEASUREMENTS ON contested')).toEqual([]);
    } finally {
      await queryInflux(auth, 'DROP DATABASE contested', { method: 'POST' });
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the plan', () => {
  it('refuses InfluxDB 2.x clearly', () => {
    const plan = {
      version: 1,
      vault: { url: 'file:///tmp/v' },
      key: { type: 'local', path: '/tmp/k' },
      jobs: [{ name: 'ts', source: { kind: 'influxdb', version: 2 } }],
    };
    expect(() => validatePlan(plan)).toThrow(PlanError);
    expect(() => validatePlan(plan)).toThrow(
      /version.*only 1 is supported.*2\.x \(influx backup\) is not supported/,
    );
  });

  it('takes the defaults of a local 1.x server', () => {
    const plan = validatePlan({
      version: 1,
      vault: { url: 'file:///tmp/v' },
      key: { type: 'local', path: '/tmp/k' },
      jobs: [{ name: 'ts', source: { kind: 'influxdb' } }],
    });
    expect(plan.jobs[0]?.source).toMatchObject({ host: '127.0.0.1', port: 8086, rpcPort: 8088, version: 1 });
  });
});

it('creates a stagingDir that does not exist yet, and removes only its own directory in it', async () => {
  const missing = join(staging, 'not', 'there');
  const { runtime, dir, job: j } = await runtimeFor({ stagingDir: missing, database: 'other' });
  try {
    await runBackup(runtime, j);
    expect(await readdir(missing)).toEqual([]);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(join(staging, 'not'), { recursive: true, force: true });
  }
});
