/**
 * The free-space precondition of PostgreSQL restores, against a real local server: the database's size
 * when backed up (the manifest's databaseBytes) must fit in the free space of the server's data
 * directory, checked before anything is created — and for `--replace` before the safety backup. A role
 * that may not read data_directory (a non-superuser without pg_read_all_settings) restores with a note
 * that the check was skipped. The manifest's size is raised past the disk's to make the space missing.
 */
import { rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { runRestore } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { listBackups, readManifest } from '#core/catalog';
import { RestoreError } from '#core/errors';
import { manifestKey } from '#core/layout';
import { serializeManifest } from '#core/manifest';
import type { Job } from '#core/plan';
import { type PgServer, startPostgres } from '#test/support/postgres';
import { shopJobRuntime } from '#test/support/runtime';

let pg: PgServer;
const dirs: string[] = [];

/** The shop job's runtime as `user`, removed after the tests. */
const runtimeAs = (user: string) => shopJobRuntime(pg, user, dirs);

/** Backs up `shop` and records a database size of 1 PiB in the manifest. */
async function hugeBackup(runtime: Runtime, job: Job): Promise<string> {
  const { backupId } = await runBackup(runtime, job);
  const manifest = await readManifest(runtime.vault, 'shop', backupId);
  if (manifest.source.kind !== 'postgres') throw new Error('not a postgres backup');
  manifest.source.databaseBytes = 2 ** 50;
  // Vaults are create-only: replace the manifest by delete then put.
  await runtime.vault.delete([manifestKey('shop', backupId)]);
  await runtime.vault.put(manifestKey('shop', backupId), Readable.from([serializeManifest(manifest)]));
  return backupId;
}

const databases = () => pg.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database");

beforeAll(async () => {
  pg = await startPostgres({ databases: ['shop'] });
  await pg.psql('CREATE ROLE strongbox LOGIN CREATEDB IN ROLE pg_read_all_data;');
  await pg.psql(
    `CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100);
     ALTER DATABASE shop OWNER TO strongbox; ALTER TABLE orders OWNER TO strongbox;`,
    'shop',
  );
}, 60_000);

afterAll(async () => {
  await pg?.stop();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('the free-space precondition', () => {
  it('refuses a restore that does not fit, naming the sizes, before creating anything', async () => {
    const { runtime, job } = await runtimeAs('postgres');
    const backupId = await hugeBackup(runtime, job);
    const before = await databases();

    const attempt = runRestore(runtime, job, { backupId, target: 'shop_check' });

    await expect(attempt).rejects.toBeInstanceOf(RestoreError);
    await expect(attempt).rejects.toThrow(
      /^not enough free space for database shop_check on .*: the database was 1024\.0 TiB when backed up, the server's data directory \/\S+ has .* free; nothing was changed$/,
    );
    expect(await databases()).toEqual(before);
  });

  it('refuses a replace that does not fit before its safety backup', async () => {
    const { runtime, job } = await runtimeAs('postgres');
    const backupId = await hugeBackup(runtime, job);
    const before = { backups: (await listBackups(runtime.vault, 'shop')).length, dbs: await databases() };

    const attempt = runRestore(runtime, job, { backupId, replace: true, confirm: 'shop' });

    await expect(attempt).rejects.toThrow(
      /cannot replace .*nothing was changed: not enough free space for the copy of shop/,
    );
    expect((await listBackups(runtime.vault, 'shop')).length).toBe(before.backups);
    expect(await databases()).toEqual(before.dbs);
  });

  it('is skipped with a note when the role may not read data_directory', async () => {
    const { runtime, job, lines } = await runtimeAs('strongbox');
    const backupId = await hugeBackup(runtime, job);

    const result = await runRestore(runtime, job, { backupId, target: 'shop_unchecked' });

    expect(result.findings).toEqual([]);
    expect(lines).toContainEqual(
      expect.stringMatching(/^free space not checked: the role may not read data_directory/),
    );
    await pg.psql('DROP DATABASE shop_unchecked');
  });
});
