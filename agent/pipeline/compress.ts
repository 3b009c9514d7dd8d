/**
 * Compression stages. zstd runs as a child process (`zstd -T1`) so that compression takes another core
 * than Node, which spends its time on AES-GCM and SHA-256; gzip runs in node:zlib; `none` passes data
 * through.
 *
 * A stage is a Duplex for `pipeline()` plus a `done` promise. For zstd the readable side does not end
 * before the child has exited: if zstd fails, the stream errors with the same SourceError that rejects
 * `done`, so a pipeline can never finish "successfully" on the truncated output of a failed child.
 * Memory: the pipe buffers of the child (64 KiB each way) plus the streams' high-water marks.
 */
import { Duplex, PassThrough, Readable, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createGunzip, createGzip, constants as zlib } from 'node:zlib';
import { SourceError } from '#core/errors';
import { spawnTool } from './child';

/** Compression algorithms of the plan and the manifest. */
export type CompressionAlgorithm = 'zstd' | 'gzip' | 'none';

/** A stream stage and the promise of how it ended. */
export interface Stage {
  /** Write input to it, read output from it; composes with `pipeline()`. */
  stream: Duplex;
  /** Resolves when the stage finished cleanly; rejects with the reason it failed. Marked as handled. */
  done: Promise<void>;
}

/**
 * Default zstd level: 1. On a 1 GB pg_dump here it is both faster than level 3 (4.6 s against 7.1 s
 * behind pg_dump) and no larger, and it stores less than pg_dump's own zlib at a tenth of its time
 * (bench/RESULTS.md, docs/adr/0002-zstd-level-1.md).
 */
export const DEFAULT_ZSTD_LEVEL = 1;
/** Default gzip level. */
export const DEFAULT_GZIP_LEVEL = 6;

/**
 * The level a compressor uses when the plan names none (undefined for `none`): what manifests record.
 * @example compressionLevel('zstd') // 1
 */
export function compressionLevel(algorithm: CompressionAlgorithm, level?: number): number | undefined {
  if (algorithm === 'none') return undefined;
  return level ?? (algorithm === 'zstd' ? DEFAULT_ZSTD_LEVEL : DEFAULT_GZIP_LEVEL);
}

/**
 * A compressing stage.
 * @param level zstd 1–19 (default 1), gzip 1–9 (default 6); ignored for `none`.
 * @example await pipeline(source, compressor('zstd').stream, destination)
 */
export function compressor(algorithm: CompressionAlgorithm, level?: number, signal?: AbortSignal): Stage {
  switch (algorithm) {
    case 'zstd': {
      const zstdLevel = compressionLevel('zstd', level) as number;
      if (!Number.isInteger(zstdLevel) || zstdLevel < 1 || zstdLevel > 19)
        throw new RangeError(`zstd level must be 1–19, got ${zstdLevel}`);
      return zstdStage(['-q', '-c', '-T1', `-${zstdLevel}`], 'zstd', signal);
    }
    case 'gzip': {
      const gzipLevel = compressionLevel('gzip', level) as number;
      if (!Number.isInteger(gzipLevel) || gzipLevel < 1 || gzipLevel > 9)
        throw new RangeError(`gzip level must be 1–9, got ${gzipLevel}`);
      return inProcessStage(createGzip({ level: gzipLevel }), signal);
    }
    case 'none':
      return inProcessStage(new PassThrough(), signal);
    default:
      throw new RangeError(`unknown compression algorithm '${algorithm as string}'`);
  }
}

/**
 * A decompressing stage. Corrupt input fails the stage (a SourceError for zstd, a zlib error for gzip).
 * @example await pipeline(vault.get(key), decryptor, decompressor('zstd').stream, target)
 */
export function decompressor(algorithm: CompressionAlgorithm, signal?: AbortSignal): Stage {
  switch (algorithm) {
    case 'zstd':
      return zstdStage(['-d', '-q', '-c'], 'zstd -d', signal);
    case 'gzip':
      // Flush mode lets a truncated gzip member fail instead of ending quietly.
      return inProcessStage(createGunzip({ finishFlush: zlib.Z_SYNC_FLUSH }), signal, 'gzip');
    case 'none':
      return inProcessStage(new PassThrough(), signal);
    default:
      throw new RangeError(`unknown compression algorithm '${algorithm as string}'`);
  }
}

/**
 * `zstd -d` writing into `stdout`, another tool's stdin pipe, so the plaintext does not cross the agent
 * (agent/read-backup `openInto`). Write the compressed bytes to `stdin`; `plainBytes()` is the size
 * zstd's verbose summary reports once it decompressed the whole stream (undefined until then). The
 * caller closes its own copy of `stdout`. Corrupt input fails `done` (a SourceError).
 */
export function zstdDecompressInto(
  stdout: Writable,
  signal?: AbortSignal,
): { stdin: Writable | null; done: Promise<void>; plainBytes: () => number | undefined } {
  let plainBytes: number | undefined;
  const tool = spawnTool('zstd', ['-d', '-c', '-v'], {
    signal,
    name: 'zstd -d',
    stdout,
    // "/*stdin*\ : 1144524800 bytes", zstd's last line for a stream it decompressed whole.
    onStderrLine: (line) => {
      const bytes = /:\s*(\d+) bytes\s*$/.exec(line)?.[1];
      if (bytes !== undefined) plainBytes = Number(bytes);
    },
  });
  return { stdin: tool.stdin, done: tool.done, plainBytes: () => plainBytes };
}

function zstdStage(args: string[], name: string, signal?: AbortSignal): Stage {
  const tool = spawnTool('zstd', args, { signal, name });
  const stdin = tool.stdin;
  const stdout = tool.stdout;
  if (!stdin || !stdout) throw new Error('zstd was started without pipes');
  // The readable side ends only after zstd exited 0; a failed zstd errors the stream instead.
  async function* output(): AsyncGenerator<Buffer> {
    for await (const chunk of stdout as AsyncIterable<Buffer>) yield chunk;
    await tool.done;
  }
  const readable = Readable.from(output(), { objectMode: false });
  const stream = Duplex.from({ writable: stdin, readable });
  // A torn-down pipeline must not leave zstd running.
  stream.on('close', () => {
    if (tool.child.exitCode === null && tool.child.signalCode === null) tool.child.kill('SIGTERM');
  });
  stream.on('error', () => {});
  tool.done.catch((error: unknown) => stream.destroy(error as Error));
  return { stream, done: tool.done };
}

function inProcessStage(stream: Duplex, signal?: AbortSignal, name?: string): Stage {
  const done = finished(stream, { signal }).catch((error: unknown) => {
    if (name && !signal?.aborted && (error as NodeJS.ErrnoException).code?.startsWith('Z_')) {
      throw new SourceError(`${name} data is corrupt: ${(error as Error).message}`, { cause: error });
    }
    throw error;
  });
  if (signal) {
    const onAbort = () => stream.destroy(signal.reason as Error);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    stream.once('close', () => signal.removeEventListener('abort', onAbort));
  }
  done.catch(() => {});
  return { stream, done };
}
