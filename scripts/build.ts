/**
 * Builds the agent into one file, dist/strongbox.mjs, for hosts with Node.js 20+ (the AWS deployment
 * ships it as an asset and the SSM document installs it). Everything is bundled, the AWS SDK included:
 * hosts have no node_modules (scripts/lib/bundle.ts).
 */
import { bundleAgent } from './lib/bundle';

const outfile = 'dist/strongbox.mjs';
const bytes = await bundleAgent(outfile);
process.stdout.write(`built ${outfile} (${(bytes / 1024 / 1024).toFixed(1)} MiB)\n`);
