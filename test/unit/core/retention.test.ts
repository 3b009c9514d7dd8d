import { describe, expect, it } from 'vitest';
import type { Retention } from '#core/plan';
import {
  type RetainedCandidate,
  retainUntil,
  STORAGE_LADDER,
  selectRetained,
  type TierLifecycle,
  tierLifecycles,
} from '#core/retention';
import { TIERS, type Tier } from '#core/tiers';

const DAY_MS = 86_400_000;
const RETENTION: Retention = { daily: 7, weekly: 35, monthly: 365, yearly: 2555, pointInTime: 7 };
const NOW = new Date('2025-06-15T12:00:00Z');

/** A backup of `tier` that started `ageMs` before NOW. */
function backup(id: string, tier: Tier, ageMs: number): RetainedCandidate {
  return { backupId: id, tier, startedAt: new Date(NOW.getTime() - ageMs) };
}

/** Retention with every tier at `days`. */
function everyTier(days: number): Retention {
  return { daily: days, weekly: days, monthly: days, yearly: days, pointInTime: 7 };
}

describe('selectRetained', () => {
  describe.each(TIERS.map((tier) => [tier, RETENTION[tier]] as const))(
    'a %s backup (kept %i days)',
    (tier, limit) => {
      const newest = backup('newest', 'daily', 0);

      it.each([
        ['one day before the limit', (limit - 1) * DAY_MS, true],
        ['one millisecond before the limit', limit * DAY_MS - 1, true],
        ['exactly at the limit', limit * DAY_MS, false],
        ['a day past the limit', (limit + 1) * DAY_MS, false],
      ])('is %s: kept %s', (_, ageMs, kept) => {
        // Prepare
        const candidate = backup('candidate', tier, ageMs);

        // Act
        const decisions = selectRetained([newest, candidate], RETENTION, NOW);

        // Assess
        expect(decisions.find((d) => d.backup === candidate)?.keep).toBe(kept);
      });
    },
  );

  it('says why it keeps or drops each backup', () => {
    // Prepare
    const backups = [backup('a', 'daily', 2 * DAY_MS), backup('b', 'daily', 9 * DAY_MS + 3_600_000)];

    // Act
    const reasons = selectRetained(backups, RETENTION, NOW).map((d) => [d.backup.backupId, d.keep, d.reason]);

    // Assess
    expect(reasons).toEqual([
      ['a', true, 'daily, 2d old, kept 7d'],
      ['b', false, 'daily, 9d old, past 7d'],
    ]);
  });

  it('always keeps the newest backup, even when its tier has expired', () => {
    // Prepare: the job stopped backing up a year ago
    const backups = [backup('old', 'daily', 400 * DAY_MS), backup('older', 'daily', 401 * DAY_MS)];

    // Act
    const decisions = selectRetained(backups, RETENTION, NOW);

    // Assess
    expect(decisions.map((d) => [d.backup.backupId, d.keep, d.reason])).toEqual([
      ['old', true, 'newest backup (daily expired)'],
      ['older', false, 'daily, 401d old, past 7d'],
    ]);
  });

  it('keeps only one backup when all have expired', () => {
    // Prepare
    const backups = [30, 20, 10].map((days) => backup(`d${days}`, 'daily', days * DAY_MS));

    // Act
    const kept = selectRetained(backups, RETENTION, NOW).filter((d) => d.keep);

    // Assess
    expect(kept.map((d) => d.backup.backupId)).toEqual(['d10']);
  });

  it('orders decisions newest first, whatever the input order', () => {
    // Prepare
    const backups = [
      backup('b', 'weekly', 3 * DAY_MS),
      backup('d', 'yearly', 300 * DAY_MS),
      backup('a', 'daily', DAY_MS),
      backup('c', 'monthly', 40 * DAY_MS),
    ];

    // Act
    const order = selectRetained(backups, RETENTION, NOW).map((d) => d.backup.backupId);

    // Assess
    expect(order).toEqual(['a', 'b', 'c', 'd']);
  });

  it('applies each backup its own tier', () => {
    // Prepare: all 40 days old, one of each tier, and a fresh daily
    const backups = [backup('fresh', 'daily', 0), ...TIERS.map((tier) => backup(tier, tier, 40 * DAY_MS))];

    // Act
    const kept = selectRetained(backups, RETENTION, NOW)
      .filter((d) => d.keep)
      .map((d) => d.backup.backupId);

    // Assess
    expect(kept).toEqual(['fresh', 'monthly', 'yearly']);
  });

  it('returns the caller’s own objects', () => {
    // Prepare
    const mine = { ...backup('a', 'daily', 0), manifestKey: 'backups/db/a/manifest.json' };

    // Act
    const [decision] = selectRetained([mine], RETENTION, NOW);

    // Assess
    expect(decision?.backup).toBe(mine);
  });

  it('decides nothing for no backups', () => {
    // Act
    const decisions = selectRetained([], RETENTION, NOW);

    // Assess
    expect(decisions).toEqual([]);
  });
});

