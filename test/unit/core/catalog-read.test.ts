import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  hashStoredObjects,
  listBackups,
  listManifests,
  listRunClaims,
  listWal,
  previousComplete,
  readCatalog,
  selectBackup,
} from '#core/catalog';
import { NotFoundError, VaultError } from '#core/errors';
import { manifestKey, objectKey, runClaimKey, walKey } from '#core/layout';
import { SYNTHETIC_OBJECT, seedBackup } from '#test/unit/functions/support/backups';
import { MemoryVault } from '#test/unit/functions/support/memory-vault';

const DAY = 86_400_000;
const START = new Date('2024-12-01T02:00:00Z');

function vaultWith(days: number, job = 'app-db') {
  const vault = new MemoryVault();
  const manifests = Array.from({ length: days }, (_, i) =>
    seedBackup(vault, { job, startedAt: new Date(START.getTime() + i * DAY) }),
  );
  return { vault, manifests };
}

describe('readCatalog', () => {
  it('reads every manifest once, reporting invalid ones instead of stopping', async () => {
    // Prepare
    const { vault, manifests } = vaultWith(40);
    const broken = manifests[3]?.backupId ?? '';
    const misplaced = manifests[4]?.backupId ?? '';
    vault.set(manifestKey('app-db', broken), 'not json');
    vault.set(
      manifestKey('app-db', misplaced),
      vault.text(manifestKey('app-db', manifests[5]?.backupId ?? '')) ?? '',
    );
    seedBackup(vault, { job: 'app-db', startedAt: new Date(START.getTime() + 50 * DAY), complete: false });
    // Act
    const catalog = await readCatalog(vault, 'app-db', { concurrency: 4 });
    // Assess
    expect(catalog.backups).toHaveLength(41);
    expect(catalog.manifests.size).toBe(38);
    expect(catalog.invalid.map((i) => [i.backupId, i.error.name])).toEqual([
      [broken, 'IntegrityError'],
      [misplaced, 'IntegrityError'],
    ]);
    expect(catalog.invalid[1]?.error.message).toContain('not the backup it is stored under');
    expect(vault.calls.get).toBe(40);
  });

  it('throws what the vault throws, after the reads in flight settle', async () => {
    const { vault } = vaultWith(10);
    const get = vault.get.bind(vault);
    let inFlight = 0;
    let settledAfterFailure = 0;
    let failed = false;
    vault.get = async (key: string) => {
      inFlight++;
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      if (failed) settledAfterFailure++;
      if (key.includes('20241203')) {
        failed = true;
        throw new VaultError('connection reset', { retryable: true });
      }
      return get(key);
    };
    await expect(readCatalog(vault, 'app-db', { concurrency: 3 })).rejects.toThrow(VaultError);
    expect(inFlight).toBe(0);
    expect(settledAfterFailure).toBeLessThanOrEqual(2);
  });

  it('lists manifests concurrently in order and stops at an invalid one', async () => {
    const { vault, manifests } = vaultWith(30);
    const listed = await listManifests(vault, 'app-db', { concurrency: 8 });
    expect(listed.map((m) => m.backupId)).toEqual(manifests.map((m) => m.backupId));
    vault.set(manifestKey('app-db', manifests[7]?.backupId ?? ''), '{}');
    await expect(listManifests(vault, 'app-db')).rejects.toThrow(/not a strongbox manifest/);
  });
});

