import { describe, expect, it } from 'vitest';
import { readCatalog } from '#core/catalog';
import {
  checkChecksums,
  checkJob,
  checkStorageClasses,
  checkTierCoverage,
  checkWalContinuity,
  type JobFacts,
} from '#core/checks';
import { manifestKey, objectKey } from '#core/layout';
import { retentionOf } from '#core/plan';
import { tierOf } from '#core/tiers';
import { SYNTHETIC_OBJECT, seedBackup } from '#test/unit/functions/support/backups';
import { MemoryVault } from '#test/unit/functions/support/memory-vault';
import { jobWith, planWithJob } from './fixtures';

const DAY = 86_400_000;
const plan = planWithJob();
const job = jobWith();
const retention = retentionOf(plan, job);

/**
 * A year of daily backups at 02:00 UTC ending `end`, tiered as run-backup tiers them, with the data of
 * every backup past its tier's retention removed the way S3 lifecycle removes it (manifests stay).
 */
function history(vault: MemoryVault, end: Date, days = 400) {
  const manifests = [];
  let previous: Date | undefined;
  for (let i = days - 1; i >= 0; i--) {
    const startedAt = new Date(end.getTime() - i * DAY);
    const tier = tierOf(startedAt, previous, 'UTC');
    previous = startedAt;
    const manifest = seedBackup(vault, { job: job.name, startedAt, tier, storedBytes: 64 });
    const age = Math.floor((end.getTime() + 3 * 3600_000 - new Date(manifest.finishedAt).getTime()) / DAY);
    if (age >= retention[tier])
      vault.objects.delete(objectKey(job.name, manifest.backupId, SYNTHETIC_OBJECT));
    manifests.push(manifest);
  }
  return manifests;
}

async function facts(vault: MemoryVault, now: Date, extra: Partial<JobFacts> = {}): Promise<JobFacts> {
  return {
    job,
    retention,
    timeZone: 'UTC',
    catalog: await readCatalog(vault, job.name),
    recentCount: 7,
    now,
    ...extra,
  };
}

const END = new Date('2025-03-12T02:00:00Z');
const NOW = new Date(END.getTime() + 3 * 3600_000);

