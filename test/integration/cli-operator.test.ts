/**
 * The CLI as an operator leans on it, through the real `strongbox` process: several jobs chosen with
 * `--job a --job b` or `--job a,b`, every job's outcome reported, and one error contract — every
 * failure, usage errors too, ends with one `strongbox: error: <operation>: …` line, and with `--json`
 * stdout holds one error object that the output contract's schema accepts.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  agentBackupRunSchema,
  agentDrillRunSchema,
  agentErrorOutputSchema,
  agentVerifyResultSchema,
} from '#core/agent-output';
import { AGENT_ERROR_PREFIX } from '#core/deployment';
import { type CliResult, strongbox } from '#test/support/cli';

let dir: string;
let plan: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-cli-'));
  for (const name of ['alpha', 'beta', 'gamma']) {
    await mkdir(join(dir, 'src', name), { recursive: true });
    await writeFile(join(dir, 'src', name, `${name}.txt`), `${name}\n`);
  }
  plan = join(dir, 'plan.yaml');
  await writeFile(
    plan,
    `version: 1
vault: { url: "file://${join(dir, 'vault')}" }
key: { type: local, path: master.key }
jobs:
  - name: alpha
    source: { kind: files, paths: ["${join(dir, 'src', 'alpha')}"] }
  - name: beta
    source: { kind: files, paths: ["${join(dir, 'src', 'beta')}"] }
  - name: gamma
    source: { kind: files, paths: ["${join(dir, 'src', 'gamma')}"] }
  - name: broken
    source: { kind: files, paths: ["${join(dir, 'src', 'missing')}"] }
`,
  );
  expect((await strongbox(['keygen', join(dir, 'master.key')])).code).toBe(0);
});

afterAll(() => rm(dir, { recursive: true, force: true }));

const run = (args: string[]) => strongbox([...args, '--plan', plan, '-q']);

/** The backups of a job in the vault. */
const stored = async (job: string) => readdir(join(dir, 'vault', 'backups', job)).catch(() => []);

/** A failed run: exit 2, the error line last on stderr, and with --json one error object on stdout. */
function expectFailure(result: CliResult, line: RegExp, help = false): void {
  expect(result.code, result.stderr).toBe(2);
  expect(result.lastError).toMatch(line);
  expect(result.lastError.startsWith(AGENT_ERROR_PREFIX)).toBe(true);
  // Only `strongbox` with no command shows the help, before its error line.
  expect(/Usage:|display help for command/.test(result.stderr)).toBe(help);
}

