/**
 * Builds the agent as single executables for hosts without Node.js (`npm run build:exe`):
 * dist/strongbox-linux-x64 and dist/strongbox-linux-arm64, each with its gzip file (what the AWS
 * deployment ships). `npm run build:exe -- x64` builds one architecture. See scripts/lib/agent-executable.ts.
 */
import { join } from 'node:path';
import { type AgentArchitecture, agentExecutableName } from '#core/deployment';
import { buildAgentExecutable, EXECUTABLE_ARCHITECTURES, SEA_NODE_VERSION } from './lib/agent-executable';

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const asked = process.argv.slice(2);
const unknown = asked.filter((arch) => !EXECUTABLE_ARCHITECTURES.includes(arch as AgentArchitecture));
if (unknown.length > 0) {
  process.stderr.write(
    `strongbox: error: unknown architecture ${unknown.join(', ')} (expected ${EXECUTABLE_ARCHITECTURES.join(', ')})\n`,
  );
  process.exit(2);
}
for (const arch of asked.length > 0 ? (asked as AgentArchitecture[]) : EXECUTABLE_ARCHITECTURES) {
  const outfile = join('dist', agentExecutableName(arch));
  const built = await buildAgentExecutable(process.cwd(), arch, outfile, { gzip: true });
  process.stdout.write(
    `built ${outfile} (Node.js ${SEA_NODE_VERSION}, ${mib(built.bytes)}; ${built.gzip?.path} ${mib(built.gzip?.bytes ?? 0)})\n`,
  );
}