describe('tierLifecycles', () => {
  const IA = { storageClass: 'STANDARD_IA', afterDays: 30 } as const;
  const GLACIER = { storageClass: 'GLACIER', afterDays: 90 } as const;
  const DEEP = { storageClass: 'DEEP_ARCHIVE', afterDays: 180 } as const;

  it.each([
    [7, []],
    [35, []],
    [59, []], // 29 days in Standard-IA would be charged 30
    [60, [IA]],
    [119, [IA]],
    [179, [IA]], // 89 days in Glacier would be charged 90
    [180, [IA, GLACIER]],
    [359, [IA, GLACIER]], // 179 days in Deep Archive would be charged 180
    [360, [IA, GLACIER, DEEP]],
    [2555, [IA, GLACIER, DEEP]],
  ])('moves objects kept %i days through %j', (days, expected) => {
    // Act
    const lifecycles = tierLifecycles(everyTier(days));

    // Assess
    for (const lifecycle of lifecycles) expect(lifecycle.transitions).toEqual(expected);
  });

  it('gives one lifecycle per tier with the tier’s retention as expiry', () => {
    // Act
    const lifecycles = tierLifecycles(RETENTION);

    // Assess
    expect(lifecycles).toEqual([
      { tier: 'daily', expirationDays: 7, transitions: [] },
      { tier: 'weekly', expirationDays: 35, transitions: [] },
      { tier: 'monthly', expirationDays: 365, transitions: [IA, GLACIER, DEEP] },
      { tier: 'yearly', expirationDays: 2555, transitions: [IA, GLACIER, DEEP] },
    ]);
  });

  const retentions = Array.from({ length: 3000 }, (_, i) => i + 1);
  const ladders = retentions.map(
    (days) => [days, tierLifecycles(everyTier(days))[0] as TierLifecycle] as const,
  );

  it('uses a class exactly when its minimum storage charge ends by expiry, for every retention up to 3000 days', () => {
    // Act
    const wrong = ladders.filter(([days, lifecycle]) => {
      const expected = STORAGE_LADDER.filter((step) => step.afterDays + step.minimumDays <= days).map(
        ({ storageClass, afterDays }) => ({ storageClass, afterDays }),
      );
      return JSON.stringify(lifecycle.transitions) !== JSON.stringify(expected);
    });

    // Assess
    expect(wrong.map(([days]) => days)).toEqual([]);
  });

  it('never leaves an object in a class for less than its minimum storage duration', () => {
    // Act
    const wrong = ladders.filter(([days, { transitions }]) =>
      transitions.some((t, i) => {
        const leaves = transitions[i + 1]?.afterDays ?? days;
        const minimum = STORAGE_LADDER.find((s) => s.storageClass === t.storageClass)?.minimumDays ?? 0;
        return leaves - t.afterDays < minimum;
      }),
    );

    // Assess
    expect(wrong.map(([days]) => days)).toEqual([]);
  });

  it('respects the gaps S3 requires between transitions and before expiry', () => {
    // Prepare: IA at least 30 days after creation; Glacier 30 after IA; Deep Archive 90 after Glacier
    const gapAfter: Record<string, [string, number][]> = {
      STANDARD_IA: [['CREATED', 30]],
      GLACIER: [['STANDARD_IA', 30]],
      DEEP_ARCHIVE: [['GLACIER', 90]],
    };

    // Act
    const wrong = ladders.filter(([days, { transitions }]) => {
      const dayOf = (name: string) =>
        name === 'CREATED' ? 0 : transitions.find((t) => t.storageClass === name)?.afterDays;
      const gapsBroken = transitions.some((t) =>
        (gapAfter[t.storageClass] ?? []).some(([before, gap]) => {
          const start = dayOf(before);
          return start !== undefined && t.afterDays - start < gap;
        }),
      );
      const last = transitions.at(-1);
      return gapsBroken || (last !== undefined && last.afterDays >= days);
    });

    // Assess
    expect(wrong.map(([days]) => days)).toEqual([]);
  });
});

describe('retainUntil', () => {
  it.each<[Tier, string]>([
    ['daily', '2024-12-13T02:00:00.000Z'],
    ['weekly', '2025-01-10T02:00:00.000Z'],
    ['monthly', '2025-12-06T02:00:00.000Z'],
    ['yearly', '2031-12-05T02:00:00.000Z'],
  ])('keeps a %s backup locked until its retention ends (%s)', (tier, expected) => {
    // Prepare
    const startedAt = new Date('2024-12-06T02:00:00Z');

    // Act
    const until = retainUntil(startedAt, tier, RETENTION);

    // Assess
    expect(until.toISOString()).toBe(expected);
  });
});
