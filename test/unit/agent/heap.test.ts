/**
 * The heap keeper: it collects once the old generation has grown past its budget, follows V8's own
 * collections, really frees promoted garbage, and is one per process however often the module loads.
 */
import { describe, expect, it, vi } from 'vitest';
import { HeapKeeper, heapKeeper, OLD_GROWTH_BYTES, oldGenerationBytes } from '#agent/heap';

const MiB = 1024 * 1024;

/** A keeper over a scripted old generation: `used` is what the next look sees. */
function scripted(start: number) {
  const heap = { used: start, collections: 0, afterCollection: start };
  const keeper = new HeapKeeper(
    () => heap.used,
    () => {
      heap.collections++;
      heap.used = heap.afterCollection;
    },
    4 * MiB,
  );
  return { heap, keeper };
}

describe('HeapKeeper', () => {
  it('collects only once the old generation has grown past the budget, then measures from what it left', () => {
    const { heap, keeper } = scripted(20 * MiB);
    heap.used = 24 * MiB;
    expect(keeper.tick()).toBe(false);
    heap.used = 24 * MiB + 1;
    heap.afterCollection = 21 * MiB;
    expect(keeper.tick()).toBe(true);
    expect(heap.collections).toBe(1);
    heap.used = 25 * MiB;
    expect(keeper.tick()).toBe(false);
    heap.used = 25 * MiB + 1;
    expect(keeper.tick()).toBe(true);
    expect(keeper.collections).toBe(2);
  });

  it("counts growth from V8's own collections too, not only from its own", () => {
    const { heap, keeper } = scripted(30 * MiB);
    heap.used = 18 * MiB; // a Mark-Compact of V8's between two looks
    expect(keeper.tick()).toBe(false);
    heap.used = 23 * MiB;
    expect(keeper.tick()).toBe(true);
  });
});

describe('the process keeper', () => {
  it('frees garbage promoted to the old generation', () => {
    const keeper = heapKeeper();
    keeper.tick();
    const before = oldGenerationBytes();
    // Objects that live through enough scavenges to be promoted, then die: what a stream leaves.
    let promoted: Array<{ n: number; s: string }> | undefined = Array.from({ length: 300_000 }, (_, n) => ({
      n,
      s: `row ${n}`,
    }));
    for (let round = 0; round < 40; round++) new Array(200_000).fill(round);
    expect(promoted.length).toBe(300_000);
    promoted = undefined;
    const grown = oldGenerationBytes();
    expect(grown - before).toBeGreaterThan(OLD_GROWTH_BYTES);
    const collections = keeper.collections;
    expect(keeper.tick()).toBe(true);
    expect(keeper.collections).toBe(collections + 1);
    expect(oldGenerationBytes()).toBeLessThan(grown - OLD_GROWTH_BYTES);
  });

  it('is one per process when the module is evaluated again (the bundle evaluates it twice)', async () => {
    const first = heapKeeper();
    vi.resetModules();
    const again = await import('#agent/heap');
    expect(again.heapKeeper()).toBe(first);
  });
});
