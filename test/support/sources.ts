/** Helpers for tests that drive a source driver directly. */
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { SourceBackup } from '#core/ports';

/**
 * The bytes of a backup's objects as one stream, in order: for single-object sources, the object itself.
 * Destroying the returned stream destroys the object being read, as destroying the object would.
 * @example await Promise.all([backup.done, restoreFiles(streamOf(backup), { targetDir })])
 */
export function streamOf(backup: SourceBackup<unknown>): Readable {
  const out = new PassThrough();
  let current: Readable | undefined;
  let stopped = false;
  out.on('close', () => {
    stopped = !out.readableEnded;
    if (stopped && current && !current.readableEnded) current.destroy(out.errored ?? undefined);
  });
  void (async () => {
    for await (const object of backup.objects) {
      current = object.stream;
      if (stopped) {
        current.destroy();
        return;
      }
      await pipeline(object.stream, out, { end: false });
    }
    out.end();
  })().catch((error: unknown) => out.destroy(error as Error));
  return out;
}
