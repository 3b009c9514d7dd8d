import { describe, expect, it } from 'vitest';
import { ByteQueue } from '#agent/pipeline/byte-queue';

describe('ByteQueue', () => {
  it('takes bytes in arrival order across buffer boundaries', () => {
    const queue = new ByteQueue();
    for (const text of ['abc', '', 'defg', 'h', 'ijklmnop']) queue.push(Buffer.from(text));
    expect(queue.length).toBe(16);
    expect(queue.take(2).toString()).toBe('ab');
    expect(queue.take(5).toString()).toBe('cdefg');
    expect(queue.take(0).toString()).toBe('');
    expect(queue.take(4).toString()).toBe('hijk');
    expect(queue.length).toBe(5);
    expect(queue.takeAll().toString()).toBe('lmnop');
    expect(queue.length).toBe(0);
  });

  it('returns a view without copying when the bytes lie in one buffer', () => {
    const queue = new ByteQueue();
    const buffer = Buffer.from('0123456789');
    queue.push(buffer);
    expect(queue.take(4).buffer).toBe(buffer.buffer);
  });

  it('stays correct over many tiny buffers', () => {
    const queue = new ByteQueue();
    const expected = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 256));
    for (const byte of expected) queue.push(Buffer.from([byte]));
    const out = [queue.take(1), queue.take(2500), queue.take(1499), queue.takeAll()];
    expect(Buffer.concat(out).equals(expected)).toBe(true);
  });

  it('refuses to take more than is queued', () => {
    const queue = new ByteQueue();
    queue.push(Buffer.from('ab'));
    expect(() => queue.take(3)).toThrow(RangeError);
  });
});
