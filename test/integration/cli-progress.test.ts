/**
 * The progress line through the real CLI: on a terminal (run under script(1), which gives the agent a
 * TTY) a backup draws bytes, rate and elapsed time on stderr; with --json or --quiet it draws nothing;
 * in logs (stderr not a TTY) it writes whole lines only, one every ten seconds.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { strongbox, writeFileVaultPlan } from '#test/support/cli';

let dir: string;
let plan: string;
const root = join(import.meta.dirname, '..', '..');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-progress-'));
  // A source that takes a while: some data, a pause, more data.
  plan = await writeFileVaultPlan(
    dir,
    `  - name: slow
    source:
      kind: command
      backup: { shell: "head -c 2000000 /dev/urandom; sleep 2; head -c 1000 /dev/urandom" }
      restore: { argv: [cat] }`,
  );
});

afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs the CLI under script(1): stdout and stderr are a terminal; returns what the terminal showed. */
function onTerminal(args: string[]): Promise<{ code: number; screen: string }> {
  const command = [process.execPath, '--import', 'tsx', join(root, 'agent', 'main.ts'), ...args]
    .map((arg) => `'${arg.replace(/'/g, "'\\''")}'`)
    .join(' ');
  return new Promise((resolve) => {
    execFile('script', ['-qec', command, '/dev/null'], { cwd: root }, (error, stdout) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, screen: stdout });
    });
  });
}

it('draws a progress line on a terminal', async () => {
  const run = await onTerminal(['backup', '-p', plan]);
  expect(run.code, run.screen).toBe(0);
  const erase = '\r\x1b[K';
  expect(run.screen).toContain(`${erase}backup slow: `);
  expect(run.screen).toMatch(/backup slow: 1\.\d\d MiB, [\d.]+ [KM]iB\/s, 0:0[1-9] elapsed/);
});

it.each([
  ['--json', ['--json']],
  ['--quiet', ['--quiet']],
])('draws nothing on a terminal with %s', async (_what, flags) => {
  const run = await onTerminal(['backup', '-p', plan, ...flags]);
  expect(run.code, run.screen).toBe(0);
  expect(run.screen).not.toContain('\x1b[K');
  expect(run.screen).not.toMatch(/elapsed/);
});

it('writes only whole progress lines when stderr is a log, not a terminal', async () => {
  const run = await strongbox(['backup', '-p', plan]);
  expect(run.code, run.stderr).toBe(0);
  expect(run.stderr).not.toContain('\r');
  expect(run.stderr).not.toContain('\x1b');
  // One every ten seconds: none for a run this short on a quiet machine, whole lines on a loaded one.
  for (const line of run.stderr.split('\n').filter((l) => l.includes('elapsed'))) {
    expect(line).toMatch(/^strongbox: progress: backup slow: /);
  }
});
