/**
 * `strongbox list` through the real CLI: the inventory of a file vault with several jobs and tiers, a
 * leftover of a run that was killed, and an unreadable manifest — as text and as `--json` (validated by
 * the output contract's schema).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentListResultSchema } from '#core/agent-output';
import { strongbox, writeFileVaultPlan } from '#test/support/cli';

let dir: string;
let plan: string;
const ids: Record<string, string> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-list-'));
  for (const name of ['config', 'media']) {
    await mkdir(join(dir, 'src', name), { recursive: true });
    await writeFile(join(dir, 'src', name, 'a.txt'), `${name}\n`.repeat(1000));
  }
  plan = await writeFileVaultPlan(
    dir,
    `  - name: config
    source: { kind: files, paths: ["${join(dir, 'src', 'config')}"] }
  - name: media
    source: { kind: files, paths: ["${join(dir, 'src', 'media')}"] }`,
  );
  const backup = async (job: string, id: string, tier: string) => {
    const run = await strongbox([
      'backup',
      '-p',
      plan,
      '-q',
      '--job',
      job,
      '--backup-id',
      id,
      '--tier',
      tier,
    ]);
    expect(run.code, run.stderr).toBe(0);
    ids[`${job}-${tier}`] = id;
  };
  await backup('config', '20261101T020000Z-aaaaaa', 'monthly');
  await backup('config', '20261130T020000Z-bbbbbb', 'weekly');
  await backup('config', '20261201T020000Z-cccccc', 'daily');
  await backup('media', '20261201T030000Z-dddddd', 'yearly');
  // What a backup killed with SIGKILL leaves: a data object and no manifest.
  const leftover = join(dir, 'vault', 'backups', 'media', '20261202T030000Z-eeeeee');
  await mkdir(leftover, { recursive: true });
  await writeFile(join(leftover, 'data.tar.zst.sbx'), Buffer.alloc(4096, 7));
  // A manifest that does not parse.
  const broken = join(dir, 'vault', 'backups', 'config', '20261202T020000Z-ffffff');
  await mkdir(broken, { recursive: true });
  await writeFile(join(broken, 'data.tar.zst.sbx'), Buffer.alloc(100, 1));
  await writeFile(join(broken, 'manifest.json'), '{"format": "strongbox.manifest", ');
});

afterAll(() => rm(dir, { recursive: true, force: true }));

describe('strongbox list', () => {
  it('prints per job a summary by tier with oldest and newest, then every backup with its status', async () => {
    const run = await strongbox(['list', '-p', plan, '-q']);
    expect(run.code, run.stderr).toBe(0);
    const [config, media] = run.stdout.trimEnd().split('\n\n');
    expect(config).toMatch(
      /^job config \(files\): 3 complete backups \(daily 1, weekly 1, monthly 1\), 1 with an unreadable manifest\n/,
    );
    expect(config).toMatch(
      /newest 20261201T020000Z-cccccc, finished \S+( \S+)? ago; oldest 20261101T020000Z-aaaaaa/,
    );
    expect(config).toMatch(/stored \d+(\.\d+)? KiB in the vault for 60\.0 KiB of source data/);
    expect(config).toMatch(/BACKUP +TIER +AGE +SOURCE +STORED +TIME +CLASS +STATUS/);
    expect(config).toMatch(/20261130T020000Z-bbbbbb +weekly +\d+d \d+h +\d.*complete$/m);
    expect(config).toMatch(/20261202T020000Z-ffffff +- .*INVALID MANIFEST$/m);
    expect(media).toMatch(/^job media \(files\): 1 complete backup \(yearly 1\), 1 incomplete\n/);
    // AGE is one or two words (`45s`, `8m 51s`, `1d 0h`): it grows with the real time these ids are read at.
    expect(media).toMatch(/20261202T030000Z-eeeeee +- +\S+( \S+)? +- +4\.00 KiB +- +STANDARD +INCOMPLETE$/m);
    // Sizes are readable, never raw floats.
    expect(run.stdout).not.toMatch(/\d\.\d{4,}/);
  });

  it('--json carries the same inventory, as the output contract says', async () => {
    const run = await strongbox(['list', '-p', plan, '-q', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const result = agentListResultSchema.parse(run.json);
    expect(result.jobs.map((j) => [j.job, j.complete, j.tiers, j.incomplete, j.invalid])).toEqual([
      ['config', 3, { daily: 1, weekly: 1, monthly: 1, yearly: 0 }, 0, 1],
      ['media', 1, { daily: 0, weekly: 0, monthly: 0, yearly: 1 }, 1, 0],
    ]);
    const config = result.jobs[0];
    expect(config?.oldest?.backupId).toBe(ids['config-monthly']);
    expect(config?.newest?.backupId).toBe(ids['config-daily']);
    expect(config?.sourceBytes).toBeGreaterThan(3 * 7000);
    expect(result.backups.map((b) => [b.job, b.backupId, b.status, b.tier ?? null])).toEqual([
      ['config', '20261101T020000Z-aaaaaa', 'complete', 'monthly'],
      ['config', '20261130T020000Z-bbbbbb', 'complete', 'weekly'],
      ['config', '20261201T020000Z-cccccc', 'complete', 'daily'],
      ['config', '20261202T020000Z-ffffff', 'invalid', null],
      ['media', '20261201T030000Z-dddddd', 'complete', 'yearly'],
      ['media', '20261202T030000Z-eeeeee', 'incomplete', null],
    ]);
  });

  it('--job limits the inventory to the jobs named', async () => {
    const run = await strongbox(['list', '-p', plan, '-q', '--json', '--job', 'media']);
    expect(agentListResultSchema.parse(run.json).jobs.map((j) => j.job)).toEqual(['media']);
  });
});