describe('selectBackup and previousComplete', () => {
  it('picks by id, latest and point in time, and says what exists when nothing matches', async () => {
    const { vault, manifests } = vaultWith(5);
    seedBackup(vault, { job: 'app-db', startedAt: new Date(START.getTime() + 10 * DAY), complete: false });
    const backups = await listBackups(vault, 'app-db');
    const ids = manifests.map((m) => m.backupId);
    expect(selectBackup(backups, { latest: true }).backupId).toBe(ids[4]);
    expect(selectBackup(backups, { backupId: ids[1] ?? '' }).backupId).toBe(ids[1]);
    expect(selectBackup(backups, { at: new Date(START.getTime() + 2 * DAY + 3600_000) }).backupId).toBe(
      ids[2],
    );
    expect(selectBackup(backups, { at: new Date(START.getTime() + 2 * DAY) }).backupId).toBe(ids[2]);
    expect(() => selectBackup(backups, { at: new Date(START.getTime() - 1) })).toThrow(
      `no complete backup started at or before 2024-12-01T01:59:59.999Z (newest is ${ids[4]}, oldest ${ids[0]})`,
    );
    expect(() => selectBackup(backups, { backupId: '20200101T000000Z-000000' })).toThrow(NotFoundError);
    const incomplete = backups.find((b) => !b.complete)?.backupId ?? '';
    expect(() => selectBackup(backups, { backupId: incomplete })).toThrow(/is incomplete \(no manifest\)/);
    expect(() => selectBackup([], { latest: true })).toThrow('the job has no complete backup');
  });

  it('orders two backups of the same second by when their manifests were stored', async () => {
    const vault = new MemoryVault();
    const second = new Date(START.getTime() + 100);
    const first = seedBackup(vault, {
      job: 'app-db',
      startedAt: second,
      suffix: 'ffffff',
      durationSeconds: 0.2,
    });
    const later = seedBackup(vault, {
      job: 'app-db',
      startedAt: second,
      suffix: '000000',
      durationSeconds: 0.7,
    });
    const backups = await listBackups(vault, 'app-db');
    expect(backups.map((b) => b.backupId)).toEqual([first.backupId, later.backupId]);
    expect(selectBackup(backups, { latest: true }).backupId).toBe(later.backupId);
  });

  it('finds the previous complete backup strictly before a time', async () => {
    const { vault, manifests } = vaultWith(3);
    seedBackup(vault, { job: 'app-db', startedAt: new Date(START.getTime() + 2.5 * DAY), complete: false });
    const backups = await listBackups(vault, 'app-db');
    expect(previousComplete(backups, new Date(START.getTime() + 3 * DAY))?.backupId).toBe(
      manifests[2]?.backupId,
    );
    expect(previousComplete(backups, new Date(START.getTime() + 2 * DAY))?.backupId).toBe(
      manifests[1]?.backupId,
    );
    expect(previousComplete(backups, START)).toBeUndefined();
  });
});

describe('run claims, WAL and stored hashes', () => {
  it('lists run claims of a job only, with the time they were written', async () => {
    const vault = new MemoryVault();
    const at = new Date('2024-12-06T02:00:05Z');
    vault.set(runClaimKey('app-db', '20241206T020000Z-a1b2c3'), '{}', { lastModified: at });
    vault.set(runClaimKey('app-db-2', '20241206T020000Z-a1b2c3'), '{}');
    vault.set('runs/app-db/notes.txt', 'x');
    expect(await listRunClaims(vault, 'app-db')).toEqual([
      { backupId: '20241206T020000Z-a1b2c3', claimedAt: at },
    ]);
  });

  it('lists WAL files with their timeline', async () => {
    const vault = new MemoryVault();
    vault.set(walKey('pg', '00000001', '000000010000000000000001'), 'x');
    vault.set(walKey('pg-other', '00000001', '000000010000000000000001'), 'x');
    expect((await listWal(vault, 'pg')).map((w) => [w.timeline, w.name])).toEqual([
      ['00000001', '000000010000000000000001'],
    ]);
  });

  it('hashes the stored bytes of every object, and marks missing ones', async () => {
    const vault = new MemoryVault();
    const manifest = seedBackup(vault, { job: 'app-db', startedAt: START, storedBytes: 100_000 });
    const hashes = await hashStoredObjects(vault, manifest);
    expect(hashes.get(SYNTHETIC_OBJECT)).toEqual({ sha256: manifest.objects[0]?.sha256, bytes: 100_000 });
    await vault.put(
      objectKey('app-db', manifest.backupId, SYNTHETIC_OBJECT),
      Readable.from([Buffer.from('x')]),
    );
    expect((await hashStoredObjects(vault, manifest)).get(SYNTHETIC_OBJECT)?.bytes).toBe(1);
    await vault.delete([objectKey('app-db', manifest.backupId, SYNTHETIC_OBJECT)]);
    expect((await hashStoredObjects(vault, manifest)).get(SYNTHETIC_OBJECT)).toBeUndefined();
  });
});
