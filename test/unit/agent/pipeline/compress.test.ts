import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { type CompressionAlgorithm, compressor, decompressor } from '#agent/pipeline/compress';
import { SourceError } from '#core/errors';

function sink(out: Buffer[]): Writable {
  return new Writable({
    write(chunk: Buffer, _e, cb) {
      out.push(chunk);
      cb();
    },
  });
}

/** 2 MiB that compresses: random hex text, repeated lines. */
function sample(): Buffer {
  const line = Buffer.from(`${randomBytes(40).toString('hex')}\n`);
  return Buffer.concat([...Array.from({ length: 20_000 }, () => line), randomBytes(300_000)]);
}

describe('compression stages', () => {
  it.each<[CompressionAlgorithm, number | undefined]>([
    ['zstd', undefined],
    ['zstd', 19],
    ['gzip', undefined],
    ['gzip', 1],
    ['none', undefined],
  ])('%s (level %s) round-trips and reports done', async (algorithm, level) => {
    // Prepare
    const plain = sample();
    const packed: Buffer[] = [];
    const unpacked: Buffer[] = [];
    const compress = compressor(algorithm, level);
    const decompress = decompressor(algorithm);

    // Act
    await pipeline(
      Readable.from([plain.subarray(0, 1000), plain.subarray(1000)]),
      compress.stream,
      sink(packed),
    );
    await compress.done;
    await pipeline(Readable.from(packed), decompress.stream, sink(unpacked));
    await decompress.done;

    // Assess
    expect(Buffer.concat(unpacked).equals(plain)).toBe(true);
    const packedBytes = Buffer.concat(packed).length;
    if (algorithm === 'none') expect(packedBytes).toBe(plain.length);
    else expect(packedBytes).toBeLessThan(plain.length / 2);
  });

  it.each<CompressionAlgorithm>(['zstd', 'gzip', 'none'])('%s handles empty input', async (algorithm) => {
    const packed: Buffer[] = [];
    const unpacked: Buffer[] = [];
    await pipeline(Readable.from([], { objectMode: false }), compressor(algorithm).stream, sink(packed));
    await pipeline(
      Readable.from(packed, { objectMode: false }),
      decompressor(algorithm).stream,
      sink(unpacked),
    );
    expect(Buffer.concat(unpacked).length).toBe(0);
  });

  it('fails zstd -d on garbage: done rejects with zstd and its stderr, and so does the pipeline', async () => {
    const stage = decompressor('zstd');
    const piped = pipeline(Readable.from([randomBytes(100_000)]), stage.stream, sink([]));
    await expect(piped).rejects.toBeInstanceOf(SourceError);
    const error = (await stage.done.catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(SourceError);
    expect(error.message).toMatch(
      /^zstd -d exited with status 1:\n.*(unsupported format|unknown header|not in zstd format)/s,
    );
  });

  it('fails a truncated zstd frame instead of ending quietly', async () => {
    const packed: Buffer[] = [];
    await pipeline(Readable.from([sample()]), compressor('zstd').stream, sink(packed));
    const whole = Buffer.concat(packed);
    const stage = decompressor('zstd');
    await expect(
      pipeline(Readable.from([whole.subarray(0, whole.length - 100)]), stage.stream, sink([])),
    ).rejects.toBeInstanceOf(SourceError);
    await expect(stage.done).rejects.toThrow(/zstd -d exited with status 1/);
  });

  it('fails gunzip on garbage', async () => {
    const stage = decompressor('gzip');
    await expect(pipeline(Readable.from([randomBytes(1000)]), stage.stream, sink([]))).rejects.toThrow();
    await expect(stage.done).rejects.toBeInstanceOf(SourceError);
  });

  it('kills zstd when the signal aborts', async () => {
    const controller = new AbortController();
    const stage = compressor('zstd', 3, controller.signal);
    stage.stream.write(randomBytes(1000));
    controller.abort();
    await expect(stage.done).rejects.toThrow(/aborted/);
  });

  it('kills zstd when the pipeline is torn down by another stage', async () => {
    const stage = compressor('zstd');
    const failing = new Readable({
      read() {
        this.destroy(new Error('source broke'));
      },
    });
    await expect(pipeline(failing, stage.stream, sink([]))).rejects.toThrow('source broke');
    // done settles only once zstd has exited: the child does not outlive the pipeline.
    const outcome = await stage.done.then(
      () => 'exited',
      () => 'stopped',
    );
    expect(['exited', 'stopped']).toContain(outcome);
    expect(stage.stream.destroyed).toBe(true);
  });

  it('rejects levels out of range', () => {
    expect(() => compressor('zstd', 20)).toThrow(RangeError);
    expect(() => compressor('gzip', 10)).toThrow(RangeError);
  });
});
