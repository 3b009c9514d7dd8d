/**
 * GFS and point-in-time recovery together on a real cluster: an older (monthly) base backup, a newer
 * one, WAL archived around both; eight days later prune expires the WAL before the newer one (the
 * point-in-time window is seven days) — and the older base backup still restores on its own, from the
 * WAL inside its tar, to exactly its end; verify counts the expired WAL as no gap. A drill of the job
 * is a whole recovery (newest base backup, the archive to its end, promotion) and reports the measured
 * RTO and the recovery point it reached.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { drillCommand } from '#agent/commands/drill';
import { pruneCommand } from '#agent/commands/prune';
import { verifyCommand } from '#agent/commands/verify';
import { runRestore } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import type { AgentDrillResult } from '#core/agent-output';
import { readManifest } from '#core/catalog';
import { type PitrSite, startPitrSite } from '#test/support/pitr';

let site: PitrSite;
const copy = join('/tmp', `strongbox-pitr-expired-${process.pid}`);
const lastCommit = { before: '', after: '' };

beforeAll(async () => {
  site = await startPitrSite({ databases: ['app'] });
}, 120_000);

afterAll(async () => {
  await sourceDriver(site.job.source)
    .discard(site.job.source, copy, { env: {} })
    .catch(() => {});
  await site?.stop();
});

describe('a base backup whose WAL expired', () => {
  it('restores on its own to its end after prune expired the WAL around it, and verify sees no gap', async () => {
    const { pg, runtime, job } = site;
    await pg.psql("CREATE TABLE t (phase text); INSERT INTO t VALUES ('monthly')", 'app');
    const monthly = await runBackup(runtime, job);
    await pg.psql("INSERT INTO t VALUES ('after-monthly')", 'app');
    await site.archiveEverything();
    await site.archiveEverything();
    const newer = await runBackup(runtime, job);
    lastCommit.before = await pg.psql(
      'SELECT to_char(clock_timestamp() AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')',
    );
    await pg.psql("INSERT INTO t VALUES ('after-newer')", 'app');
    lastCommit.after = await pg.psql(
      'SELECT to_char(clock_timestamp() AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')',
    );
    await site.archiveEverything();
    // Eight days on, with backups kept for 30 days and the point-in-time window at its default 7 days.
    const later: Runtime = {
      ...runtime,
      plan: { ...runtime.plan, retention: { ...runtime.plan.retention, daily: 30 } },
      clock: { now: () => new Date(Date.now() + 8 * 86_400_000) },
    };
    const first = await readManifest(runtime.vault, 'pitr', monthly.backupId);
    const second = await readManifest(runtime.vault, 'pitr', newer.backupId);
    if (first.source.kind !== 'postgres-physical' || second.source.kind !== 'postgres-physical')
      throw new Error('not physical');
    const walDir = join(site.dir, 'vault', 'wal', 'pitr', '00000001');
    const before = await readdir(walDir);

    const pruned = await pruneCommand(later, { jobs: ['pitr'] });

    const after = await readdir(walDir);
    const anchorFirst = second.source.firstWalSegment;
    expect(pruned.json).toMatchObject({ wal: [{ job: 'pitr', keptFrom: newer.backupId }] });
    expect(before.filter((n) => n.slice(0, 24) < anchorFirst).length).toBeGreaterThan(1);
    expect(after.filter((n) => n.slice(0, 24) < anchorFirst)).toEqual([]);
    expect(after).toContain(anchorFirst);
    const verified = await verifyCommand(later, { jobs: ['pitr'] });
    const findings = (verified.json as { findings: { severity: string; check: string }[] }).findings;
    // Eight days without a backup is critical (backup-age); a gap would be wal-gap.
    expect(findings.filter((f) => f.check === 'wal-gap')).toEqual([]);
    expect(
      (verified.json as { jobs: { recoveryWindow: { earliest: string } }[] }).jobs[0]?.recoveryWindow
        .earliest,
    ).toBe(second.finishedAt);

    const restored = await runRestore(runtime, job, {
      backupId: monthly.backupId,
      target: copy,
      start: true,
    });

    expect(restored.checks.filter((c) => !c.passed)).toEqual([]);
    expect(await site.psqlOn(copy, 'SELECT phase FROM t ORDER BY phase', 'app')).toBe('monthly');
  }, 300_000);

  it('a drill recovers the newest base backup through the archive and reports the RTO and the recovery point', async () => {
    const { runtime } = site;

    const drilled = await drillCommand(runtime, { jobs: ['pitr'] });

    const result = drilled.json as AgentDrillResult;
    expect(result.findings).toEqual([]);
    expect(result.checks.map((c) => c.check)).toContain('recovered');
    expect(result.durationSeconds).toBeGreaterThan(0);
    expect(result.recoveryPoint?.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(result.recoveryPoint?.timeline).toBe(2);
    const time = Date.parse(result.recoveryPoint?.time ?? '');
    expect(time).toBeGreaterThanOrEqual(Date.parse(lastCommit.before));
    expect(time).toBeLessThanOrEqual(Date.parse(lastCommit.after));
    expect(drilled.text).toMatch(/recovered to \S+ \(last commit replayed\), LSN \S+, timeline 2/);
    await expect(readdir(result.target)).rejects.toThrow();
  }, 300_000);
});
