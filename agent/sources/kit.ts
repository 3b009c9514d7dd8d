/**
 * What source drivers share: single-object backups, streams that end only on a clean exit, doctor probes,
 * directory targets.
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname } from 'node:path';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import type { ToolProcess } from '#agent/pipeline/child';
import { describeError, RestoreError, SourceError } from '#core/errors';
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

/**
 * A pass-through whose end waits for a verdict: the stream ends cleanly only when `verdict` resolves
 * (the tool that produced the bytes exited 0, it wrote something), and errors with its rejection
 * otherwise — so a consumer that sees a clean end holds a complete backup.
 * @example pipeline(tool.stdout, meter, new EndGate(async () => { await tool.done; … }))
 */
export class EndGate extends Transform {
  readonly #verdict: () => Promise<void>;

  constructor(verdict: () => Promise<void>) {
    super();
    this.#verdict = verdict;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#verdict().then(
      () => callback(),
      (error: unknown) => callback(error as Error),
    );
  }
}

/**
 * Target handling of drivers that restore into a directory (files, command, redis): a target exists
 * when the path does, is discarded by removing it, and a scratch target is a fresh directory name below
 * the temp directory (`strongbox-<label>-<stamp>`).
 * @example export const filesDriver = { spec, backup, restore, check, doctor, ...directoryTargets }
 */
export const directoryTargets = {
  targetExists: async (_config: unknown, target: string): Promise<boolean> =>
    stat(target).then(
      () => true,
      () => false,
    ),
  discard: (_config: unknown, target: string): Promise<void> => rm(target, { recursive: true, force: true }),
  scratchTarget: (_config: unknown, label: string, now: Date, tempDir: string): string =>
    `${tempDir.replace(/\/+$/, '')}/strongbox-${label}-${now.toISOString().replace(/[-:.]/g, '')}`,
};

/**
 * Creates a restore target directory (mode 0700, its parents as needed) that must not exist yet: a
 * restore into a directory never writes into one that was there before.
 * @param kind the source kind, for the message (`a redis restore writes a new directory`).
 * @throws RestoreError when the target exists (it is left untouched) or cannot be created.
 */
export async function claimNewDirectory(target: string, kind: string): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  try {
    await mkdir(target, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new RestoreError(
        `restore target ${target} exists: a ${kind} restore writes into a new directory it creates (it was left untouched)`,
      );
    }
    throw new RestoreError(`cannot create restore target ${target}: ${describeError(error)}`, {
      cause: error,
    });
  }
}

/** A TCP port of 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Waits until a server this agent started answers `probe` (resolves), polling every `intervalMs`.
 * @throws SourceError "it exited: …" when the server exits first, or "no answer to <what> within N ms
 * (<last probe error>)" at the deadline.
 * @example await waitUntilAnswering(server, () => pingInflux(endpoint), { what: '/ping', timeoutMs: 120_000 })
 */
export async function waitUntilAnswering(
  server: ToolProcess,
  probe: () => Promise<unknown>,
  options: { what: string; timeoutMs: number; intervalMs?: number },
): Promise<void> {
  let exited = false;
  const settle = () => {
    exited = true;
  };
  server.done.then(settle, settle);
  const deadline = Date.now() + options.timeoutMs;
  let last: unknown;
  while (Date.now() < deadline && !exited) {
    try {
      await probe();
      return;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100));
  }
  if (exited) {
    await server.done.catch((error: unknown) => {
      last = error;
    });
    throw new SourceError(`it exited${last ? `: ${(last as Error).message}` : ''}`);
  }
  throw new SourceError(
    `no answer to ${options.what} within ${options.timeoutMs} ms${last ? ` (${(last as Error).message})` : ''}`,
  );
}
