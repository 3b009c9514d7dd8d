/**
 * The restore's TOC scratch directory: private, named by the restoring process, and what a killed
 * restore left (its process gone) removed before the next one makes its own — never a directory of a
 * restore that still runs, nor one it cannot tell the owner of.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tocScratchDir } from '#agent/sources/postgres/toc';
import { tempDir } from '#test/support/temp';

const originalTmp = process.env.TMPDIR;
afterEach(() => {
  if (originalTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = originalTmp;
});

describe('tocScratchDir', () => {
  it('removes what killed restores left and makes a private directory of its own', async () => {
    const tmp = await tempDir('strongbox-toc-scratch-');
    process.env.TMPDIR = tmp;
    const gone = spawnSync('true').pid as number; // exited: its pid names no process now
    const left = {
      killed: `strongbox-toc-${gone}-a1b2c3`,
      running: 'strongbox-toc-1-d4e5f6', // pid 1 runs
      ours: `strongbox-toc-${process.pid}-g7h8i9`,
      unnamed: 'strongbox-toc-j0k1l2', // before directories carried a pid: whose it is cannot be told
    };
    for (const name of Object.values(left)) {
      await mkdir(join(tmp, name));
      await writeFile(join(tmp, name, 'toc.dump'), 'schema');
    }

    const dir = await tocScratchDir();

    expect(dir.startsWith(join(tmp, `strongbox-toc-${process.pid}-`))).toBe(true);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await readdir(tmp)).sort()).toEqual(
      [left.running, left.ours, left.unnamed, dir.slice(tmp.length + 1)].sort(),
    );
  });
});
