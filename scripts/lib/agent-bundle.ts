/**
 * The one-file agent bundle (dist/strongbox.mjs) for hosts with Node.js: built by `npm run build`, and
 * by the CDK app itself when the bundle is missing or older than its sources, so `npx cdk synth` and
 * `deploy` never ship a stale agent. Everything is bundled, the AWS SDK included: hosts have no
 * node_modules.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { appendFile, chmod, readFile, writeFile } from 'node:fs/promises';
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
  const lazy = format === 'esm' ? await heldAgent(common) : undefined;
  const result = await build({
    ...common,
    entryPoints: ['agent/main.ts'],
    outfile,
    format,
    metafile: true,
    // The single executable's code cache already spares it the parse: it keeps agent/lazy as written.
    plugins: lazy ? [lazyAgentPlugin(common)] : [],
    // Some dependencies still call require(); give the ESM bundle one (a CommonJS bundle has its own).
    banner:
      format === 'esm'
        ? {
            js: "import { createRequire as __sbxRequire } from 'node:module'; const require = __sbxRequire(import.meta.url);",
          }
        : {},
  });
  if (lazy) await appendFile(outfile, lazy);
  await writeFile(outfile, asciiOnly(await readFile(outfile, 'utf8')));
  await chmod(outfile, 0o755);
  const bytes = Object.values(result.metafile?.outputs ?? {}).reduce((sum, o) => sum + o.bytes, 0);
  return bytes + (lazy?.length ?? 0);
}

/**
 * `source` with every non-ASCII UTF-16 unit written as a `\uXXXX` escape. esbuild already escapes
 * them in strings, templates and regular expressions (its default `charset: 'ascii'`), but not in the
 * comments it keeps, and one `×` in a comment made V8 hold the whole bundle as a two-byte string: the
 * module's source (kept for lazy compilation), the held agent read back and its compiled copy — about
 * 20 MiB of a 100 MiB agent's RSS. Escaping is meaning-preserving wherever esbuild leaves such a unit:
 * in comments, strings, regular expressions and identifiers.
 */
export function asciiOnly(source: string): string {
  return source.replace(
    /[\u0080-\uffff]/g,
    (unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** The line after which the ESM bundle holds agent/lazy's CommonJS build, each line behind `//`. */
export const HELD_AGENT_MARKER = '\n//strongbox: agent/lazy, compiled when it runs\n';

/**
 * agent/lazy's own CommonJS build as line comments appended to the ESM bundle: V8's scanner skips a
 * comment at memchr speed, where a string literal of the same 4 MiB cost a fast wal-push call 0.12 s
 * and the code itself more (docs/adr/0012-wal-push-without-the-cli.md). Line comments, not one block
 * comment: the build keeps some comments of its own, whose `*\/` would end a block early.
 */
async function heldAgent(common: BuildOptions): Promise<string> {
  const inner = await build({ ...common, entryPoints: ['agent/lazy.ts'], format: 'cjs', write: false });
  const source = inner.outputFiles[0]?.text ?? '';
  // A line comment ends at any line terminator: one inside the source would end it early.
  if (/[\r\u2028\u2029]/.test(source))
    throw new Error('agent/lazy built with a CR, U+2028 or U+2029: it cannot be held as line comments');
  return HELD_AGENT_MARKER + asciiOnly(source).replace(/^/gm, '//');
}

/**
 * Replaces agent/lazy in the ESM bundle by a loader of the copy held at the bundle's end (see
 * {@link heldAgent}): on the first call it reads the bundle, strips the `//` of each held line and
 * compiles the result as Node compiles a CommonJS file. A wal-push answered by the fast path never
 * calls it, so it parses a few hundred KiB instead of the whole agent.
 */
function lazyAgentPlugin(common: BuildOptions): Plugin {
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
        contents: `import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInThisContext } from 'node:vm';
const MARKER = ${JSON.stringify(HELD_AGENT_MARKER)};
let loaded;
function load() {
  if (!loaded) {
    const file = fileURLToPath(import.meta.url);
    // Bytes, and only the held part decoded: the bundle is ASCII (asciiOnly), so latin1 is exact and
    // V8 keeps a one-byte string, not a decoded copy of the whole file.
    const bytes = readFileSync(file);
    const at = bytes.indexOf(MARKER);
    if (at < 0) throw new Error(file + ' lacks the agent it holds: build it again (npm run build)');
    const source = bytes.toString('latin1', at + MARKER.length).replace(/^\\/\\//gm, '');
    const module = { exports: {} };
    const wrapper = runInThisContext(
      '(function (exports, require, module, __filename, __dirname) {' + source + '\\n})',
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
