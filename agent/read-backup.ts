/**
 * Reading a backup back: for each data object, vault → meter → decrypt → decompress → check. Every chunk
 * is authenticated before any of its bytes go on, so an altered, truncated or reordered object (or a
 * wrong key) stops the stream with an IntegrityError before the bad bytes reach PostgreSQL or the file
 * system; and an object's stream ends only once its stored bytes' SHA-256 and size and its plaintext size
 * matched the manifest — a clean end means a verified object.
 */
import { PassThrough, Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decompressor } from '#agent/pipeline/compress';
import { createDecryptStream } from '#agent/pipeline/encrypt';
import { Meter } from '#agent/pipeline/meter';
import type { Runtime } from '#agent/runtime';
import { IntegrityError, NotFoundError } from '#core/errors';
import { objectKey } from '#core/layout';
import { encryptionContext, type Manifest, type ManifestObject, sourceObjectName } from '#core/manifest';
import type { RestoreInput } from '#core/ports';

/** A backup opened for reading: the objects a driver reads, and the bytes read so far. */
export interface BackupReader extends RestoreInput {
  /**
   * Waits until every object opened so far was read to its end and checked.
   * @throws IntegrityError for an object that failed its checks or that was opened and not read whole.
   */
  finish(): Promise<{ storedBytes: number; sourceBytes: number }>;
}

/**
 * Opens a backup for reading. The data key is unwrapped once, with the context recomputed from the
 * manifest's job and id, so a manifest copied under another name does not decrypt.
 * @example const reader = await openBackup(runtime, manifest, signal); const dump = await reader.only();
 */
export async function openBackup(
  runtime: Runtime,
  manifest: Manifest,
  signal: AbortSignal,
): Promise<BackupReader> {
  const dataKey = await runtime.keys.decryptDataKey(
    manifest.encryption.wrappedKey,
    manifest.encryption.key,
    encryptionContext(manifest.job, manifest.backupId),
  );
  const algorithm = manifest.compression.algorithm;
  const objects = manifest.objects.map((object) => ({
    name: sourceObjectName(object.name, algorithm),
    sourceBytes: object.sourceBytes,
    stored: object,
  }));
  const opened: { name: string; output: PassThrough; flowing: Promise<unknown>; meter: Meter }[] = [];
  const stopProgress = runtime.progress?.track(
    `read ${manifest.job} ${manifest.backupId}`,
    () => opened.reduce((sum, o) => sum + o.meter.bytes, 0),
    objects.reduce((sum, o) => sum + o.sourceBytes, 0),
  );

  const open = async (name: string) => {
    const entry = objects.find((o) => o.name === name);
    if (!entry) {
      throw new NotFoundError(
        `backup ${manifest.job}/${manifest.backupId} has no object '${name}' (it has ${objects.map((o) => o.name).join(', ')})`,
      );
    }
    if (opened.some((o) => o.name === name)) throw new IntegrityError(`object '${name}' was opened twice`);
    const { output, flowing, meter } = await readObject(runtime, manifest, entry.stored, dataKey, signal);
    opened.push({ name, output, flowing, meter });
    flowing.catch(() => stopProgress?.());
    return output;
  };

  return {
    objects: objects.map(({ name, sourceBytes }) => ({ name, sourceBytes })),
    open,
    only: async () => {
      const first = objects[0];
      if (!first || objects.length !== 1) {
        throw new IntegrityError(
          `${manifest.job}/${manifest.backupId}: expected one data object, found ${objects.length}`,
        );
      }
      return open(first.name);
    },
    finish: async () => {
      stopProgress?.();
      for (const object of opened) {
        if (!object.output.readableEnded && !object.output.destroyed) {
          const error = new IntegrityError(
            `object '${object.name}' was not read to its end: it is not verified`,
          );
          object.output.destroy(error);
          await object.flowing.catch(() => {});
          throw error;
        }
        await object.flowing;
      }
      const read = opened.map((o) => objects.find((e) => e.name === o.name)?.stored as ManifestObject);
      return {
        storedBytes: read.reduce((sum, o) => sum + o.storedBytes, 0),
        sourceBytes: read.reduce((sum, o) => sum + o.sourceBytes, 0),
      };
    },
  };
}

/** Streams one stored object through decryption and decompression into a checked output. */
async function readObject(
  runtime: Runtime,
  manifest: Manifest,
  object: ManifestObject,
  dataKey: Buffer,
  signal: AbortSignal,
): Promise<{ output: PassThrough; flowing: Promise<unknown>; meter: Meter }> {
  const key = objectKey(manifest.job, manifest.backupId, object.name);
  const input = await runtime.vault.get(key, { signal });
  const storedMeter = new Meter();
  const plainMeter = new Meter({ hash: false });
  const decompress = decompressor(manifest.compression.algorithm, signal);
  const check = new EndCheck(() => {
    if (storedMeter.bytes !== object.storedBytes || storedMeter.sha256() !== object.sha256) {
      return new IntegrityError(
        `${key}: stored bytes do not match the manifest (${storedMeter.bytes} bytes, sha256 ${storedMeter.sha256().slice(0, 12)}…; manifest ${object.storedBytes} bytes, ${object.sha256.slice(0, 12)}…)`,
      );
    }
    if (plainMeter.bytes !== object.sourceBytes) {
      return new IntegrityError(
        `${key}: restored ${plainMeter.bytes} bytes, the source produced ${object.sourceBytes}`,
      );
    }
    return undefined;
  });
  const output = new PassThrough();
  const flowing = Promise.all([
    pipeline(input, storedMeter, createDecryptStream(dataKey), decompress.stream, plainMeter, check, output, {
      signal,
    }),
    decompress.done,
  ]);
  flowing.catch(() => {});
  return { output, flowing, meter: plainMeter };
}

/** Passes data through; at the end, fails the stream with the verdict's error instead of ending it. */
export class EndCheck extends Transform {
  readonly #verdict: () => Error | undefined;

  constructor(verdict: () => Error | undefined) {
    super();
    this.#verdict = verdict;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    callback(this.#verdict() ?? null);
  }
}

/**
 * Reads every object of a backup through decryption and decompression into nothing, checking it on the
 * way (`verify --deep`).
 */
export async function readThroughBackup(
  runtime: Runtime,
  manifest: Manifest,
  signal: AbortSignal,
): Promise<{ storedBytes: number; sourceBytes: number }> {
  const reader = await openBackup(runtime, manifest, signal);
  for (const { name } of reader.objects) {
    const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    await pipeline(await reader.open(name), sink, { signal });
  }
  return reader.finish();
}
