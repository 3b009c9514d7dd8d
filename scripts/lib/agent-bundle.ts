/**
 * The one-file agent bundle (dist/strongbox.mjs) for hosts with Node.js: built by `npm run build`, and
 * by the CDK app itself when the bundle is missing or older than its sources, so `npx cdk synth` and
 * `deploy` never ship a stale agent. Everything is bundled, the AWS SDK included: hosts have no
 * node_modules.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';

/** Folders and files of the repository the agent is built from. */
export const AGENT_SOURCES = [
  'agent',
  'core',
  'adapters',
  'scripts/lib',
  'package.json',
  'package-lock.json',
] as const;

/** Options of {@link buildAgentBundle}. */
export interface AgentBundleOptions {
  /**
   * `esm` (default): dist/strongbox.mjs for Node.js 20+; `cjs`: the entry of the single executable
   * (scripts/lib/agent-executable.ts), which Node's SEA runs as a CommonJS script.
   */
  format?: 'esm' | 'cjs';
  /** The Node.js the bundle runs on, as esbuild's target. @default 'node20' */
  target?: string;
}

/**
 * Builds the agent into `outfile` from `root`.
 * @returns the bundle's size in bytes.
 */
export async function buildAgentBundle(
  root: string,
  outfile: string,
  options: AgentBundleOptions = {},
): Promise<number> {
  const format = options.format ?? 'esm';
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['agent/main.ts'],
    outfile,
    bundle: true,
    platform: 'node',
    target: options.target ?? 'node20',
    format,
    minify: false,
    sourcemap: false,
    legalComments: 'none',
    metafile: true,
    // Some dependencies still call require(); give the ESM bundle one (a CommonJS bundle has its own).
    banner:
      format === 'esm'
        ? {
            js: "import { createRequire as __sbxRequire } from 'node:module'; const require = __sbxRequire(import.meta.url);",
          }
        : {},
    logLevel: 'warning',
  });
  await chmod(outfile, 0o755);
  return Object.values(result.metafile?.outputs ?? {}).reduce((sum, o) => sum + o.bytes, 0);
}

/**
 * Why the bundle must be built again: it is missing, or a source (below {@link AGENT_SOURCES}, test
 * files aside) changed after it was written; undefined when it is current.
 */
export function agentBundleStaleness(root: string, outfile: string): string | undefined {
  if (!existsSync(outfile)) return `${outfile} does not exist`;
  const built = statSync(outfile).mtimeMs;
  const newer = (path: string): string | undefined => {
    const stat = statSync(path);
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path)) {
        if (entry === 'node_modules' || entry.endsWith('.test.ts')) continue;
        const found = newer(join(path, entry));
        if (found) return found;
      }
      return undefined;
    }
    return stat.mtimeMs > built ? path : undefined;
  };
  for (const source of AGENT_SOURCES) {
    const path = join(root, source);
    if (!existsSync(path)) continue;
    const found = newer(path);
    if (found) return `${found} changed after ${outfile} was built`;
  }
  return undefined;
}

/**
 * Builds the bundle when it is missing or stale.
 * @returns why it was built, or undefined when it was current.
 */
export async function ensureAgentBundle(root: string, outfile: string): Promise<string | undefined> {
  const reason = agentBundleStaleness(root, outfile);
  if (reason) await buildAgentBundle(root, outfile);
  return reason;
}
