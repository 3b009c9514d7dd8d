import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyPlanView } from '#agent/copy';
import { PlanError } from '#core/errors';
import {
  copyRetentionOf,
  copyTakesTier,
  findCopy,
  findJob,
  parsePlan,
  retentionOf,
  validatePlan,
} from '#core/plan';
import { minimalPlanData } from '../core/fixtures';

/** Minimal plan data (vault file:///mnt/nas/strongbox) with these copies. */
function withCopies(copies: unknown[], fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...minimalPlanData(), ...fields, copies };
}

function issuesOf(data: unknown): readonly string[] {
  try {
    validatePlan(data);
  } catch (error) {
    if (error instanceof PlanError) return error.issues;
    throw error;
  }
  throw new Error('expected the plan to be rejected');
}

const nas = { name: 'nas', vault: { url: 'file:///mnt/nas2/strongbox' } };
const offsite = {
  name: 'offsite',
  vault: { url: 's3://offsite-backups/site-a', endpoint: 'https://minio.example.net:9000' },
  key: { type: 'local', path: '/etc/strongbox/offsite.key' },
  retention: { weekly: '12w', monthly: '7y' },
  tiers: ['weekly', 'monthly', 'yearly'],
};

describe('copies in the plan', () => {
  it('has none by default', () => {
    expect(validatePlan(minimalPlanData()).copies).toEqual([]);
  });

  it('reads copies with their own vault, key, retention and tier filter', () => {
    // Act
    const plan = validatePlan(withCopies([nas, offsite]));

    // Assess
    expect(findCopy(plan, 'offsite')).toMatchObject({
      key: { type: 'local', path: '/etc/strongbox/offsite.key' },
      retention: { weekly: 84, monthly: 2557 },
      tiers: ['weekly', 'monthly', 'yearly'],
      vault: { url: 's3://offsite-backups/site-a', region: 'us-east-1', storageClass: 'STANDARD' },
    });
    expect(findCopy(plan, 'nas').key).toBeUndefined();
  });

  it.each([
    ['a repeated name', [nas, { ...offsite, name: 'nas' }], "copies[1].name: 'nas' is used by copies[0] too"],
    [
      'the primary vault as a copy',
      [{ name: 'self', vault: { url: 'file:///mnt/nas/strongbox/' } }],
      "copies[0].vault.url: 'file:///mnt/nas/strongbox/' is the primary vault (vault.url): a copy must be another vault",
    ],
    [
      'two copies in one vault',
      [nas, { name: 'nas2', vault: { url: 'file:///mnt/nas2/strongbox' } }],
      "copies[1].vault.url: 'file:///mnt/nas2/strongbox' is the vault of copies[0] too",
    ],
    [
      'an unknown tier',
      [{ ...nas, tiers: ['hourly'] }],
      'copies[0].tiers[0]: must be one of daily, weekly, monthly, yearly',
    ],
    [
      'an empty tier filter',
      [{ ...nas, tiers: [] }],
      'copies[0].tiers: names no tier: leave tiers out to copy every tier',
    ],
    ['a repeated tier', [{ ...nas, tiers: ['weekly', 'weekly'] }], 'copies[0].tiers: names weekly twice'],
    ['a bad name', [{ ...nas, name: 'Off Site' }], 'copies[0].name: must be lowercase letters'],
    [
      'a vault that is no URL',
      [{ name: 'nas', vault: { url: '/mnt/nas' } }],
      'copies[0].vault.url: must be file:///absolute/path',
    ],
    [
      'a retention without unit',
      [{ ...nas, retention: { daily: 3 } }],
      'copies[0].retention.daily: 3 has no unit',
    ],
    ['a pointInTime retention', [{ ...nas, retention: { pointInTime: '7d' } }], 'copies[0].retention'],
    ['no vault', [{ name: 'nas' }], 'copies[0].vault'],
  ])('refuses %s, naming where', (_what, copies, expected) => {
    const issues = issuesOf(withCopies(copies));
    expect(issues.some((issue) => issue.startsWith(expected))).toBe(true);
  });

  it('tells the copies there are when one is not in the plan', () => {
    const plan = validatePlan(withCopies([nas]));
    expect(() => findCopy(plan, 'offsite')).toThrow("copy 'offsite' is not in the plan (copies: nas)");
  });

  it("keeps the job's retention for tiers the copy does not name, and filters tiers", () => {
    const plan = validatePlan(withCopies([nas, offsite]));
    const job = plan.jobs[0] as (typeof plan.jobs)[number];
    const copy = findCopy(plan, 'offsite');
    expect(copyRetentionOf(plan, job, copy)).toEqual({
      ...retentionOf(plan, job),
      weekly: 84,
      monthly: 2557,
    });
    expect(copyTakesTier(copy, 'daily')).toBe(false);
    expect(copyTakesTier(copy, 'monthly')).toBe(true);
    expect(copyTakesTier(findCopy(plan, 'nas'), 'daily')).toBe(true);
  });

  it("the copy's view of the plan has its vault, key and retention, and age limits widened by its tiers", () => {
    const plan = validatePlan(withCopies([nas, offsite]));
    const view = copyPlanView(plan, findCopy(plan, 'offsite'));
    const job = findJob(view, plan.jobs[0]?.name as string);
    expect(view.vault.url).toBe('s3://offsite-backups/site-a');
    expect(view.key).toEqual({ type: 'local', path: '/etc/strongbox/offsite.key' });
    expect(view.copies).toEqual([]);
    expect(retentionOf(view, job).weekly).toBe(84);
    // Weekly is the warmest tier it takes: its newest backup may be a week older than the primary's.
    expect(job.limits.warnAge).toBe((plan.jobs[0]?.limits.warnAge as number) + 7 * 86_400);
    expect(copyPlanView(plan, findCopy(plan, 'nas')).key).toEqual(plan.key);
  });
});

describe('examples/modax-local.yaml', () => {
  it('shows the 3-2-1 layout without AWS: local NAS daily, remote NAS weekly, S3-compatible monthly', () => {
    const path = join(import.meta.dirname, '../../../examples/modax-local.yaml');
    const plan = parsePlan(readFileSync(path, 'utf8'), 'examples/modax-local.yaml');
    expect(plan.vault.url).toMatch(/^file:\/\//);
    expect(plan.key.type).toBe('local');
    expect(plan.copies.map((c) => [c.name, c.vault.url.split(':')[0], c.tiers])).toEqual([
      ['remote-nas', 'file', ['weekly', 'monthly', 'yearly']],
      ['offsite', 's3', ['monthly', 'yearly']],
    ]);
    expect(findCopy(plan, 'offsite').vault.endpoint).toBeDefined();
    expect(findCopy(plan, 'offsite').key?.type).toBe('local');
  });
});
