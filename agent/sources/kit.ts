/** What source drivers share: single-object backups and doctor probes. */
import type { Readable } from 'node:stream';
import { describeError } from '#core/errors';
import type { DoctorCheck, SourceObject } from '#core/ports';

/** The name of the one data object of a single-stream source (`data.zst.sbx` once stored). */
export const DATA_OBJECT = 'data';

/**
 * The objects of a backup that is a single stream.
 * @example return { objects: oneObject(tarStream), done }
 */
export async function* oneObject(stream: Readable, name = DATA_OBJECT): AsyncGenerator<SourceObject> {
  yield { name, stream };
}

/**
 * Runs one doctor probe: its detail when it passes, the error's message when it fails.
 * @example await probe('zstd', () => toolVersion('zstd', ['-V']))
 */
export async function probe(
  subject: string,
  run: () => Promise<string>,
  options: { warnOnly?: boolean } = {},
): Promise<DoctorCheck> {
  try {
    return { ok: true, subject, detail: await run() };
  } catch (error) {
    return {
      ok: false,
      ...(options.warnOnly ? { warning: true } : {}),
      subject,
      detail: describeError(error),
    };
  }
}
