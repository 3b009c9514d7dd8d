/**
 * The agent's `--json` contract (core/agent-output) against the real CLI: backup, verify, restore and
 * drill of files jobs on a file vault, each stdout validated with the strict schemas the functions read
 * it with — and every field of each real output renamed in turn, which the schemas must refuse.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import type { z } from 'zod';
import {
  type AgentBackupResult,
  type AgentDrillResult,
  type AgentErrorOutput,
  type AgentRestoreResult,
  agentBackupOutputSchema,
  agentBackupResultSchema,
  agentDrillResultSchema,
  agentErrorOutputSchema,
  agentListResultSchema,
  agentRestoreResultSchema,
  agentVerifyResultSchema,
  type Finding,
  findingSchema,
} from '#core/agent-output';
import type { Finding as CheckFinding, JobSummary } from '#core/checks';
import type * as deployment from '#core/deployment';
import { strongbox } from '#test/support/cli';

let dir: string;
let plan: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-contract-'));
  for (const [path, text] of [
    ['etc/app/app.yaml', 'workers: 4\n'],
    ['etc/app/conf.d/shared.conf', 'x=1\n'],
    ['srv/media/logo.svg', '<svg/>\n'],
  ] as const) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  plan = join(dir, 'plan.yaml');
  await writeFile(
    plan,
    `version: 1
vault: { url: "file://${join(dir, 'vault')}" }
key: { type: local, path: master.key }
jobs:
  - name: config
    source: { kind: files, paths: ["${join(dir, 'etc/app')}"] }
    drill: { rto: 1h }
  - name: media
    source: { kind: files, paths: ["${join(dir, 'srv/media')}"] }
`,
  );
  const keygen = await strongbox(['keygen', join(dir, 'master.key')]);
  expect(keygen.code, keygen.stderr).toBe(0);
});

afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs the CLI with --json and returns its one stdout line parsed, after checking it is exactly one. */
async function json(args: string[]): Promise<unknown> {
  const run = await strongbox([...args, '--plan', plan, '--json']);
  expect(run.code, run.stderr).toBe(0);
  expect(run.stdout.endsWith('\n') && run.stdout.split('\n').length === 2, run.stdout).toBe(true);
  return JSON.parse(run.stdout);
}

/** Parses with a schema; on failure, the issues are the assertion message. */
function conforms<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  expect(parsed.success ? [] : parsed.error.issues, JSON.stringify(value)).toEqual([]);
  return parsed.data as z.output<S>;
}

/** Every way to rename one field of an object (top level, and the first item's of its lists). */
function renamings(value: Record<string, unknown>): [string, Record<string, unknown>][] {
  const out: [string, Record<string, unknown>][] = [];
  for (const key of Object.keys(value)) {
    const { [key]: moved, ...rest } = value;
    out.push([key, { ...rest, [`${key}Renamed`]: moved }]);
  }
  for (const list of ['findings', 'jobs', 'backups']) {
    const items = value[list];
    if (!Array.isArray(items) || typeof items[0] !== 'object') continue;
    for (const [key, item] of renamings(items[0] as Record<string, unknown>)) {
      out.push([`${list}[0].${key}`, { ...value, [list]: [item, ...items.slice(1)] }]);
    }
  }
  return out;
}

/** The real outputs of one run through the CLI, in order: backups, verify, restore, drill. */
const outputs: Record<string, { schema: z.ZodType; value: Record<string, unknown> }> = {};

