/**
 * `npm run demo` (scripts/demo.ts, on the built bundle) at a small scale: it passes, and shows a
 * newcomer the plan it wrote, each command it ran as one can copy it, the inventory, and where to look
 * next.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

it('shows the plan, every command it runs and where to look next', async () => {
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>(
    (resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', join(root, 'scripts', 'demo.ts')],
        { cwd: root, env: { ...process.env, DEMO_SCALE: '0.01' }, maxBuffer: 16 * 1024 * 1024 },
        (error, out, err) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout: out, stderr: err }),
      );
    },
  );
  expect(code, stderr).toBe(0);
  expect(stdout).toMatch(/^the plan, \S+\/plan\.yaml:\n\n {4}# Written by npm run demo\n {4}version: 1\n/m);
  expect(stdout).toMatch(/^ {4}jobs:\n {6}- name: shop-db$/m);
  expect(stdout).toMatch(/^\$ node dist\/strongbox\.mjs keygen \S+\/master\.key$/m);
  for (const command of [
    'backup --plan \\S+ --job shop-db',
    'list --plan \\S+',
    'verify --plan \\S+ --deep',
    'restore --plan \\S+ --job shop-db --target shop_restored',
    'drill --plan \\S+ --job shop-db',
  ]) {
    expect(stdout).toMatch(new RegExp(`^\\$ node dist/strongbox\\.mjs ${command}( --json --quiet)?$`, 'm'));
  }
  expect(stdout).toMatch(/^ {4}job shop-db \(postgres\): 1 complete backup/m);
  expect(stdout).toMatch(/^demo passed/m);
  expect(stdout).toMatch(/^where to look next:\n {2}- /m);
  expect(stdout).toContain('docs/plan.md');
}, 300_000);
