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
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_FLAGS = ['--semi-space-growth-factor=1', '--heap-growing-percent=200'] as const;

for (const flag of HEAP_FLAGS) setFlagsFromString(flag);
