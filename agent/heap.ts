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
 * `--heap-growing-percent=100`: after a Mark-Compact the old generation's limit grows by the whole
 * live heap. With V8's default step the limit sat just above what a streaming upload keeps alive
 * (SDK request objects promoted between scavenges), and a 1000 MiB backup ran 57 Mark-Compacts for
 * 2.2 s of CPU; with this, 5. It too is read at every limit computation (docs/adr/0014).
 */
import { setFlagsFromString } from 'node:v8';

export const HEAP_FLAGS = ['--semi-space-growth-factor=1', '--heap-growing-percent=100'] as const;

for (const flag of HEAP_FLAGS) setFlagsFromString(flag);
