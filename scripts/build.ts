/**
 * Builds the agent into one file, dist/strongbox.mjs, for hosts with Node.js 20+ (the AWS deployment
 * ships it as an asset and the SSM document installs it). Everything is bundled, the AWS SDK included:
 * hosts have no node_modules.
 */
import { chmod } from 'node:fs/promises';
import { build } from 'esbuild';

const outfile = 'dist/strongbox.mjs';
const result = await build({
  entryPoints: ['agent/main.ts'],
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
const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
process.stdout.write(`built ${outfile} (${(bytes / 1024 / 1024).toFixed(1)} MiB)\n`);
