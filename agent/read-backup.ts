/**
 * Reading a backup back: vault → meter → decrypt → decompress. Every chunk is authenticated before any
 * of its bytes go on, so an altered, truncated or reordered object (or a wrong key) stops the stream with
 * an IntegrityError before the bad bytes reach PostgreSQL or the file system; at the end the stored
 * bytes' SHA-256 and size are compared with the manifest.
 */
import type { Readable } from 'node:stream';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decompressor } from '#agent/pipeline/compress';
import { createDecryptStream } from '#agent/pipeline/encrypt';
import { Meter } from '#agent/pipeline/meter';
import type { Runtime } from '#agent/runtime';
import { IntegrityError } from '#core/errors';
import { objectKey } from '#core/layout';
import { encryptionContext, type Manifest, type ManifestObject } from '#core/manifest';

/** A backup object being read: plaintext out, and a promise that settles when reading has been checked. */
export interface BackupReader {
  /** The source's original bytes (a pg_dump archive, a tar stream). */
  stream: Readable;
  /** Resolves once every byte was read, authenticated and matched the manifest; rejects otherwise. */
  done: Promise<{ storedBytes: number; sourceBytes: number }>;
}

/**
 * Opens a backup's data object for reading. The data key is unwrapped with the context recomputed from
 * the manifest's job and id, so a manifest copied under another name does not decrypt.
 * @example const reader = await openBackupData(runtime, manifest, signal)
 */
export async function openBackupData(
  runtime: Runtime,
  manifest: Manifest,
  signal: AbortSignal,
): Promise<BackupReader> {
  const object = dataObjectOf(manifest);
  const key = objectKey(manifest.job, manifest.backupId, object.name);
  const dataKey = await runtime.keys.decryptDataKey(
    manifest.encryption.wrappedKey,
    manifest.encryption.key,
    encryptionContext(manifest.job, manifest.backupId),
  );
  const input = await runtime.vault.get(key, { signal });
  const storedMeter = new Meter();
  const plainMeter = new Meter({ hash: false });
  const decompress = decompressor(manifest.compression.algorithm, signal);
  const output = new PassThrough();
  const decrypt = createDecryptStream(dataKey);
  const flowing = pipeline(input, storedMeter, decrypt, decompress.stream, plainMeter, output, { signal });
  const done = Promise.all([flowing, decompress.done]).then(() => {
    if (storedMeter.bytes !== object.storedBytes || storedMeter.sha256() !== object.sha256) {
      throw new IntegrityError(
        `${key}: stored bytes do not match the manifest (${storedMeter.bytes} bytes, sha256 ${storedMeter.sha256().slice(0, 12)}…; manifest ${object.storedBytes} bytes, ${object.sha256.slice(0, 12)}…)`,
      );
    }
    if (plainMeter.bytes !== object.sourceBytes) {
      throw new IntegrityError(
        `${key}: restored ${plainMeter.bytes} bytes, the source produced ${object.sourceBytes}`,
      );
    }
    return { storedBytes: storedMeter.bytes, sourceBytes: plainMeter.bytes };
  });
  return { stream: output, done };
}

/** The data object of a backup (format v1 backups have exactly one). */
export function dataObjectOf(manifest: Manifest): ManifestObject {
  const object = manifest.objects[0];
  if (!object || manifest.objects.length !== 1) {
    throw new IntegrityError(
      `${manifest.job}/${manifest.backupId}: expected one data object, found ${manifest.objects.length}`,
    );
  }
  return object;
}
