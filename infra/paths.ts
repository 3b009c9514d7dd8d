/** Paths of the repository the CDK app builds from, independent of the current directory. */
import { fileURLToPath } from 'node:url';
import { AGENT_ARCHITECTURES, type AgentArchitecture, agentExecutableName } from '#core/deployment';

/** The repository root (where package.json and package-lock.json are). */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The Lambda handlers, one file per function named in core/deployment FUNCTIONS. */
export const FUNCTIONS_DIR = fileURLToPath(new URL('../functions/', import.meta.url));

/** The one-file agent bundle that `npm run build` writes. */
export const AGENT_BUNDLE_PATH = fileURLToPath(new URL('../dist/strongbox.mjs', import.meta.url));

/** The agent executables (gzip) by architecture, which `npm run build:exe` writes and hosts install. */
export const AGENT_EXECUTABLE_PATHS = Object.fromEntries(
  (Object.keys(AGENT_ARCHITECTURES) as AgentArchitecture[]).map((arch) => [
    arch,
    fileURLToPath(new URL(`../dist/${agentExecutableName(arch)}.gz`, import.meta.url)),
  ]),
) as Readonly<Record<AgentArchitecture, string>>;
