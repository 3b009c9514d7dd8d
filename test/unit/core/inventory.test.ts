/** core/inventory: what `strongbox list` says about a job, from a catalog built by hand. */
import { describe, expect, it } from 'vitest';
import { agentListBackupSchema, agentListJobSchema } from '#core/agent-output';
import type { BackupListing, JobCatalog } from '#core/catalog';
import { IntegrityError } from '#core/errors';
import { inventoryOf } from '#core/inventory';
import type { Manifest } from '#core/manifest';
import type { Tier } from '#core/tiers';
import { completeManifest } from './fixtures';

const now = new Date('2024-12-10T12:00:00Z');

/** A listing of one backup: a data object (unless `data: false`) and the manifest when complete. */
function listing(backupId: string, options: { complete?: boolean; data?: boolean } = {}): BackupListing {
  const complete = options.complete ?? true;
  const at = new Date(`${backupId.slice(0, 4)}-${backupId.slice(4, 6)}-${backupId.slice(6, 8)}T02:00:00Z`);
  const object = (name: string, sizeBytes: number) => ({
    key: `backups/app-db/${backupId}/${name}`,
    sizeBytes,
    lastModified: at,
    storageClass: 'STANDARD',
  });
  return {
    job: 'app-db',
    backupId,
    startedAt: at,
    complete,
    objects: [
      ...(options.data === false ? [] : [object('data.zst.sbx', 1000)]),
      ...(complete ? [object('manifest.json', 24)] : []),
    ],
  };
}

function manifestOf(backupId: string, tier: Tier, extra: Partial<Manifest> = {}): Manifest {
  const day = `${backupId.slice(0, 4)}-${backupId.slice(4, 6)}-${backupId.slice(6, 8)}`;
  return completeManifest({
    backupId,
    tier,
    startedAt: `${day}T02:00:00.000Z`,
    finishedAt: `${day}T02:10:00.000Z`,
    ...extra,
  });
}

function catalogOf(backups: BackupListing[], manifests: Manifest[], invalid: string[] = []): JobCatalog {
  return {
    job: 'app-db',
    backups,
    manifests: new Map(manifests.map((m) => [m.backupId, m])),
    invalid: invalid.map((backupId) => ({ backupId, error: new IntegrityError('not valid JSON') })),
  };
}

describe('inventoryOf', () => {
  const ids = {
    monthly: '20241201T020000Z-aaaaaa',
    weekly: '20241202T020000Z-bbbbbb',
    daily: '20241203T020000Z-cccccc',
    warned: '20241204T020000Z-dddddd',
    safety: '20241205T020000Z-eeeeee',
    invalid: '20241206T020000Z-ffffff',
    expired: '20241130T020000Z-999999',
    leftover: '20241207T020000Z-111111',
  };
  const catalog = catalogOf(
    [
      listing(ids.expired, { data: false }),
      listing(ids.monthly),
      listing(ids.weekly),
      listing(ids.daily),
      listing(ids.warned),
      listing(ids.safety),
      listing(ids.invalid),
      listing(ids.leftover, { complete: false }),
    ],
    [
      manifestOf(ids.expired, 'yearly'),
      manifestOf(ids.monthly, 'monthly'),
      manifestOf(ids.weekly, 'weekly'),
      manifestOf(ids.daily, 'daily'),
      manifestOf(ids.warned, 'daily', { warnings: ['file changed as we read it: /srv/x'] }),
      manifestOf(ids.safety, 'daily', { purpose: 'safety' }),
    ],
    [ids.invalid],
  );
  const { job, backups } = inventoryOf({ kind: 'postgres', catalog, now });

  it('counts restorable backups by tier, without safety backups or expired data', () => {
    expect(agentListJobSchema.parse(job)).toEqual(job);
    expect(job).toMatchObject({
      job: 'app-db',
      kind: 'postgres',
      complete: 4,
      tiers: { daily: 2, weekly: 1, monthly: 1, yearly: 0 },
      safety: 1,
      warnings: 1,
      incomplete: 1,
      invalid: 1,
    });
  });

  it('names the oldest and the newest regular backup and the age of the newest', () => {
    expect(job.oldest?.backupId).toBe(ids.monthly);
    expect(job.newest).toEqual({
      backupId: ids.warned,
      finishedAt: '2024-12-04T02:10:00.000Z',
      ageSeconds: (now.getTime() - Date.parse('2024-12-04T02:10:00Z')) / 1000,
    });
  });

  it('totals stored bytes of every backup and source bytes of the complete ones', () => {
    expect(job.storedBytes).toBe(7 * 1000 + 7 * 24);
    // Six valid manifests (the expired one still has its manifest), each 312,475,136 source bytes.
    expect(job.sourceBytes).toBe(6 * 312_475_136);
  });

  it('gives every backup a status: complete, warnings, safety, invalid, incomplete', () => {
    for (const b of backups) agentListBackupSchema.parse(b);
    expect(backups.map((b) => [b.backupId, b.status])).toEqual([
      [ids.expired, 'complete'],
      [ids.monthly, 'complete'],
      [ids.weekly, 'complete'],
      [ids.daily, 'complete'],
      [ids.warned, 'warnings'],
      [ids.safety, 'safety'],
      [ids.invalid, 'invalid'],
      [ids.leftover, 'incomplete'],
    ]);
    expect(backups.find((b) => b.backupId === ids.warned)).toMatchObject({
      tier: 'daily',
      durationSeconds: 600,
      sourceBytes: 312_475_136,
      warnings: ['file changed as we read it: /srv/x'],
    });
    expect(backups.find((b) => b.backupId === ids.leftover)).not.toHaveProperty('tier');
  });

  it('gives a point-in-time job its recovery window, from the base backups to the newest WAL', () => {
    const physical = (backupId: string, first: string, last: string) =>
      manifestOf(backupId, 'daily', {
        kind: 'postgres-physical',
        source: {
          kind: 'postgres-physical',
          timeline: 1,
          firstWalSegment: first,
          lastWalSegment: last,
          walSegmentBytes: 16 * 1024 * 1024,
        } as unknown as Manifest['source'],
      });
    const pitr = catalogOf(
      [listing(ids.monthly), listing(ids.weekly)],
      [
        physical(ids.monthly, '000000010000000000000002', '000000010000000000000002'),
        physical(ids.weekly, '000000010000000000000004', '000000010000000000000004'),
      ],
    );
    const archivedAt = new Date('2024-12-10T11:00:00Z');
    const { job: withWindow } = inventoryOf({
      kind: 'postgres-physical',
      catalog: pitr,
      now,
      walNames: [
        '000000010000000000000002',
        '000000010000000000000003',
        '000000010000000000000004',
        '000000010000000000000005',
      ],
      walNewestArchivedAt: archivedAt,
    });
    expect(withWindow.recoveryWindow).toEqual({
      earliest: '2024-12-01T02:10:00.000Z',
      latest: archivedAt.toISOString(),
    });
    expect(inventoryOf({ kind: 'postgres', catalog: pitr, now }).job).not.toHaveProperty('recoveryWindow');
  });

  it('says a job without backups has none', () => {
    const { job: empty, backups: none } = inventoryOf({ kind: 'files', catalog: catalogOf([], []), now });
    expect(none).toEqual([]);
    expect(empty).toEqual({
      job: 'app-db',
      kind: 'files',
      complete: 0,
      tiers: { daily: 0, weekly: 0, monthly: 0, yearly: 0 },
      safety: 0,
      warnings: 0,
      incomplete: 0,
      invalid: 0,
      storedBytes: 0,
      sourceBytes: 0,
    });
  });
});