describe('the real CLI prints what core/agent-output says', () => {
  it('backup over every job: { backups: [...] }, one result per job', async () => {
    const all = conforms(agentBackupOutputSchema, await json(['backup']));
    expect('backups' in all && all.backups.map((b) => b.job)).toEqual(['config', 'media']);
  });

  it('backup --job: one result', async () => {
    const value = await json(['backup', '--job', 'config']);
    const result = conforms(agentBackupResultSchema, value);
    expect(result).toMatchObject({ job: 'config', kind: 'files' });
    outputs.backup = { schema: agentBackupResultSchema, value: value as Record<string, unknown> };
  });

  it('verify --deep: every job, with the deep read of the newest backup', async () => {
    const value = await json(['verify', '--deep']);
    const result = conforms(agentVerifyResultSchema, value);
    expect(result.jobs.map((j) => [j.job, j.deep?.backupId === j.newestBackupId])).toEqual([
      ['config', true],
      ['media', true],
    ]);
    outputs.verify = { schema: agentVerifyResultSchema, value: value as Record<string, unknown> };
  });

  it('restore --target: where it went and the checks against the manifest', async () => {
    const value = await json(['restore', '--job', 'config', '--target', join(dir, 'restored')]);
    const result = conforms(agentRestoreResultSchema, value);
    expect(result).toMatchObject({ job: 'config', mode: 'scratch', target: join(dir, 'restored') });
    outputs.restore = { schema: agentRestoreResultSchema, value: value as Record<string, unknown> };
  });

  it('drill: the measured recovery time against the RTO', async () => {
    const value = await json(['drill', '--job', 'config']);
    const result = conforms(agentDrillResultSchema, value);
    expect(result).toMatchObject({ job: 'config', rtoSeconds: 3600, findings: [] });
    expect(result.durationSeconds).toBeGreaterThan(0);
    outputs.drill = { schema: agentDrillResultSchema, value: value as Record<string, unknown> };
  });

  it('list: the inventory of every job and each backup', async () => {
    const value = await json(['list']);
    const result = conforms(agentListResultSchema, value);
    expect(result.jobs.map((j) => [j.job, j.complete])).toEqual([
      ['config', 2],
      ['media', 1],
    ]);
    expect(result.backups.map((b) => b.status)).toEqual(['complete', 'complete', 'complete']);
    outputs.list = { schema: agentListResultSchema, value: value as Record<string, unknown> };
  });

  it('refuses every real output with any one field renamed', () => {
    expect(Object.keys(outputs)).toEqual(['backup', 'verify', 'restore', 'drill', 'list']);
    const accepted: string[] = [];
    for (const [command, { schema, value }] of Object.entries(outputs)) {
      for (const [field, renamed] of renamings(value)) {
        if (schema.safeParse(renamed).success) accepted.push(`${command}: ${field}`);
      }
    }
    expect(accepted).toEqual([]);
  });
});

describe('findings and errors', () => {
  const finding: Finding = {
    severity: 'critical',
    job: 'app-db',
    check: 'object-missing',
    message: 'backups/app-db/20241206T020000Z-3f9a1c/data.zst.sbx is missing',
    backupId: '20241206T020000Z-3f9a1c',
  };

  it.each([
    ['a renamed field', { ...finding, backupId: undefined, backup: finding.backupId }],
    ['an unknown severity', { ...finding, severity: 'fatal' }],
    ['a backup id that is not one', { ...finding, backupId: 'yesterday' }],
    ['no check', { ...finding, check: undefined }],
  ])('refuses a finding with %s', (_what, value) => {
    expect(findingSchema.safeParse(value).success).toBe(false);
  });

  it.each<AgentErrorOutput>([
    { error: { kind: 'plan', message: 'jobs[0].source.database: required' } },
    {
      error: {
        kind: 'plan',
        message: 'jobs[0].source.database: required (and 1 more, listed above)',
        issues: ['jobs[0].source.database: required', "jobs[0].timeout: 'soon' is not a duration"],
      },
    },
    { error: { kind: 'integrity', message: 'chunk 12 failed authentication' } },
  ])('accepts the error object %j', (value) => {
    expect(agentErrorOutputSchema.parse(value)).toEqual(value);
  });

  it.each([
    ['no kind', { error: { message: 'x' } }],
    ['an unknown kind', { error: { kind: 'oops', message: 'x' } }],
    ['an empty message', { error: { kind: 'vault', message: '' } }],
    ['a message outside error', { error: { kind: 'vault' }, message: 'x' }],
  ])('refuses an error object with %s', (_what, value) => {
    expect(agentErrorOutputSchema.safeParse(value).success).toBe(false);
  });

  it('is the one Finding: core/checks and core/deployment name the same types', () => {
    expectTypeOf<CheckFinding>().toEqualTypeOf<Finding>();
    expectTypeOf<deployment.AgentFinding>().toEqualTypeOf<Finding>();
    expectTypeOf<deployment.AgentBackupResult>().toEqualTypeOf<AgentBackupResult>();
    expectTypeOf<deployment.AgentDrillResult>().toEqualTypeOf<AgentDrillResult>();
    expectTypeOf<deployment.AgentRestoreResult>().toEqualTypeOf<AgentRestoreResult>();
    type VerifyJob = z.output<typeof agentVerifyResultSchema>['jobs'][number];
    expectTypeOf<Omit<VerifyJob, 'deep'>>().toEqualTypeOf<JobSummary>();
  });
});
