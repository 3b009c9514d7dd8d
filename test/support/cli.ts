/**
 * Runs the real `strongbox` CLI (agent/main.ts under tsx) as a child process, the way an operator or the
 * SSM document does, and captures its exit code and output.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when the command ran with --json and printed an object. */
  // biome-ignore lint/suspicious/noExplicitAny: the shape depends on the command; tests read it freely
  json: any;
  /** The last line on stderr (`strongbox: error: …` on failure). */
  lastError: string;
}

/**
 * Runs `strongbox <args>`; never throws for a non-zero exit.
 * @example const { code, json } = await strongbox(['list', '--plan', plan, '--json'])
 */
export function strongbox(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', join(root, 'agent', 'main.ts'), ...args],
      { cwd: root, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        let json: unknown;
        try {
          json = JSON.parse(stdout);
        } catch {
          json = undefined;
        }
        const lines = stderr.trim().split('\n');
        resolve({ code, stdout, stderr, json, lastError: lines.at(-1) ?? '' });
      },
    );
  });
}

/**
 * Writes `<dir>/plan.yaml` — a file vault at `<dir>/vault`, a local key at `<dir>/master.key` made with
 * `strongbox keygen`, the given jobs (YAML lines below `jobs:`) and hosts (lines below `hosts:`) — and
 * returns the plan's path.
 * @example const plan = await writeFileVaultPlan(work, '  - name: models\n    source: { kind: files, paths: [/srv] }')
 */
export async function writeFileVaultPlan(
  dir: string,
  jobsYaml: string,
  options: { hostsYaml?: string } = {},
): Promise<string> {
  const plan = join(dir, 'plan.yaml');
  await writeFile(
    plan,
    `version: 1
vault: { url: "file://${join(dir, 'vault')}" }
key: { type: local, path: master.key }
retention: { daily: 7d, weekly: 5w, monthly: 12mo, yearly: 7y }
${options.hostsYaml ? `hosts:\n${options.hostsYaml.replace(/\n$/, '')}\n` : ''}jobs:
${jobsYaml.replace(/\n$/, '')}
`,
  );
  const keygen = await strongbox(['keygen', join(dir, 'master.key')]);
  if (keygen.code !== 0) throw new Error(`strongbox keygen failed: ${keygen.lastError}`);
  return plan;
}