describe('job selection', () => {
  it.each([
    ['repeated', ['--job', 'alpha', '--job', 'beta']],
    ['comma-separated', ['--job', 'alpha,beta']],
  ])('backup --job given %s backs up both jobs and reports both', async (_how, jobs) => {
    const before = { alpha: (await stored('alpha')).length, beta: (await stored('beta')).length };
    const result = await run(['backup', ...jobs, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const out = agentBackupRunSchema.parse(result.json);
    expect(out.backups.map((b) => b.job)).toEqual(['alpha', 'beta']);
    expect(out.failed).toEqual([]);
    expect((await stored('alpha')).length).toBe(before.alpha + 1);
    expect((await stored('beta')).length).toBe(before.beta + 1);
    expect(await stored('gamma')).toEqual([]);
    const text = await run(['backup', ...jobs]);
    expect(text.stdout).toMatch(/^alpha\s+\S+Z-\w+\s.*\sok$/m);
    expect(text.stdout).toMatch(/^beta\s+\S+Z-\w+\s.*\sok$/m);
  });

  it('a failing job does not hide the others: each outcome is reported, then the error line', async () => {
    const result = await run(['backup', '--job', 'alpha,broken', '--json']);
    expectFailure(result, /^strongbox: error: backup alpha,broken: 1 of 2 backups failed \(broken: /);
    const out = agentBackupRunSchema.parse(result.json);
    expect(out.backups.map((b) => b.job)).toEqual(['alpha']);
    expect(out.failed).toEqual([{ job: 'broken', error: expect.objectContaining({ kind: 'source' }) }]);
    const text = await run(['backup', '--job', 'broken', '--job', 'alpha']);
    expect(text.code).toBe(2);
    expect(text.stdout).toMatch(/^alpha\s.*\sok$/m);
    expect(text.stdout).toMatch(/^broken\s.*FAILED$/m);
  });

  it('verify, list, prune and doctor cover exactly the jobs named', async () => {
    const verify = await run(['verify', '--job', 'alpha', '--job', 'beta', '--json']);
    expect(agentVerifyResultSchema.parse(verify.json).jobs.map((j) => j.job)).toEqual(['alpha', 'beta']);
    const list = await run(['list', '--job', 'beta,alpha', '--json']);
    expect([...new Set(list.json.backups.map((j: { job: string }) => j.job))]).toEqual(['alpha', 'beta']);
    const prune = await run(['prune', '--dry-run', '--job', 'alpha,beta', '--json']);
    expect([...new Set(prune.json.decisions.map((d: { job: string }) => d.job))]).toEqual(['alpha', 'beta']);
    const doctor = await run(['doctor', '--job', 'alpha', '--job', 'gamma', '--json']);
    const subjects: string[] = doctor.json.checks.map((c: { subject: string }) => c.subject);
    expect(subjects.some((s) => s.startsWith('alpha: '))).toBe(true);
    expect(subjects.some((s) => s.startsWith('gamma: '))).toBe(true);
    expect(subjects.some((s) => s.startsWith('beta: ') || s.startsWith('broken: '))).toBe(false);
  });

  it('drill drills every job named, and every job without --job, reporting each', async () => {
    await run(['backup', '--job', 'gamma']);
    const two = await run(['drill', '--job', 'alpha,beta', '--json']);
    expect(two.code, two.stderr).toBe(0);
    const drills = agentDrillRunSchema.parse(two.json).drills;
    expect(drills.map((d) => [d.job, d.findings.length, d.checks.length > 0])).toEqual([
      ['alpha', 0, true],
      ['beta', 0, true],
    ]);
    const all = await run(['drill']);
    expect(all.code).toBe(2);
    expect(all.stdout).toMatch(/drill alpha passed/);
    expect(all.stdout).toMatch(/drill gamma passed/);
    expect(all.stdout).toMatch(/drill broken failed/);
    expect(all.stdout).toMatch(/1 of 4 drills failed: broken$/m);
  });

  it('names every unknown job, and changes nothing', async () => {
    const before = await stored('alpha');
    const result = await run(['backup', '--job', 'alpha,nope', '--job', 'zzz', '--json']);
    expectFailure(
      result,
      /^strongbox: error: backup alpha,nope,zzz: jobs 'nope', 'zzz' are not in the plan \(jobs: alpha, beta, gamma, broken\)$/,
    );
    expect(agentErrorOutputSchema.parse(result.json).error.kind).toBe('plan');
    expect(await stored('alpha')).toEqual(before);
  });
});

describe('one error contract', () => {
  it.each<[string, string[], RegExp, string]>([
    [
      'an unknown option',
      ['backup', '--plan', 'x', '--bogus'],
      /^strongbox: error: backup: unknown option '--bogus' \(see strongbox backup --help\)$/,
      'usage',
    ],
    [
      'a missing --plan',
      ['verify'],
      /^strongbox: error: verify: required option '-p, --plan <file>' not specified/,
      'usage',
    ],
    ['no command', [], /^strongbox: error: no command given \(commands: backup, .*restore, drill/, 'usage'],
    ['an unknown command', ['bakup'], /^strongbox: error: unknown command 'bakup'/, 'usage'],
    [
      'a bad backup id',
      ['restore', '--plan', 'x', '--job', 'a', '--backup-id', 'yesterday'],
      /^strongbox: error: restore: .*'yesterday' is invalid: expected a backup id/,
      'usage',
    ],
    [
      'two jobs for restore',
      ['restore', '--plan', 'x', '--job', 'a,b'],
      /^strongbox: error: restore: .*names one job here/,
      'usage',
    ],
    [
      'an empty job name',
      ['list', '--plan', 'x', '--job', 'a,'],
      /^strongbox: error: list: .*expected job names/,
      'usage',
    ],
    [
      'a missing plan file',
      ['list', '--plan', '/nonexistent/plan.yaml'],
      /^strongbox: error: list: cannot read plan \/nonexistent\/plan.yaml/,
      'plan',
    ],
  ])('%s ends with the error line and one JSON error object', async (_what, args, line, kind) => {
    const text = await strongbox(args);
    expectFailure(text, line, args.length === 0);
    expect(text.stdout).toBe('');
    if (args.length === 0) return; // `strongbox --json` is an unknown option of the root command
    const json = await strongbox([...args, '--json']);
    expectFailure(json, line, args.length === 0);
    const error = agentErrorOutputSchema.parse(json.json).error;
    expect(error.kind).toBe(kind);
    expect(`${AGENT_ERROR_PREFIX}${error.message}`).toBe(json.lastError);
    expect(json.stdout.split('\n')).toHaveLength(2);
  });

  it('a refused connection names the vault it was meant to reach', async () => {
    const port = await closedPort();
    const s3Plan = join(dir, 's3-plan.yaml');
    await writeFile(
      s3Plan,
      `version: 1
vault: { url: "s3://backups", endpoint: "http://127.0.0.1:${port}", forcePathStyle: true }
key: { type: local, path: master.key }
jobs:
  - name: alpha
    source: { kind: files, paths: ["${join(dir, 'src', 'alpha')}"] }
`,
    );
    const result = await strongbox(['list', '--plan', s3Plan, '--json', '-q'], {
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    });
    const line = new RegExp(
      `^strongbox: error: list: .*cannot connect to the vault s3://backups \\(http://127.0.0.1:${port}\\) at 127.0.0.1:${port}: the connection was refused`,
    );
    expectFailure(result, line);
    expect(result.lastError).not.toMatch(/connect ECONNREFUSED/);
    expect(agentErrorOutputSchema.parse(result.json).error.kind).toBe('vault');
  });

  it('a corrupt manifest is named, its bytes are not echoed', async () => {
    const [backupId] = await stored('gamma');
    await writeFile(
      join(dir, 'vault', 'backups', 'gamma', `${backupId}`, 'manifest.json'),
      'GARBAGE{{ secret',
    );
    const result = await run(['restore', '--job', 'gamma', '--backup-id', `${backupId}`, '--json']);
    expectFailure(
      result,
      /^strongbox: error: restore gamma: backups\/gamma\/\S+\/manifest.json: manifest is not valid JSON$/,
    );
    expect(result.stdout + result.stderr).not.toMatch(/GARBAGE|secret/);
    expect(agentErrorOutputSchema.parse(result.json).error.kind).toBe('integrity');
  });

  it('keygen refusing to overwrite says so once, in words', async () => {
    const result = await strongbox(['keygen', join(dir, 'master.key'), '--json']);
    expectFailure(
      result,
      /^strongbox: error: keygen \S+master.key: refusing to overwrite the existing key file \S+: backups made with it need it$/,
    );
    expect(agentErrorOutputSchema.parse(result.json).error.kind).toBe('key');
  });
});

describe('plans that are not plain YAML, or not files, are refused quickly and clearly', () => {
  const good = () => `version: 1
vault: { url: "file://${join(dir, 'vault')}" }
key: { type: local, path: master.key }
jobs:
  - name: alpha
    source: { kind: files, paths: ["${join(dir, 'src', 'alpha')}"] }
`;
  const bomb = [
    'a: &a [x,x,x,x,x,x,x,x,x]',
    ...'bcdefg'
      .split('')
      .map((name, i) => `${name}: &${name} [${Array(9).fill(`*${'abcdefg'[i]}`).join(',')}]`),
  ].join('\n');

  it.each<[string, () => string, RegExp]>([
    [
      'an unknown tag',
      () => good().replace('version: 1', 'version: !!python/object:os.system 1'),
      /plan.yaml:1:10: unknown tag: tag:yaml.org,2002:python\/object:os.system: a plan is plain YAML, without tags$/,
    ],
    [
      'several documents',
      () => `${good()}---\n${good()}`,
      /plan.yaml:7:1: a second YAML document starts here \(---\): a plan is one document$/,
    ],
    [
      'an alias bomb',
      () => `${good()}${bomb}\n`,
      /plan.yaml: its aliases \(\*name\) expand to more than 100 copies/,
    ],
    [
      'deep nesting',
      () => `${good()}x: ${'['.repeat(5000)}${']'.repeat(5000)}\n`,
      /plan.yaml:\d+:\d+: nested too deeply to be a plan \(at most 32 levels\)$/,
    ],
    [
      'moderately deep nesting',
      () => `${good()}x: ${'['.repeat(40)}${']'.repeat(40)}\n`,
      /plan.yaml: nested too deeply to be a plan \(at most 32 levels\)$/,
    ],
    [
      'a NUL byte',
      () => good().replace('jobs:', 'jobs:\0'),
      /plan.yaml:4:6: contains a NUL byte: a plan is a text file/,
    ],
    [
      'a duration without a unit',
      () => `${good()}    limits: { warnAge: 25 }\n`,
      /jobs\[0\].limits.warnAge: 25 has no unit: write e.g. 25h or 25d/,
    ],
    [
      'a cron expression that is not one',
      () => `${good()}    schedule: cron(foo)\n`,
      /jobs\[0\].schedule: cron\(foo\): expected 6 fields/,
    ],
    [
      'a file larger than a plan can be',
      () => `${good()}# ${'x'.repeat(1024 * 1024)}\n`,
      /plan \S+plan.yaml is \d+ bytes, larger than a plan can be \(1048576\)$/,
    ],
  ])('%s', async (_what, text, line) => {
    const file = join(dir, 'bad', 'plan.yaml');
    await mkdir(join(dir, 'bad'), { recursive: true });
    await writeFile(file, text());
    // A hang guard, not a speed check (the test's timeout would only say "timed out"): an alias bomb or
    // a deep nesting parsed naively takes minutes; a loaded CI machine starts the CLI in seconds.
    const started = Date.now();
    const result = await strongbox(['list', '--plan', file, '--json']);
    expectFailure(result, line);
    expect(agentErrorOutputSchema.parse(result.json).error.kind).toBe('plan');
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it.each<[string, () => Promise<string>, RegExp]>([
    ['/dev/zero', async () => '/dev/zero', /plan \/dev\/zero is a device, not a plan file$/],
    ['a directory', async () => dir, /is a directory, not a plan file$/],
    [
      'a FIFO nobody writes to',
      async () => {
        const fifo = join(dir, 'plan.fifo');
        execFileSync('mkfifo', [fifo]);
        return fifo;
      },
      /plan \S+plan.fifo is a FIFO, not a plan file$/,
    ],
  ])('%s given as the plan', async (_what, path, line) => {
    const result = await strongbox(['verify', '--plan', await path()]);
    expectFailure(result, line);
  });
});

/** A Nagios plugin's output read the way Nagios reads it: state, text, perfdata of the first line. */
function readNagios(stdout: string): { state: string; text: string; perfdata: Record<string, string[]> } {
  const [first = '', ...rest] = stdout.split('\n');
  const cut = first.indexOf('|');
  const text = cut < 0 ? first : first.slice(0, cut).trim();
  const state = /^(OK|WARNING|CRITICAL|UNKNOWN): /.exec(text)?.[1] ?? 'NOT A NAGIOS LINE';
  const perfdata: Record<string, string[]> = {};
  const items = cut < 0 ? '' : first.slice(cut + 1).trim();
  for (const item of items.match(/'[^']+'=\S+|[^\s=]+=\S+/g) ?? []) {
    const [label, value] = item.split('=') as [string, string];
    expect(value, item).toMatch(/^-?\d+(\.\d+)?(s|ms|us|%|B|KB|MB|GB|TB|c)?(;-?[\d.]*){0,4}$/);
    perfdata[label.replace(/^'|'$/g, '')] = value.split(';');
  }
  expect(rest.join('\n')).not.toContain('|');
  return { state, text, perfdata };
}

describe('verify --nagios', () => {
  it('is OK with exit 0 and perfdata per job: age against the plan limits, stored size', async () => {
    await run(['backup', '--job', 'beta']);
    const result = await run(['verify', '--job', 'beta', '--nagios']);
    expect(result.code, result.stdout).toBe(0);
    const nagios = readNagios(result.stdout);
    expect(nagios.state).toBe('OK');
    expect(nagios.text).toMatch(/^OK: 1 job verified, newest backup \d+s old$/);
    expect(nagios.perfdata['beta age']).toEqual([expect.stringMatching(/^\d+s$/), '90000', '108000', '0']);
    expect(nagios.perfdata['beta size']?.[0]).toMatch(/^\d+B$/);
  });

  it('is CRITICAL with exit 2 naming the worst finding first', async () => {
    const result = await run(['verify', '--job', 'beta,broken', '--nagios']);
    expect(result.code).toBe(2);
    const nagios = readNagios(result.stdout);
    expect(nagios.state).toBe('CRITICAL');
    expect(nagios.text).toMatch(/^CRITICAL: 1 critical, 0 warning; broken: no complete backup exists$/);
    expect(Object.keys(nagios.perfdata)).toEqual(['beta age', 'beta size']);
  });

  it('is UNKNOWN with exit 3 when the check cannot run', async () => {
    const result = await strongbox(['verify', '--plan', join(dir, 'no-such-plan.yaml'), '--nagios']);
    expect(result.code).toBe(3);
    expect(readNagios(result.stdout).state).toBe('UNKNOWN');
    expect(result.lastError).toMatch(/^strongbox: error: verify: cannot read plan/);
  });
});

describe('doctor', () => {
  const planFor = async (vault: string) => {
    const file = join(dir, `doctor-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(
      file,
      `version: 1
vault: { url: "file://${vault}" }
key: { type: local, path: master.key }
jobs:
  - name: alpha
    source: { kind: files, paths: ["${join(dir, 'src', 'alpha')}"] }
`,
    );
    return file;
  };

  it('finishes within its time limits when a probe hangs (a vault under /proc)', async () => {
    const started = Date.now();
    const result = await strongbox([
      'doctor',
      '--plan',
      await planFor('/proc/sys/strongbox-vault'),
      '--probe-timeout',
      '2',
    ]);
    expect(result.code).toBe(2);
    expect(result.stdout).toMatch(
      /^FAIL {2}vault file:\/\/\/proc\/sys\/strongbox-vault: did not finish within 2s/m,
    );
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('warns when a file vault is on the root file system, as an unmounted NAS would be', async () => {
    const unmounted = `/strongbox-unmounted-${process.pid}`;
    try {
      const result = await strongbox(['doctor', '--plan', await planFor(`${unmounted}/vault`), '--json']);
      const mount = result.json.checks.find((c: { subject: string }) => c.subject === 'vault mount');
      expect(mount).toMatchObject({ ok: false, warning: true });
      expect(mount.detail).toMatch(/is on the root file system, not on a mount of its own/);
      expect(result.code).toBeGreaterThanOrEqual(1);
    } finally {
      await rm(unmounted, { recursive: true, force: true });
    }
  });

  it('says which mount holds a vault that is on one', async () => {
    const result = await strongbox([
      'doctor',
      '--plan',
      await planFor('/proc/strongbox-vault'),
      '--json',
      '--probe-timeout',
      '2',
    ]);
    const mount = result.json.checks.find((c: { subject: string }) => c.subject === 'vault mount');
    expect(mount).toMatchObject({
      ok: true,
      detail: '/proc/strongbox-vault is on the file system mounted at /proc',
    });
  });
});

/** A TCP port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
