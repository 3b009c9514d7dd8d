/**
 * `verify --deep` of PostgreSQL backups checks what the archive holds, not only that it reads back: the
 * archive's table of contents must list every table the manifest recorded, with its data, and data of a
 * table the manifest has no row count for is named; a backup whose kind is not the job's is refused.
 * Backups run as a non-superuser backup role (pg_read_all_data) against a real PostgreSQL. The manifests
 * are edited in the file vault as a writer that lost track would leave them (manifests are not signed).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { strongbox } from '#test/support/cli';
import { type PgServer, startPostgres } from '#test/support/postgres';

let pg: PgServer;
let dir: string;
let plan: string;
let backupId: string;

const manifestPath = (id: string) => join(dir, 'vault', 'backups', 'shop', id, 'manifest.json');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-deep-'));
  pg = await startPostgres({ databases: ['shop'] });
  await pg.psql(
    `CREATE ROLE backup LOGIN IN ROLE pg_read_all_data;
     CREATE TABLE orders (id int PRIMARY KEY, total int);
     INSERT INTO orders SELECT g, g FROM generate_series(1, 500) g;
     CREATE TABLE customers (id int PRIMARY KEY, name text);
     INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 50) g;`,
    'shop',
  );
  plan = join(dir, 'plan.yaml');
  const jobs = (kind: string) => `version: 1
vault: { url: "file://${join(dir, 'vault')}" }
key: { type: local, path: master.key }
jobs:
  - name: shop
    source: ${kind}
`;
  await writeFile(
    plan,
    jobs(`{ kind: postgres, database: shop, host: 127.0.0.1, port: ${pg.port}, user: backup }`),
  );
  await writeFile(join(dir, 'files-plan.yaml'), jobs(`{ kind: files, paths: ["${dir}"] }`));
  expect((await strongbox(['keygen', join(dir, 'master.key')])).code).toBe(0);
  const backup = await strongbox(['backup', '--plan', plan, '--job', 'shop', '--json']);
  expect(backup.code, backup.stderr).toBe(0);
  backupId = backup.json.backupId;
}, 120_000);

afterAll(async () => {
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function editManifest(
  edit: (m: { source: { tables: unknown[] } }) => void,
): Promise<() => Promise<void>> {
  const original = await readFile(manifestPath(backupId), 'utf8');
  const manifest = JSON.parse(original);
  edit(manifest);
  await writeFile(manifestPath(backupId), JSON.stringify(manifest));
  return () => writeFile(manifestPath(backupId), original);
}

describe('verify --deep of a postgres backup', () => {
  it("passes when the archive's table of contents lists the manifest's tables with their data", async () => {
    const verify = await strongbox(['verify', '--plan', plan, '--job', 'shop', '--deep', '--json']);
    expect(verify.code, verify.stdout).toBe(0);
    expect(verify.json.jobs[0].deep.checks).toEqual([
      expect.objectContaining({
        check: 'archive-toc',
        passed: true,
        detail: expect.stringMatching(/lists the 2 tables the manifest recorded, with their data/),
      }),
    ]);
  });

  it('is critical when the manifest records a table the archive does not hold', async () => {
    const restore = await editManifest((m) => {
      m.source.tables.push({ schema: 'public', name: 'invoices', rows: 7 });
    });
    try {
      const verify = await strongbox(['verify', '--plan', plan, '--job', 'shop', '--deep']);
      expect(verify.code).toBe(2);
      expect(verify.stdout).toContain(
        "CRITICAL  shop: the archive's table of contents has no table public.invoices, which the manifest recorded (7 rows)",
      );
    } finally {
      await restore();
    }
  });

  it('warns about data of a table the manifest has no row count for', async () => {
    const restore = await editManifest((m) => {
      m.source.tables = m.source.tables.filter((t) => (t as { name: string }).name !== 'customers');
    });
    try {
      const verify = await strongbox(['verify', '--plan', plan, '--job', 'shop', '--deep']);
      expect(verify.code).toBe(1);
      expect(verify.stdout).toContain(
        'WARNING  shop: the archive holds data of table public.customers that the manifest has no row count for',
      );
    } finally {
      await restore();
    }
  });

  it("is critical when the backup's kind is not the job's", async () => {
    const verify = await strongbox([
      'verify',
      '--plan',
      join(dir, 'files-plan.yaml'),
      '--job',
      'shop',
      '--deep',
    ]);
    expect(verify.code).toBe(2);
    expect(verify.stdout).toContain(
      `CRITICAL  shop: backup ${backupId} is a postgres backup but job 'shop' is files`,
    );
  });
});
