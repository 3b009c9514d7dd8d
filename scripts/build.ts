/**
 * Builds the agent into one file, dist/strongbox.mjs, for hosts with Node.js 20+ (the AWS deployment
 * ships it as an asset and the SSM document installs it). See scripts/lib/agent-bundle.ts.
 */
import { buildAgentBundle } from './lib/agent-bundle';

const outfile = 'dist/strongbox.mjs';
const bytes = await buildAgentBundle(process.cwd(), outfile);
process.stdout.write(`built ${outfile} (${(bytes / 1024 / 1024).toFixed(1)} MiB)\n`);
