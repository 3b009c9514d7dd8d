/**
 * A vault outage under pgbench write load on a real cluster archiving through `strongbox wal-push`:
 * while the vault refuses the postgres user, every push fails, PostgreSQL keeps the segments (and their
 * `.ready` marks) and retries, doctor's archiver check fails; once the vault is back the archive catches
 * up, verify finds it continuous, and a restore to the end of the archive has every committed row.
 */
import { execFile } from 'node:child_process';
import { chmod, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { runRestore } from '#agent/restore';
import { sourceDriver } from '#agent/sources/index';
import { walArchiveOf } from '#agent/wal';
import { readManifest } from '#core/catalog';
import { parseSegment, segmentName, WAL_SEGMENT_NAME } from '#core/wal';
import { strongbox } from '#test/support/cli';
import { type PitrSite, startPitrSite } from '#test/support/pitr';

const sh = promisify(execFile);
let site: PitrSite;

beforeAll(async () => {
  site = await startPitrSite({ databases: ['bench'] });
}, 120_000);

afterAll(async () => {
  if (site) await chmod(join(site.dir, 'vault'), 0o755).catch(() => {});
  await site?.stop();
});

async function pgbench(...args: string[]): Promise<void> {
  const { pg } = site;
  await sh(
    join(pg.binDir, 'pgbench'),
    ['-h', pg.socketDir, '-p', String(pg.port), '-U', 'postgres', ...args],
    {
      maxBuffer: 16 * 1024 * 1024,
    },
  );
}

async function archivedNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of walArchiveOf(site.runtime, 'pitr').archive.list()) names.push(entry.name);
  return names;
}

describe('a vault outage under pgbench load', () => {
  it('loses no segment: PostgreSQL keeps and retries them, the archive catches up and restores everything', async () => {
    const { pg, runtime, job } = site;
    await pgbench('-i', '-q', '-s', '2', 'bench');
    const backup = await runBackup(runtime, job);
    await site.archiveEverything();
    const vault = join(site.dir, 'vault');
    const pgWal = join(pg.dataDir, 'pg_wal');

    // The outage: the vault refuses the user PostgreSQL runs wal-push as.
    await chmod(vault, 0o000);
    await pgbench('-T', '4', '-c', '2', '-n', 'bench');
    const closed = await pg.psql('SELECT pg_walfile_name(pg_switch_wal())');
    await pgbench('-t', '200', '-c', '1', '-n', 'bench');
    await pg.psql('SELECT pg_switch_wal()');
    const expected = await pg.psql(
      "SELECT (SELECT count(*) FROM pgbench_history) || ':' || (SELECT sum(abalance) FROM pgbench_accounts)",
      'bench',
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const during = await pg.psql(
      "SELECT failed_count, coalesce(last_archived_wal, '') FROM pg_stat_archiver",
    );
    const ready = (await readdir(join(pgWal, 'archive_status'))).filter((n) => n.endsWith('.ready'));
    const doctor = await sourceDriver(job.source).doctor(job.source, { env: {} });

    const [failedCount, lastArchived] = during.split('|');
    expect(Number(failedCount)).toBeGreaterThan(0);
    expect((lastArchived as string) < closed).toBe(true);
    expect(ready.map((n) => n.slice(0, 24))).toContain(closed);
    for (const name of ready) await stat(join(pgWal, name.slice(0, -'.ready'.length)));
    expect(doctor.find((c) => c.subject === 'pg_stat_archiver')?.ok).toBe(false);

    // The vault is back: the archiver's retries go through.
    await chmod(vault, 0o755);
    const last = await site.archiveEverything(180);

    const names = (await archivedNames()).filter((n) => WAL_SEGMENT_NAME.test(n));
    const manifest = await readManifest(runtime.vault, 'pitr', backup.backupId);
    if (manifest.source.kind !== 'postgres-physical') throw new Error('not physical');
    const { firstWalSegment, walSegmentBytes } = manifest.source;
    const needed = names.filter((n) => n >= firstWalSegment && n <= last);
    const { number } = parseSegment(firstWalSegment, walSegmentBytes);
    const perLog = 0x1_0000_0000 / walSegmentBytes;
    expect(needed).toEqual(
      Array.from({ length: needed.length }, (_, i) => segmentName(1, number + i, perLog)),
    );
    expect(needed).toContain(closed);
    expect(needed.at(-1)).toBe(last);
    const verify = await strongbox(['verify', '--plan', runtime.planPath, '--job', 'pitr', '--json']);
    expect(verify.json.findings.filter((f: { severity: string }) => f.severity === 'critical')).toEqual([]);

    const dataDir = join('/tmp', `strongbox-pitr-outage-${process.pid}`);
    try {
      const restored = await runRestore(runtime, job, {
        target: dataDir,
        recoverTo: { type: 'latest' },
        start: true,
      });
      expect(restored.checks.filter((c) => !c.passed)).toEqual([]);
      expect(
        await site.psqlOn(
          dataDir,
          "SELECT (SELECT count(*) FROM pgbench_history) || ':' || (SELECT sum(abalance) FROM pgbench_accounts)",
          'bench',
        ),
      ).toBe(expected);
    } finally {
      await sourceDriver(job.source).discard(job.source, dataDir, { env: {} });
    }
  }, 300_000);
});
