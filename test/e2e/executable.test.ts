/**
 * The single executable (npm run build:exe) on a host without Node.js: its PATH holds only the tools a
 * files job uses (tar, zstd), no node. It prints its version, passes doctor, and backs up and restores a
 * files job through a file vault, byte for byte. The executable for this machine's architecture is
 * built once into dist/ when it is missing or older than the agent's sources (about a minute).
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '#agent/version';
import { type AgentArchitecture, agentExecutableName } from '#core/deployment';
import { REPO_ROOT } from '#infra/paths';
import { writeFileVaultPlan } from '#test/support/cli';
import { agentBundleStaleness } from '../../scripts/lib/agent-bundle';
import { buildAgentExecutable } from '../../scripts/lib/agent-executable';

let work: string;
let exe: string;
let bin: string;
let plan: string;
let source: string;

/** Runs the executable with nothing but `bin` on PATH. */
function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      exe,
      args,
      { cwd: work, env: { PATH: bin, HOME: work }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  exe = join(REPO_ROOT, 'dist', agentExecutableName(process.arch as AgentArchitecture));
  if (agentBundleStaleness(REPO_ROOT, exe)) {
    await buildAgentExecutable(REPO_ROOT, process.arch as AgentArchitecture, exe);
  }
  work = await mkdtemp(join(tmpdir(), 'strongbox-exe-'));
  bin = join(work, 'bin');
  await mkdir(bin);
  for (const tool of ['tar', 'zstd']) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    if (!found) throw new Error(`${tool} is not installed`);
    await symlink(found, join(bin, tool));
  }
  source = join(work, 'srv', 'app');
  await mkdir(join(source, 'conf'), { recursive: true });
  await writeFile(join(source, 'conf', 'app.yaml'), 'listen: 8080\n');
  await writeFile(join(source, 'data.bin'), Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251)));
  plan = await writeFileVaultPlan(work, `  - name: app\n    source: { kind: files, paths: ["${source}"] }`);
}, 300_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the agent executable on a host without Node.js', () => {
  it('has no node on its PATH', () => {
    const found = spawnSync('/bin/sh', ['-c', 'command -v node'], { env: { PATH: bin } });
    expect(found.status).not.toBe(0);
  });

  it('prints its version', async () => {
    const result = await run(['--version']);
    expect(result).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
  });

  it('passes doctor: the key, the vault and tar', async () => {
    const result = await run(['doctor', '--plan', plan, '--json']);
    const { checks } = JSON.parse(result.stdout) as {
      checks: { subject: string; ok: boolean; warning?: boolean }[];
    };
    // A vault on the root file system is a warning (exit 1), nothing fails.
    expect(checks.filter((c) => !c.ok && !c.warning)).toEqual([]);
    expect(result.code, result.stderr).toBeLessThan(2);
    expect(checks.map((c) => c.subject)).toEqual(
      expect.arrayContaining(['app: tar', 'key (local)', expect.stringMatching(/^vault file:/)]),
    );
  });

  it('backs up a files job and restores it byte for byte', async () => {
    const backup = await run(['backup', '--plan', plan, '--job', 'app', '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    const target = join(work, 'restored');
    const restore = await run(['restore', '--plan', plan, '--job', 'app', '--target', target, '--json']);
    expect(restore.code, restore.stderr).toBe(0);
    expect(await readFile(join(target, source, 'conf', 'app.yaml'), 'utf8')).toBe('listen: 8080\n');
    expect(
      (await readFile(join(target, source, 'data.bin'))).equals(await readFile(join(source, 'data.bin'))),
    ).toBe(true);
  });

  it('fails a bad plan with one error line and exit 2', async () => {
    const bad = join(work, 'bad.yaml');
    await writeFile(bad, 'version: 1\njobs: [{ name: x }]\n');
    const result = await run(['backup', '--plan', bad, '--job', 'x']);
    expect(result.code).toBe(2);
    expect(result.stderr.trimEnd().split('\n').at(-1)).toMatch(/^strongbox: error: /);
  });
});