describe('checkJob', () => {
  it('finds nothing in a healthy year of GFS backups and summarises the newest', async () => {
    // Prepare
    const vault = new MemoryVault();
    const manifests = history(vault, END);
    // Act
    const { findings, summary } = checkJob(await facts(vault, NOW, { storageClasses: true }));
    // Assess
    expect(findings).toEqual([]);
    expect(summary).toMatchObject({
      job: 'app-db',
      newestBackupId: manifests.at(-1)?.backupId,
      lastBackupBytes: 64,
      incomplete: 0,
    });
    expect(summary.backupAgeSeconds).toBe(3 * 3600 - 60);
    expect(summary.retained).toBeGreaterThan(7 + 4);
    expect(summary.retained + summary.expired).toBe(400);
  });

  it('reports an object missing from a retained backup as critical, naming its key', async () => {
    const vault = new MemoryVault();
    const manifests = history(vault, END);
    const victim = manifests.at(-3);
    if (!victim) throw new Error('no backup');
    const key = objectKey(job.name, victim.backupId, SYNTHETIC_OBJECT);
    vault.objects.delete(key);
    const { findings } = checkJob(await facts(vault, NOW));
    expect(findings[0]).toMatchObject({
      severity: 'critical',
      check: 'object-missing',
      backupId: victim.backupId,
    });
    expect(findings[0]?.message).toContain(key);
  });

  it('reports a manifest that is not valid as critical and keeps checking the others', async () => {
    const vault = new MemoryVault();
    const manifests = history(vault, END, 20);
    const broken = manifests[15];
    if (!broken) throw new Error('no backup');
    vault.set(manifestKey(job.name, broken.backupId), '{"format":"strongbox.manifest","version":9}');
    const { findings, summary } = checkJob(await facts(vault, NOW));
    expect(findings.map((f) => [f.severity, f.check, f.backupId])).toContainEqual([
      'critical',
      'manifest-invalid',
      broken.backupId,
    ]);
    expect(summary.newestBackupId).toBe(manifests.at(-1)?.backupId);
  });

  it.each([
    [26, 'warning'],
    [31, 'critical'],
  ])('reports the newest backup %ih old as %s', async (hours, severity) => {
    const vault = new MemoryVault();
    history(vault, END, 20);
    const { findings } = checkJob(await facts(vault, new Date(END.getTime() + hours * 3600_000)));
    expect(findings[0]).toMatchObject({ severity, check: 'backup-age' });
  });

  it('reports no backup at all as critical', async () => {
    const { findings, summary } = checkJob(await facts(new MemoryVault(), NOW));
    expect(findings).toEqual([expect.objectContaining({ severity: 'critical', check: 'no-backup' })]);
    expect(summary.newestBackupId).toBeUndefined();
  });

  it('warns when the newest backup shrank under half of the recent median', async () => {
    const vault = new MemoryVault();
    for (let i = 8; i >= 1; i--) {
      seedBackup(vault, {
        job: job.name,
        startedAt: new Date(END.getTime() - i * DAY),
        sourceBytes: 1_000_000,
        tier: 'daily',
      });
    }
    seedBackup(vault, { job: job.name, startedAt: END, sourceBytes: 300_000, tier: 'daily' });
    const { findings } = checkJob(await facts(vault, NOW));
    expect(findings.map((f) => f.check)).toContain('backup-size');
  });

  it('warns when backups outlived their retention (lifecycle not applied)', async () => {
    const vault = new MemoryVault();
    const manifests = history(vault, END, 30);
    const old = manifests.find((m) => m.tier === 'daily');
    if (!old) throw new Error('no daily');
    seedBackup(vault, { job: job.name, startedAt: new Date(old.startedAt), tier: 'daily', storedBytes: 64 });
    const { findings } = checkJob(await facts(vault, NOW));
    const overdue = findings.find((f) => f.check === 'retention-overdue');
    expect(overdue).toMatchObject({ severity: 'warning', backupId: old.backupId });
    expect(overdue?.message).toMatch(/daily, \d+d old, kept 7d/);
  });

  it('warns when a weekly backup vanished before its retention ended', async () => {
    const vault = new MemoryVault();
    const manifests = history(vault, END, 60);
    const weekly = manifests.filter((m) => m.tier === 'weekly').at(-2);
    if (!weekly) throw new Error('no weekly');
    vault.objects.delete(objectKey(job.name, weekly.backupId, SYNTHETIC_OBJECT));
    const { findings } = checkJob(await facts(vault, NOW));
    expect(findings.map((f) => f.check)).toContain('tier-coverage');
  });

  it('reports a claimed scheduled run that left no backup, after its timeout', async () => {
    const vault = new MemoryVault();
    history(vault, new Date(END.getTime() - DAY), 10);
    const claim = { backupId: '20250312T020000Z-abcdef', claimedAt: END };
    const early = checkJob(await facts(vault, new Date(END.getTime() + 3600_000), { runClaims: [claim] }));
    expect(early.findings.map((f) => f.check)).not.toContain('backup-missing');
    const late = new Date(END.getTime() + job.timeout * 1000 + 2 * 3600_000);
    const { findings } = checkJob(await facts(vault, late, { runClaims: [claim] }));
    expect(findings).toContainEqual(
      expect.objectContaining({ severity: 'warning', check: 'backup-missing', backupId: claim.backupId }),
    );
  });

  it('reports an abandoned incomplete backup once, not while it may still be running', async () => {
    const vault = new MemoryVault();
    history(vault, new Date(END.getTime() - DAY), 10);
    const incomplete = seedBackup(vault, { job: job.name, startedAt: END, complete: false });
    const running = checkJob(await facts(vault, NOW));
    expect(running.findings.map((f) => f.check)).not.toContain('incomplete-backup');
    expect(running.summary.incomplete).toBe(1);
    const later = new Date(END.getTime() + 8 * 3600_000);
    const claims = [{ backupId: incomplete.backupId, claimedAt: END }];
    const { findings } = checkJob(await facts(vault, later, { runClaims: claims }));
    const about = findings.filter((f) => f.backupId === incomplete.backupId);
    expect(about).toEqual([expect.objectContaining({ check: 'backup-missing', severity: 'warning' })]);
    expect(about[0]?.message).toContain('left an incomplete backup');
  });

  it('checks WAL continuity only when WAL names are given', async () => {
    const vault = new MemoryVault();
    history(vault, END, 3);
    const wal = ['000000010000000000000001', '000000010000000000000003'];
    expect(checkJob(await facts(vault, NOW)).findings).toEqual([]);
    const { findings } = checkJob(await facts(vault, NOW, { walNames: wal }));
    expect(findings).toEqual([expect.objectContaining({ severity: 'critical', check: 'wal-gap' })]);
  });
});

