/**
 * The agent end to end against a real PostgreSQL: backup → list → verify --deep → restore, with the file
 * vault and with s3rver as the S3 endpoint; selective restore; --replace; and every way a restore must
 * fail without damaging anything.
 */
import { chmod, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { strongbox } from '#test/support/cli';
import { type PgServer, startPostgres } from '#test/support/postgres';
import { startS3rver } from '#test/support/s3rver';
import { fillDemoDatabase } from '../../scripts/lib/postgres-cluster';

let pg: PgServer;
let dir: string;
let s3: Awaited<ReturnType<typeof startS3rver>>;

function planYaml(vault: string, extra = ''): string {
  return `version: 1
timezone: Europe/Berlin
vault: ${vault}
key: { type: local, path: master.key }
jobs:
  - name: shop
    source: { kind: postgres, database: shop, host: 127.0.0.1, port: ${pg.port}, user: postgres }
    limits: { warnAge: 1h, criticalAge: 2h }
  - name: missing-db
    source: { kind: postgres, database: does_not_exist, host: 127.0.0.1, port: ${pg.port}, user: postgres }
${extra}`;
}

async function writePlan(name: string, vault: string): Promise<string> {
  const path = join(dir, `${name}.yaml`);
  await writeFile(path, planYaml(vault));
  return path;
}

/** Row count and an order-independent content hash per table. */
async function fingerprint(database: string): Promise<Record<string, string>> {
  const tables = (
    await pg.psql("SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'public' ORDER BY 1", database)
  )
    .split('\n')
    .filter(Boolean);
  const result: Record<string, string> = {};
  for (const table of tables) {
    result[table] = await pg.psql(
      `SELECT count(*) || ':' || coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') FROM ${table} t`,
      database,
    );
  }
  return result;
}

async function databases(): Promise<string[]> {
  return (await pg.psql('SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1'))
    .split('\n')
    .filter(Boolean);
}

/** Flips one byte in the middle of the only data object of a file-vault backup. */
async function corruptDataObject(vaultDir: string, backupId: string): Promise<void> {
  const backupDir = join(vaultDir, 'backups', 'shop', backupId);
  const name = (await readdir(backupDir)).find((f) => f.startsWith('data.'));
  if (!name) throw new Error(`no data object in ${backupDir}`);
  const handle = await open(join(backupDir, name), 'r+');
  try {
    const { size } = await handle.stat();
    const byte = Buffer.alloc(1);
    const at = Math.floor(size * 0.6);
    await handle.read(byte, 0, 1, at);
    byte[0] = (byte[0] as number) ^ 0x01;
    await handle.write(byte, 0, 1, at);
  } finally {
    await handle.close();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-agent-'));
  [pg, s3] = await Promise.all([startPostgres({ databases: ['shop'] }), startS3rver('backups-test')]);
  await fillDemoDatabase(pg, 'shop', { scale: 0.02 });
  const keygen = await strongbox(['keygen', join(dir, 'master.key')]);
  expect(keygen.code, keygen.stderr).toBe(0);
});

afterAll(async () => {
  try {
    await Promise.all([pg?.stop(), s3?.stop()]);
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
});

describe('with a file vault', () => {
  let plan: string;
  let vaultDir: string;
  let backupId: string;

  beforeAll(async () => {
    vaultDir = join(dir, 'vault');
    plan = await writePlan('file', `{ url: "file://${vaultDir}" }`);
  });

  it('backs up, lists the backup as complete and deep-verifies it', async () => {
    const backup = await strongbox(['backup', '--plan', plan, '--job', 'shop', '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.json).toMatchObject({ job: 'shop', kind: 'postgres', tier: 'yearly' });
    expect(backup.json.sourceBytes).toBeGreaterThan(100_000);
    expect(backup.json.storedBytes).toBeLessThan(backup.json.sourceBytes);
    backupId = backup.json.backupId;

    const list = await strongbox(['list', '--plan', plan, '--job', 'shop', '--json']);
    expect(list.json.backups).toEqual([expect.objectContaining({ backupId, complete: true })]);

    const verify = await strongbox(['verify', '--plan', plan, '--job', 'shop', '--deep', '--json']);
    expect(verify.code, verify.stdout).toBe(0);
    expect(verify.json.jobs[0].deep).toMatchObject({ backupId, sourceBytes: backup.json.sourceBytes });
  });

  it('gives the second backup of the same day the daily tier', async () => {
    const second = await strongbox(['backup', '--plan', plan, '--job', 'shop', '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.json.tier).toBe('daily');
  });

  it('restores into a scratch database identical to the source', async () => {
    const restore = await strongbox([
      'restore',
      '--plan',
      plan,
      '--job',
      'shop',
      '--backup-id',
      backupId,
      '--target',
      'shop_copy',
      '--json',
    ]);
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.json.findings).toEqual([]);
    expect(await fingerprint('shop_copy')).toEqual(await fingerprint('shop'));
  });

  it('restores only the selected tables', async () => {
    const restore = await strongbox([
      'restore',
      '--plan',
      plan,
      '--job',
      'shop',
      '--tables',
      'public.customers',
      '--target',
      'shop_customers',
      '--json',
    ]);
    expect(restore.code, restore.stderr).toBe(0);
    const copy = await fingerprint('shop_customers');
    expect(Object.keys(copy)).toEqual(['customers']);
    expect(copy.customers).toBe((await fingerprint('shop')).customers);
  });

  it('refuses to restore into an existing database and leaves it untouched', async () => {
    const before = await fingerprint('shop_copy');
    const restore = await strongbox(['restore', '--plan', plan, '--job', 'shop', '--target', 'shop_copy']);
    expect(restore.code).toBe(2);
    expect(restore.lastError).toMatch(/strongbox: error: .*shop_copy.*exists/);
    expect(await fingerprint('shop_copy')).toEqual(before);
  });

  it('replaces the live database: safety backup, swap, old one kept', async () => {
    await pg.psql(
      "INSERT INTO customers (id, name, email, country, created_at) VALUES (999999, 'late', 'late@x', 'DE', now())",
      'shop',
    );
    const changed = await fingerprint('shop');

    const refused = await strongbox(['restore', '--plan', plan, '--job', 'shop', '--replace']);
    expect(refused.code).toBe(2);
    expect(refused.lastError).toContain('--confirm shop');

    const replace = await strongbox([
      'restore',
      '--plan',
      plan,
      '--job',
      'shop',
      '--backup-id',
      backupId,
      '--replace',
      '--confirm',
      'shop',
      '--json',
    ]);
    expect(replace.code, replace.stderr).toBe(0);
    expect(replace.json).toMatchObject({ mode: 'replace', target: 'shop' });
    expect(await fingerprint(replace.json.keptAs)).toEqual(changed);
    expect(await pg.psql('SELECT count(*) FROM customers WHERE id = 999999', 'shop')).toBe('0');
    const list = await strongbox(['list', '--plan', plan, '--job', 'shop', '--json']);
    expect(list.json.backups.map((b: { backupId: string }) => b.backupId)).toContain(
      replace.json.safetyBackupId,
    );
  });

  it('stops a restore of a corrupted backup, removes the scratch target, and never touches the live database', async () => {
    const backup = await strongbox(['backup', '--plan', plan, '--job', 'shop', '--json']);
    await corruptDataObject(vaultDir, backup.json.backupId);
    const live = await fingerprint('shop');
    const before = await databases();

    const scratch = await strongbox([
      'restore',
      '--plan',
      plan,
      '--job',
      'shop',
      '--backup-id',
      backup.json.backupId,
    ]);
    expect(scratch.code).toBe(2);
    expect(scratch.lastError).toMatch(/authentication|altered/);
    const replace = await strongbox([
      'restore',
      '--plan',
      plan,
      '--job',
      'shop',
      '--backup-id',
      backup.json.backupId,
      '--replace',
      '--confirm',
      'shop',
    ]);
    expect(replace.code).toBe(2);

    expect(await fingerprint('shop')).toEqual(live);
    expect(await databases()).toEqual(before);
    const verify = await strongbox([
      'verify',
      '--plan',
      plan,
      '--job',
      'shop',
      '--deep',
      '--backup-id',
      backup.json.backupId,
    ]);
    expect(verify.code).toBe(2);
  });

  it('a failed dump leaves nothing that looks like a backup', async () => {
    const backup = await strongbox(['backup', '--plan', plan, '--job', 'missing-db']);
    expect(backup.code).toBe(2);
    expect(backup.lastError).toMatch(/^strongbox: error: .*does_not_exist/);
    const list = await strongbox(['list', '--plan', plan, '--job', 'missing-db', '--json']);
    expect(list.json.backups).toEqual([]);
  });

  it('backs up every job when no job is named, and fails naming the jobs that failed', async () => {
    const before = await strongbox(['list', '--plan', plan, '--job', 'shop', '--json']);
    const all = await strongbox(['backup', '--plan', plan]);
    expect(all.code).toBe(2);
    expect(all.lastError).toMatch(
      /^strongbox: error: backup: 1 of 2 backups failed \(missing-db: .*does_not_exist/,
    );
    const after = await strongbox(['list', '--plan', plan, '--job', 'shop', '--json']);
    expect(after.json.backups).toHaveLength(before.json.backups.length + 1);
  });

  it('refuses a master key that others can read, and a wrong key cannot restore', async () => {
    const otherKey = join(dir, 'other.key');
    await strongbox(['keygen', otherKey]);
    const wrongPlan = join(dir, 'wrong-key.yaml');
    await writeFile(
      wrongPlan,
      planYaml(`{ url: "file://${vaultDir}" }`).replace('path: master.key', 'path: other.key'),
    );
    const wrong = await strongbox([
      'restore',
      '--plan',
      wrongPlan,
      '--job',
      'shop',
      '--backup-id',
      backupId,
      '--target',
      'never_created',
    ]);
    expect(wrong.code).toBe(2);
    expect(wrong.lastError).toMatch(/key/i);
    expect(await databases()).not.toContain('never_created');

    await chmod(otherKey, 0o644);
    const loose = await strongbox(['doctor', '--plan', wrongPlan, '--job', 'shop']);
    expect(loose.code).toBe(2);
  });
});

describe('with s3rver as the S3 endpoint', () => {
  it('backs up, deep-verifies and restores', async () => {
    const plan = await writePlan(
      's3',
      `{ url: "s3://${s3.bucket}/strongbox", endpoint: "${s3.endpoint}", checksums: when-required, partSizeMiB: 5 }`,
    );
    const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
    const backup = await strongbox(['backup', '--plan', plan, '--job', 'shop', '--json'], env);
    expect(backup.code, backup.stderr).toBe(0);
    const verify = await strongbox(['verify', '--plan', plan, '--job', 'shop', '--deep', '--json'], env);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    const restore = await strongbox(
      ['restore', '--plan', plan, '--job', 'shop', '--target', 'shop_from_s3', '--json'],
      env,
    );
    expect(restore.code, restore.stderr).toBe(0);
    expect(await fingerprint('shop_from_s3')).toEqual(await fingerprint('shop'));
    expect(restore.json.findings).toEqual([]);
  });
});
