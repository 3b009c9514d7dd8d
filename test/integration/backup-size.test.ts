/**
 * The size check after every backup, through the real CLI: a backup whose source data shrank under half
 * the median of the job's recent backups (the classic dump of an empty database), or grew past
 * `limits.growthRatio` times it, is stored but reported as a warning — exit 1, a `warning:` line naming
 * source bytes, and a `backup-size` finding in `--json`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { agentBackupResultSchema } from '#core/agent-output';
import { strongbox, writeFileVaultPlan } from '#test/support/cli';

let dir: string;
let plan: string;
let data: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-size-'));
  data = join(dir, 'src', 'data.bin');
  await mkdir(join(dir, 'src'), { recursive: true });
  plan = await writeFileVaultPlan(
    dir,
    `  - name: media
    source: { kind: files, paths: ["${join(dir, 'src')}"] }
    limits: { growthRatio: 3 }`,
  );
});

afterAll(() => rm(dir, { recursive: true, force: true }));

/**
 * Every backup of the test starts in one second, as quick runs do, with id suffixes that sort against
 * the order they ran in: "the backups before it" are those stored before it, not those whose ids sort first.
 */
const ids = ['ffffff', 'eeeeee', 'dddddd', 'cccccc', 'bbbbbb'].map((suffix) => `20261202T000000Z-${suffix}`);
const backup = (id: string, ...args: string[]) =>
  strongbox(['backup', '-p', plan, '-q', '--backup-id', id, ...args]);

it('warns, exit 1, when a backup shrinks under half or grows past growthRatio times the recent median', async () => {
  // Prepare: three backups of about 200 KiB
  for (let i = 0; i < 3; i++) {
    await writeFile(data, randomBytes(200 * 1024));
    const usual = await backup(ids[i] as string, '--json');
    expect(usual.code, usual.stderr).toBe(0);
    expect(agentBackupResultSchema.parse(usual.json).findings).toBeUndefined();
  }

  // Act: the source is suddenly almost empty
  await writeFile(data, 'x');
  const shrunk = await backup(ids[3] as string, '--json');

  // Assess: stored, yet a warning
  expect(shrunk.code, shrunk.stderr).toBe(1);
  const result = agentBackupResultSchema.parse(shrunk.json);
  expect(result.findings).toEqual([
    expect.objectContaining({
      severity: 'warning',
      check: 'backup-size',
      backupId: result.backupId,
      message: expect.stringMatching(
        /^newest backup has 10\.0 KiB of source data, under 50% of the median 210\.0 KiB of the 3 backups before it \(source bytes, before compression\)/,
      ),
    }),
  ]);
  const text = await strongbox(['list', '-p', plan, '-q', '--json']);
  expect(text.json.jobs[0].complete).toBe(4);

  // Act: then it grows past three times the median of the four before it (210 KiB)
  await writeFile(data, randomBytes(1024 * 1024));
  const grown = await backup(ids[4] as string);

  // Assess
  expect(grown.code, grown.stderr).toBe(1);
  expect(grown.stdout).toMatch(
    /^warning: media \S+: newest backup has 1\.01 MiB of source data, \d\.\d× the median 210\.0 KiB of the 4 backups before it .*more than the 3× limits\.growthRatio allows$/m,
  );
  expect(grown.stdout).toMatch(/ok, warnings/);
});
