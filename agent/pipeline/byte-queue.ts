/**
 * A FIFO of bytes over a list of Buffers: appending is O(1), taking `n` bytes copies at most `n` bytes
 * (none when they lie in one buffer). The streaming stages use it instead of concatenating a growing
 * buffer, which would copy every byte once per arriving chunk.
 */

/** Bytes queued in arrival order. */
export class ByteQueue {
  /** Queued buffers; taken ones before `#head` are cleared so their memory is released at once. */
  #buffers: (Buffer | undefined)[] = [];
  /** Index of the first buffer still (partly) queued. */
  #head = 0;
  /** Bytes of `#buffers[#head]` already taken. */
  #offset = 0;
  #length = 0;

  /** Bytes queued. */
  get length(): number {
    return this.#length;
  }

  /** Appends a buffer (kept by reference, not copied). */
  push(buffer: Buffer): void {
    if (buffer.length === 0) return;
    this.#buffers.push(buffer);
    this.#length += buffer.length;
  }

  /**
   * Removes and returns the first `n` bytes. A view into a queued buffer when they lie in one,
   * else a fresh copy. @throws RangeError when fewer than `n` bytes are queued.
   */
  take(n: number): Buffer {
    if (n > this.#length) throw new RangeError(`cannot take ${n} bytes, ${this.#length} queued`);
    if (n === 0) return Buffer.alloc(0);
    const first = this.#buffers[this.#head] as Buffer;
    if (first.length - this.#offset >= n) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#advance(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const buffer = this.#buffers[this.#head] as Buffer;
      const count = Math.min(buffer.length - this.#offset, n - filled);
      buffer.copy(out, filled, this.#offset, this.#offset + count);
      filled += count;
      this.#advance(count);
    }
    return out;
  }

  /** Removes and returns everything queued. */
  takeAll(): Buffer {
    return this.take(this.#length);
  }

  #advance(n: number): void {
    this.#length -= n;
    this.#offset += n;
    if (this.#offset === (this.#buffers[this.#head] as Buffer).length) {
      this.#buffers[this.#head] = undefined;
      this.#head += 1;
      this.#offset = 0;
      if (this.#head === this.#buffers.length) {
        this.#buffers = [];
        this.#head = 0;
      } else if (this.#head >= 1024) {
        this.#buffers = this.#buffers.slice(this.#head);
        this.#head = 0;
      }
    }
  }
}
