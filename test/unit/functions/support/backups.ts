/**
 * Synthetic backups for tests and the verify benchmark: a data object of random bytes and a valid
 * manifest that records its real size and SHA-256, written through any Vault (memory or s3rver).
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { backupIdTime, newBackupId } from '#core/backup-id';
import { manifestKey, objectKey } from '#core/layout';
import { encryptionContext, type Manifest, serializeManifest } from '#core/manifest';
import type { Vault } from '#core/ports';
import type { Tier } from '#core/tiers';
import type { MemoryVault } from './memory-vault';

/** What a synthetic backup looks like. */
export interface SyntheticBackup {
  job: string;
  /** Start time; the backup id is made from it. */
  startedAt: Date;
  tier?: Tier;
  /** Bytes of the data object (random, so stored = what the manifest records). */
  storedBytes?: number;
  /** Bytes the source produced (recorded in the manifest; defaults to 4 × stored). */
  sourceBytes?: number;
  /** Write the manifest (default) or leave the backup incomplete. */
  complete?: boolean;
  /** Seconds the backup took (finishedAt − startedAt), default 60. */
  durationSeconds?: number;
  /** Six hex digits of the id, default derived from the time. */
  suffix?: string;
  /** Row counts per table the manifest records. */
  tables?: { schema: string; name: string; rows: number }[];
  /** `safety` for a backup `restore --replace` took of the data it was about to replace. */
  purpose?: 'safety';
}

/** The data object name synthetic backups use. */
export const SYNTHETIC_OBJECT = 'data.zst.sbx';

/** A valid manifest for a synthetic backup with the given data. */
export function syntheticManifest(
  backup: SyntheticBackup,
  data: { storedBytes: number; sha256: string },
): Manifest {
  const backupId = newBackupId(backup.startedAt, backup.suffix ?? suffixOf(backup.startedAt));
  const finishedAt = new Date(backup.startedAt.getTime() + (backup.durationSeconds ?? 60) * 1000);
  return {
    format: 'strongbox.manifest',
    version: 2,
    job: backup.job,
    backupId,
    host: 'db-1.example.internal',
    kind: 'postgres',
    tier: backup.tier ?? 'daily',
    startedAt: backup.startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    ...(backup.purpose ? { purpose: backup.purpose } : {}),
    compression: { algorithm: 'zstd', level: 3 },
    encryption: {
      scheme: 'strongbox-stream-v1',
      chunkBytes: 65_536,
      key: { type: 'local', fingerprint: '0123456789abcdef' },
      wrappedKey: 'd3JhcHBlZA==',
      context: encryptionContext(backup.job, backupId),
    },
    objects: [
      {
        name: SYNTHETIC_OBJECT,
        storedBytes: data.storedBytes,
        sha256: data.sha256,
        sourceBytes: backup.sourceBytes ?? data.storedBytes * 4,
        storageClass: 'STANDARD',
      },
    ],
    tools: { strongbox: '0.1.0', pg_dump: '15.18' },
    source: {
      kind: 'postgres',
      database: 'app',
      serverVersion: '15.18',
      databaseBytes: (backup.sourceBytes ?? data.storedBytes * 4) * 2,
      tables: backup.tables ?? [{ schema: 'public', name: 'orders', rows: 1000 }],
      excludedTables: [],
    },
  };
}

/**
 * Writes a synthetic backup (data object, then manifest) through a vault and returns its manifest.
 * @example const m = await writeBackup(vault, { job: 'app-db', startedAt: new Date('2024-12-06T02:00:00Z') })
 */
export async function writeBackup(vault: Vault, backup: SyntheticBackup): Promise<Manifest> {
  const body = randomBytes(backup.storedBytes ?? 1024);
  const sha256 = createHash('sha256').update(body).digest('hex');
  const manifest = syntheticManifest(backup, { storedBytes: body.length, sha256 });
  await vault.put(objectKey(backup.job, manifest.backupId, SYNTHETIC_OBJECT), Readable.from([body]));
  if (backup.complete !== false) {
    await vault.put(manifestKey(backup.job, manifest.backupId), Readable.from([serializeManifest(manifest)]));
  }
  return manifest;
}

/**
 * Writes a synthetic backup straight into a MemoryVault with stored times as S3 would show them (the
 * objects' lastModified is the backup's finish time) and an optional storage class for the data.
 */
export function seedBackup(
  vault: MemoryVault,
  backup: SyntheticBackup & { storageClass?: string },
): Manifest {
  const body = randomBytes(backup.storedBytes ?? 64);
  const sha256 = createHash('sha256').update(body).digest('hex');
  const manifest = syntheticManifest(backup, { storedBytes: body.length, sha256 });
  const finished = new Date(manifest.finishedAt);
  vault.set(objectKey(backup.job, manifest.backupId, SYNTHETIC_OBJECT), body, {
    storageClass: backup.storageClass,
    lastModified: finished,
  });
  if (backup.complete !== false) {
    vault.set(manifestKey(backup.job, manifest.backupId), serializeManifest(manifest), {
      lastModified: finished,
    });
  }
  return manifest;
}

/** Deterministic id suffix from a time, so ids are stable across runs. */
export function suffixOf(at: Date): string {
  return createHash('sha256').update(at.toISOString()).digest('hex').slice(0, 6);
}

/** Start time of a backup id (re-exported for tests). */
export { backupIdTime };
