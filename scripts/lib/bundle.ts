/**
 * The one-file agent bundle (what hosts with Node.js 20+ run): everything bundled, the AWS SDK included,
 * since hosts have no node_modules. Used by scripts/build.ts and by tests that need PostgreSQL to run
 * the agent the way a host does (archive_command, restore_command).
 */
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..', '..');

/** Builds agent/main.ts into `outfile` (mode 0755); resolves with the bundle's size in bytes. */
export async function bundleAgent(outfile: string): Promise<number> {
  const result = await build({
    entryPoints: [join(root, 'agent', 'main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    minify: false,
    sourcemap: false,
    legalComments: 'none',
    metafile: true,
    // Some dependencies still call require(); give the ESM bundle one.
    banner: {
      js: "import { createRequire as __sbxRequire } from 'node:module'; const require = __sbxRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  await chmod(outfile, 0o755);
  return Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
}
