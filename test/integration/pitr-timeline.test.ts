/**
 * A timeline switch on a real cluster: restore to a restore point with `archive` (the copy becomes the
 * primary), promote, write on the new timeline — it archives its history file and segments into the same
 * job from promotion on — then a second restore from the timeline-1 base backup to the end of the
 * archive follows the history file across the switch: the rows of the new timeline, not those written
 * on the old one after the restore point.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { runRestore } from '#agent/restore';
import { sourceDriver } from '#agent/sources/index';
import { walArchiveOf } from '#agent/wal';
import { strongbox } from '#test/support/cli';
import { type PitrSite, startPitrSite } from '#test/support/pitr';

let site: PitrSite;
const copies = [1, 2].map((n) => join('/tmp', `strongbox-pitr-tl-${n}-${process.pid}`));

beforeAll(async () => {
  site = await startPitrSite({ databases: ['app'] });
}, 120_000);

afterAll(async () => {
  for (const copy of copies)
    await sourceDriver(site.job.source)
      .discard(site.job.source, copy, { env: {} })
      .catch(() => {});
  await site?.stop();
});

async function archived(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of walArchiveOf(site.runtime, 'pitr').archive.list()) names.push(entry.name);
  return names;
}

async function read(name: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await walArchiveOf(site.runtime, 'pitr').archive.fetch(name))
    chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

describe('a restore across a timeline switch', () => {
  it('archives the new timeline from promotion on, and a later restore follows it', async () => {
    const { pg, runtime, job } = site;
    const [first, second] = copies as [string, string];
    await pg.psql("CREATE TABLE t (phase text); INSERT INTO t VALUES ('base')", 'app');
    const base = await runBackup(runtime, job);
    await pg.psql("INSERT INTO t VALUES ('a')", 'app');
    await pg.psql("SELECT pg_create_restore_point('before-b')");
    await pg.psql("INSERT INTO t VALUES ('b')", 'app');
    await site.archiveEverything();

    const promoted = await runRestore(runtime, job, {
      target: first,
      recoverTo: { type: 'name', name: 'before-b' },
      start: true,
      archive: true,
    });
    expect(promoted.checks.filter((c) => !c.passed)).toEqual([]);
    expect(await site.psqlOn(first, 'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)')).toBe(
      '00000002',
    );
    await site.psqlOn(first, "INSERT INTO t VALUES ('c')", 'app');
    const closed = await site.psqlOn(first, 'SELECT pg_walfile_name(pg_switch_wal())');
    for (let i = 0; i < 300; i++) {
      const last = await site.psqlOn(first, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
      if (last >= closed) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    const names = await archived();
    expect(names).toContain('00000002.history');
    expect(names).toContain(closed);
    expect(closed.startsWith('00000002')).toBe(true);
    expect(await read('00000002.history')).toMatch(/^1\t[0-9A-F]+\/[0-9A-F]+\t.*before-b/m);
    expect(await readFile(join(first, 'postgresql.auto.conf'), 'utf8')).toMatch(
      /archive_mode = on\narchive_command = '.* wal-push --plan .* --job pitr -q %p'/,
    );
    await sourceDriver(job.source).discard(job.source, first, { env: {} });

    const across = await runRestore(runtime, job, {
      backupId: base.backupId,
      target: second,
      recoverTo: { type: 'latest' },
      start: true,
    });
    expect(across.checks.filter((c) => !c.passed)).toEqual([]);
    expect(await site.psqlOn(second, 'SELECT phase FROM t ORDER BY phase', 'app')).toBe('a\nbase\nc');
    expect(await site.psqlOn(second, 'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)')).toBe(
      '00000003',
    );
    expect(await readFile(join(second, 'postgresql.auto.conf'), 'utf8')).toMatch(/archive_mode = off/);
    const verify = await strongbox(['verify', '--plan', runtime.planPath, '--job', 'pitr', '--json']);
    expect(verify.json.findings.filter((f: { severity: string }) => f.severity === 'critical')).toEqual([]);
  }, 300_000);

  it('refuses archive without a point-in-time target', async () => {
    await expect(
      runRestore(site.runtime, site.job, { target: '/tmp/strongbox-never', archive: true }),
    ).rejects.toThrow(/archive: only a point-in-time restore \(--to\) archives a new timeline/);
  });
});
