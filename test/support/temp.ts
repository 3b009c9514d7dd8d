/**
 * Temp directories of a test file, removed once the file's tests ran: importing this module registers
 * an `afterAll` on the importing test file (vitest loads each test file in its own module graph, so
 * every file gets its own), which runs after the file's own `afterAll` hooks (servers stopped first).
 * Use it for what a test, a `beforeAll` or a helper makes and does not remove itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const made = new Set<string>();

afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
  made.clear();
});

/** Removes `dir` with the file's other temp directories; returns it. */
export function removeAfterAll(dir: string): string {
  made.add(dir);
  return dir;
}

/**
 * A fresh directory `<tmpdir>/<prefix>XXXXXX`, removed after the file's tests.
 * @example const dir = await tempDir('strongbox-prom-');
 */
export async function tempDir(prefix: string): Promise<string> {
  return removeAfterAll(await mkdtemp(join(tmpdir(), prefix)));
}

/** {@link tempDir}, synchronously (CDK helpers, `describe` bodies). */
export function tempDirSync(prefix: string): string {
  return removeAfterAll(mkdtempSync(join(tmpdir(), prefix)));
}
