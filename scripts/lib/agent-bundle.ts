/**
 * The one-file agent bundle (dist/strongbox.mjs) for hosts with Node.js: built by `npm run build`, and
 * by the CDK app itself when the bundle is missing or older than its sources, so `npx cdk synth` and
 * `deploy` never ship a stale agent. Everything is bundled, the AWS SDK included: hosts have no
 * node_modules.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { type BuildOptions, build, type Plugin } from 'esbuild';

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
  const target = options.target ?? 'node20';
  const common: BuildOptions = {
    absWorkingDir: root,
    bundle: true,
    platform: 'node',
    target,
    minify: false,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  };
  const result = await build({
    ...common,
    entryPoints: ['agent/main.ts'],
    outfile,
    format,
    metafile: true,
    // The single executable's code cache already spares it the parse: it keeps agent/lazy as written.
    plugins: format === 'esm' ? [await lazyAgentPlugin(common)] : [],
    // Some dependencies still call require(); give the ESM bundle one (a CommonJS bundle has its own).
    banner:
      format === 'esm'
        ? {
            js: "import { createRequire as __sbxRequire } from 'node:module'; const require = __sbxRequire(import.meta.url);",
          }
        : {},
  });
  await chmod(outfile, 0o755);
  return Object.values(result.metafile?.outputs ?? {}).reduce((sum, o) => sum + o.bytes, 0);
}

/**
 * Replaces agent/lazy in the ESM bundle by its own CommonJS build held as a string and compiled (as
 * Node compiles a CommonJS file) on the first call, so that a wal-push answered by the fast path parses
 * a few hundred KiB instead of the whole agent: V8 pre-parses every function of a script it loads, but
 * a string literal is only scanned (docs/adr/0012-wal-push-without-the-cli.md).
 */
async function lazyAgentPlugin(common: BuildOptions): Promise<Plugin> {
  const inner = await build({ ...common, entryPoints: ['agent/lazy.ts'], format: 'cjs', write: false });
  const source = inner.outputFiles[0]?.text ?? '';
  return {
    name: 'strongbox-lazy-agent',
    setup(build) {
      build.onResolve({ filter: /^#agent\/lazy$/ }, () => ({
        path: 'agent/lazy',
        namespace: 'strongbox-lazy',
      }));
      build.onLoad({ filter: /.*/, namespace: 'strongbox-lazy' }, () => ({
        loader: 'js',
        resolveDir: common.absWorkingDir,
        contents: `import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInThisContext } from 'node:vm';
const SOURCE = ${JSON.stringify(source)};
let loaded;
function load() {
  if (!loaded) {
    const file = fileURLToPath(import.meta.url);
    const module = { exports: {} };
    const wrapper = runInThisContext(
      '(function (exports, require, module, __filename, __dirname) {' + SOURCE + '\\n})',
      { filename: file + ' (agent)' },
    );
    wrapper.call(module.exports, module.exports, createRequire(import.meta.url), module, file, dirname(file));
    loaded = module.exports;
  }
  return loaded;
}
export const runCli = () => load().runCli();
export const walPusherProcess = () => load().walPusherProcess();
`,
      }));
    },
  };
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
