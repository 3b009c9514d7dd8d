import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { Meter } from '#agent/pipeline/meter';

describe('Meter', () => {
  it('passes data through unchanged and reports its size and SHA-256', async () => {
    const parts = [randomBytes(10), randomBytes(70_000), Buffer.alloc(0), randomBytes(3)];
    const meter = new Meter();
    const out: Buffer[] = [];
    await pipeline(
      Readable.from(parts, { objectMode: false }),
      meter,
      new Writable({
        write(chunk: Buffer, _e, cb) {
          out.push(chunk);
          cb();
        },
      }),
    );
    const all = Buffer.concat(parts);
    expect(Buffer.concat(out).equals(all)).toBe(true);
    expect(meter.bytes).toBe(all.length);
    expect(meter.sha256()).toBe(createHash('sha256').update(all).digest('hex'));
  });

  it('reports the SHA-256 of nothing for an empty stream', async () => {
    const meter = new Meter();
    await pipeline(
      Readable.from([], { objectMode: false }),
      meter,
      new Writable({ write: (_c, _e, cb) => cb() }),
    );
    expect(meter.bytes).toBe(0);
    expect(meter.sha256()).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('refuses to give a digest before the stream ended', () => {
    const meter = new Meter();
    meter.write(Buffer.from('x'));
    expect(() => meter.sha256()).toThrow(/has not ended/);
  });

  it('counts without hashing when asked, and then has no digest to give', async () => {
    const meter = new Meter({ hash: false });
    await pipeline(Readable.from([Buffer.from('abc'), Buffer.from('de')]), meter, new PassThrough().resume());
    expect(meter.bytes).toBe(5);
    expect(() => meter.sha256()).toThrow(/not hashing/);
  });
});