describe('checkTierCoverage', () => {
  it('expects no weekly backups from a job that runs monthly', () => {
    const backups = Array.from({ length: 12 }, (_, i) => ({
      backupId: `b${i}`,
      tier: 'monthly' as const,
      startedAt: new Date(Date.UTC(2024, i, 1, 2)),
    }));
    expect(checkTierCoverage(job, retention, backups, 'UTC', new Date('2024-12-20T00:00:00Z'))).toEqual([]);
  });

  it('names the ISO weeks without a weekly backup', () => {
    const start = new Date('2024-11-01T02:00:00Z');
    const backups = Array.from({ length: 40 }, (_, i) => ({
      backupId: `b${i}`,
      tier: 'daily' as const,
      startedAt: new Date(start.getTime() + i * DAY),
    }));
    const [finding] = checkTierCoverage(job, retention, backups, 'UTC', new Date('2024-12-11T00:00:00Z'));
    expect(finding?.message).toMatch(/of \d ISO weeks .* weekly retention of 35d have no weekly .*2024-W4\d/);
  });
});

describe('checkWalContinuity', () => {
  it('accepts a continuous archive across a log boundary, with history and backup files', () => {
    const names = [
      '0000000100000000000000FE',
      '0000000100000000000000FF',
      '000000010000000100000000',
      '000000010000000100000001.zst',
      '00000002.history',
      '000000010000000100000001.00000028.backup',
    ];
    expect(checkWalContinuity(job, names)).toEqual([]);
  });

  it('names the missing range of each gap', () => {
    const names = ['000000010000000000000001', '000000010000000000000005', '000000010000000000000007'];
    const [finding] = checkWalContinuity(job, names);
    expect(finding?.severity).toBe('critical');
    expect(finding?.message).toBe(
      'WAL gap on timeline 1: 4 segments missing (000000010000000000000002 … 000000010000000000000004; 000000010000000000000006); point-in-time recovery cannot cross it',
    );
  });

  it('checks each timeline on its own', () => {
    const names = ['000000010000000000000001', '000000020000000000000005', '000000020000000000000006'];
    expect(checkWalContinuity(job, names)).toEqual([]);
  });
});

describe('checkStorageClasses', () => {
  const manifest = (tier: 'daily' | 'monthly') =>
    seedBackup(new MemoryVault(), { job: job.name, startedAt: new Date('2025-01-01T02:00:00Z'), tier });
  const stored = (key: string, storageClass: string, ageDays: number, sizeBytes = 64) =>
    new Map([[key, { key, sizeBytes, storageClass, lastModified: new Date(NOW.getTime() - ageDays * DAY) }]]);

  it.each([
    ['monthly', 'GLACIER', 40, 'warning'],
    ['daily', 'STANDARD_IA', 3, 'warning'],
    ['monthly', 'STANDARD_IA', 40, undefined],
    ['monthly', 'GLACIER', 95, undefined],
    ['monthly', 'STANDARD_IA', 91, undefined],
  ] as const)('a %s object in %s at %id: %s', (tier, storageClass, age, severity) => {
    const m = manifest(tier);
    const keyOf = (name: string) => objectKey(job.name, m.backupId, name);
    const found = checkStorageClasses(
      m,
      stored(keyOf(SYNTHETIC_OBJECT), storageClass, age),
      keyOf,
      retention,
      NOW,
    );
    expect(found[0]?.severity).toBe(severity);
  });

  it('notes a large object that the lifecycle should have moved', () => {
    const m = manifest('monthly');
    const keyOf = (name: string) => objectKey(job.name, m.backupId, name);
    const map = stored(keyOf(SYNTHETIC_OBJECT), 'STANDARD', 100, 1 << 20);
    expect(checkStorageClasses(m, map, keyOf, retention, NOW)).toEqual([
      expect.objectContaining({ severity: 'info', check: 'storage-class' }),
    ]);
  });
});

describe('checkChecksums', () => {
  it('reports a hash or size that differs from the manifest, and a missing object', () => {
    const m = seedBackup(new MemoryVault(), { job: job.name, startedAt: END });
    const keyOf = (name: string) => objectKey(job.name, m.backupId, name);
    const recorded = m.objects[0];
    if (!recorded) throw new Error('no object');
    const good = new Map([[SYNTHETIC_OBJECT, { sha256: recorded.sha256, bytes: recorded.storedBytes }]]);
    const bad = new Map([[SYNTHETIC_OBJECT, { sha256: '0'.repeat(64), bytes: recorded.storedBytes }]]);
    const gone = new Map([[SYNTHETIC_OBJECT, undefined]]);
    expect(checkChecksums(m, good, keyOf)).toEqual([]);
    expect(checkChecksums(m, bad, keyOf)).toEqual([
      expect.objectContaining({ severity: 'critical', check: 'object-checksum' }),
    ]);
    expect(checkChecksums(m, gone, keyOf)).toEqual([
      expect.objectContaining({ severity: 'critical', check: 'object-missing' }),
    ]);
  });
});
