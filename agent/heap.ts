/**
 * V8 heap settings of the agent, applied when this module is evaluated: main.ts imports it first, so
 * it runs before the other modules load, in `node dist/strongbox.mjs`, the single executable and tsx
 * alike (no NODE_OPTIONS, no wrapper). docs/adr/0007-s3-memory.md has the measurements.
 *
 * `--semi-space-growth-factor=1`: the young generation stays at its initial size instead of growing
 * to 16 MiB per semi-space. A backup's stream chunks (pg_dump reads, zstd and AES-GCM output) are
 * external memory held by short-lived Buffer objects; a small young generation scavenges them often,
 * so their memory is freed within a few MiB of data instead of tens. Unlike `--max-semi-space-size`,
 * which V8 reads only when it creates the heap, the growth factor is read at every growth, so setting
 * it at run time takes effect.
 *
 * `--heap-growing-percent=200`: after a Mark-Compact the old generation may grow to three times what
 * is live before the next. The bundle's text is ASCII (docs/adr/0014), so the agent's live heap is
 * small (~19 MiB), and V8's own growing step put the limit where a streaming backup's promoted
 * garbage reached it every few MiB: a 3000 MiB backup to S3 ran 142-182 Mark-Compacts and 60 % more
 * CPU. At 100 % exactly, a file-vault backup ran 64 of them (incremental marking started at once,
 * size 20 MiB of a 41 MiB limit); at 150, 200 and 300 both stay at 1-7. Read at every limit
 * computation, so setting it at run time takes effect.
 *
 * The heap keeper ({@link HeapKeeper}): that generous step lets garbage promoted to the old generation
 * stay for a long time, and the Buffers among it hold their external memory (stream chunks) until the
 * Mark-Compact that finds them dead. A 3000 MiB backup to S3 grew from 132 to 155-161 MiB that way
 * (docs/adr/0016). The keeper looks at the old generation twice a second and runs a full collection
 * when it has grown {@link OLD_GROWTH_BYTES} past what the last one left; an idle agent (the schedule
 * runner waiting for the next job) allocates nothing and is never collected.
 */
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export const HEAP_FLAGS = ['--semi-space-growth-factor=1', '--heap-growing-percent=200'] as const;

/** How often the keeper looks at the old generation. */
export const KEEPER_INTERVAL_MS = 500;
/** How far the old generation may grow past what the last full collection left before the keeper runs one. */
export const OLD_GROWTH_BYTES = 2 * 1024 * 1024;

/**
 * Runs a full collection when the old generation (what `measure` returns) has grown more than `budget`
 * bytes past its lowest point since the last one; V8's own collections lower that point too.
 */
export class HeapKeeper {
  #floor: number;
  /** Full collections this keeper ran. */
  collections = 0;

  constructor(
    private readonly measure: () => number,
    private readonly collect: () => void,
    private readonly budget = OLD_GROWTH_BYTES,
  ) {
    this.#floor = measure();
  }

  /** One look: collects (and returns true) when the old generation grew past the budget. */
  tick(): boolean {
    const used = this.measure();
    this.#floor = Math.min(this.#floor, used);
    if (used - this.#floor <= this.budget) return false;
    this.collect();
    this.collections++;
    this.#floor = this.measure();
    return true;
  }
}

/** Bytes in use in every heap space but the young generation's. */
export function oldGenerationBytes(): number {
  let used = 0;
  for (const space of getHeapSpaceStatistics())
    if (!space.space_name.startsWith('new_')) used += space.space_used_size;
  return used;
}

let gc: (() => void) | undefined;

/**
 * A full collection by V8's `gc`, without a global `gc`: `--expose-gc` gives it to contexts created
 * after it. The context is made at the first collection, so a short command (a wal-push) never pays for it.
 */
function fullCollection(): void {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}

const KEEPER = Symbol.for('strongbox.heap-keeper');

/**
 * The process's heap keeper, started on first use; the bundle evaluates this module twice (the entry,
 * and the CLI it loads lazily), and both get the one keeper. Its timer never keeps the process alive.
 */
export function heapKeeper(): HeapKeeper {
  const global = globalThis as { [KEEPER]?: HeapKeeper };
  if (global[KEEPER] === undefined) {
    const keeper = new HeapKeeper(oldGenerationBytes, fullCollection);
    setInterval(() => keeper.tick(), KEEPER_INTERVAL_MS).unref();
    global[KEEPER] = keeper;
  }
  return global[KEEPER];
}

for (const flag of HEAP_FLAGS) setFlagsFromString(flag);
heapKeeper();
