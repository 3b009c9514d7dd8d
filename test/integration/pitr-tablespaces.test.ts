/**
 * Point-in-time recovery of a cluster with a user tablespace, on a real cluster: the base backup stores
 * one object per tablespace (BASE_BACKUP over the replication protocol) and records each tablespace's
 * oid, name and location; a restore puts each tablespace into its new place (`tablespaceMap`, or beside
 * the new data directory), points pg_tblspc there, never writes into a location that holds anything,
 * and replays the archive to a recorded time: the table that lives in the tablespace has exactly the
 * rows written before it.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { runRestore } from '#agent/restore';
import { sourceDriver } from '#agent/sources/index';
import { readManifest } from '#core/catalog';
import { RestoreError } from '#core/errors';
import type { Manifest } from '#core/manifest';
import { type PitrSite, startPitrSite } from '#test/support/pitr';

const sh = promisify(execFile);
let site: PitrSite;
/** Where the source's tablespace lives, and scratch places for the restores (postgres must reach them). */
const base = `/tmp/strongbox-pitrts-${process.pid}`;
const sourceTs = join(base, 'source-ts');
let manifest: Manifest;
let oid: number;
let mark: string;

beforeAll(async () => {
  await mkdir(sourceTs, { recursive: true });
  await sh('chown', ['-R', 'postgres:postgres', base]);
  site = await startPitrSite({ databases: ['app'] });
  await site.pg.psql(`CREATE TABLESPACE app_ts LOCATION '${sourceTs}'`);
  oid = Number(await site.pg.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'app_ts'"));
  await site.pg.psql("CREATE TABLE t (phase text) TABLESPACE app_ts; INSERT INTO t VALUES ('base')", 'app');
  const backup = await runBackup(site.runtime, site.job);
  manifest = await readManifest(site.runtime.vault, 'pitr', backup.backupId);
  await site.pg.psql("INSERT INTO t VALUES ('a')", 'app');
  mark = await site.pg.psql(
    `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00'`,
  );
  await site.pg.psql('SELECT pg_sleep(0.2)');
  await site.pg.psql("INSERT INTO t VALUES ('b')", 'app');
  await site.archiveEverything();
}, 300_000);

afterAll(async () => {
  await site?.stop();
  await rm(base, { recursive: true, force: true });
});

describe('point-in-time restore of a cluster with a tablespace', () => {
  it('stores one object per tablespace and records its oid, name and location', () => {
    expect(manifest.objects.map((o) => o.name)).toEqual([
      `${oid}.tar.zst.sbx`,
      'base.tar.zst.sbx',
      'backup_manifest.zst.sbx',
    ]);
    if (manifest.source.kind !== 'postgres-physical') throw new Error('not physical');
    expect(manifest.source.tablespaces).toEqual([{ oid, name: 'app_ts', location: sourceTs }]);
    expect(manifest.source.backupLabel).toMatch(/^START WAL LOCATION: /);
    expect(manifest.source.firstWalSegment <= manifest.source.lastWalSegment).toBe(true);
  });

  it('restores to a time with --tablespace-map: the table in the tablespace has the rows before it', async () => {
    const target = join(base, 'mapped');
    const moved = join(base, 'mapped-ts');
    const result = await runRestore(site.runtime, site.job, {
      target,
      recoverTo: { type: 'time', time: mark },
      start: true,
      tablespaceMap: { [sourceTs]: moved },
    });
    try {
      expect(result.checks.filter((c) => !c.passed)).toEqual([]);
      expect(result.notes).toEqual([
        `tablespace app_ts (oid ${oid}, ${sourceTs} on the source) restored into ${moved}`,
      ]);
      expect(await readlink(join(target, 'pg_tblspc', String(oid)))).toBe(moved);
      expect(await site.psqlOn(target, 'SELECT phase FROM t ORDER BY phase', 'app')).toBe('a\nbase');
      expect(await site.psqlOn(target, `SELECT pg_tablespace_location(${oid})`)).toBe(moved);
      const file = await site.psqlOn(target, "SELECT pg_relation_filepath('t')", 'app');
      expect((await stat(join(target, file))).isFile()).toBe(true);
      expect(file).toMatch(new RegExp(`^pg_tblspc/${oid}/`));
      // The source's tablespace was only read.
      expect(await site.pg.psql('SELECT count(*) FROM t', 'app')).toBe('3');
    } finally {
      await sourceDriver(site.job.source).discard(site.job.source, target, { env: {} });
    }
    await expect(stat(moved)).rejects.toThrow(/ENOENT/);
    await expect(stat(target)).rejects.toThrow(/ENOENT/);
  });

  it('without a map puts the tablespace beside the new data directory and names it', async () => {
    const target = join(base, 'beside');
    const result = await runRestore(site.runtime, site.job, { target });
    const beside = `${target}-tablespace-app_ts`;
    try {
      expect(result.notes).toEqual([
        `tablespace app_ts (oid ${oid}, ${sourceTs} on the source) restored into ${beside}`,
      ]);
      expect(await readlink(join(target, 'pg_tblspc', String(oid)))).toBe(beside);
      expect((await readdir(beside)).some((e) => e.startsWith('PG_15_'))).toBe(true);
      expect(await readFile(join(target, 'backup_manifest'), 'utf8')).toMatch(/"WAL-Ranges"/);
    } finally {
      await sourceDriver(site.job.source).discard(site.job.source, target, { env: {} });
    }
    await expect(stat(beside)).rejects.toThrow(/ENOENT/);
  });

  it('never writes into a tablespace location that holds anything, and leaves nothing behind', async () => {
    const target = join(base, 'refused');
    const taken = join(base, 'taken');
    await mkdir(taken, { recursive: true });
    await writeFile(join(taken, 'keep.txt'), 'mine');
    await expect(
      runRestore(site.runtime, site.job, { target, tablespaceMap: { [sourceTs]: taken } }),
    ).rejects.toThrow(
      new RestoreError(
        `tablespace location ${taken} is not empty: restore into a new or empty directory (--tablespace-map OLD=NEW)`,
      ),
    );
    expect(await readdir(taken)).toEqual(['keep.txt']);
    await expect(stat(target)).rejects.toThrow(/ENOENT/);
  });

  it('refuses a map entry that is no tablespace of the backup, naming those it has', async () => {
    const target = join(base, 'wrong-map');
    await expect(
      runRestore(site.runtime, site.job, { target, tablespaceMap: { '/srv/nowhere': join(base, 'x') } }),
    ).rejects.toThrow(`/srv/nowhere is not a tablespace location of this backup (${sourceTs} (app_ts))`);
    await expect(stat(target)).rejects.toThrow(/ENOENT/);
  });
});
