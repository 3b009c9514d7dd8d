import { describe, expect, it } from 'vitest';
import { calendarDate, localDate, type Tier, tierOf } from '#core/tiers';

const at = (iso: string) => new Date(iso);
const DAY_MS = 86_400_000;

/**
 * ISO 8601 week numbering straight from its definition, written independently of core/tiers: week 1 of
 * a year is the Monday-to-Sunday week that holds 4 January; weeks count from its Monday; a day before
 * it belongs to the previous ISO year, a day on or after next year's week 1 to the next. Weekdays come
 * from day numbers (1 January 1970 was a Thursday), not from Date's getDay.
 */
function isoWeekOracle(year: number, month: number, day: number): { isoYear: number; isoWeek: number } {
  const dayNumber = Date.UTC(year, month - 1, day) / DAY_MS;
  const mondayOfWeek1 = (y: number) => {
    const jan4 = Date.UTC(y, 0, 4) / DAY_MS;
    return jan4 - ((jan4 + 3) % 7); // (n + 3) % 7: Monday 0 … Sunday 6, since day 0 was a Thursday
  };
  let isoYear = year;
  if (dayNumber >= mondayOfWeek1(year + 1)) isoYear = year + 1;
  else if (dayNumber < mondayOfWeek1(year)) isoYear = year - 1;
  return { isoYear, isoWeek: Math.floor((dayNumber - mondayOfWeek1(isoYear)) / 7) + 1 };
}

/** Every day from 1 January 1999 to 31 December 2031 as [year, month, day]. */
const EVERY_DAY: [number, number, number][] = [];
for (let n = Date.UTC(1999, 0, 1); n <= Date.UTC(2031, 11, 31); n += DAY_MS) {
  const date = new Date(n);
  EVERY_DAY.push([date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()]);
}

describe('calendarDate', () => {
  it.each([
    // [year, month, day, ISO year, ISO week]
    [2020, 12, 31, 2020, 53],
    [2021, 1, 3, 2020, 53],
    [2021, 1, 4, 2021, 1],
    [2026, 12, 28, 2026, 53],
    [2027, 1, 3, 2026, 53],
    [2027, 1, 4, 2027, 1],
    [2024, 12, 30, 2025, 1],
    [2023, 1, 1, 2022, 52],
    [2004, 12, 31, 2004, 53],
    [2005, 1, 2, 2004, 53],
    [1999, 1, 3, 1998, 53],
    [2000, 2, 29, 2000, 9],
  ])('puts %i-%i-%i in ISO week %i-W%i', (year, month, day, isoYear, isoWeek) => {
    expect(calendarDate(year, month, day)).toEqual({ year, month, day, isoYear, isoWeek });
  });

  it('agrees with the ISO 8601 definition on every day from 1999 to 2031', () => {
    // Act
    const wrong = EVERY_DAY.filter(([y, m, d]) => {
      const date = calendarDate(y, m, d);
      const expected = isoWeekOracle(y, m, d);
      return date.isoYear !== expected.isoYear || date.isoWeek !== expected.isoWeek;
    });

    // Assess
    expect(EVERY_DAY).toHaveLength(12_053);
    expect(wrong.slice(0, 5)).toEqual([]);
  });

  it.each([
    [2025, 2, 29],
    [2024, 13, 1],
    [2024, 4, 31],
    [2024, 1, 0],
  ])('refuses %i-%i-%i, which is not a calendar day', (year, month, day) => {
    expect(() => calendarDate(year, month, day)).toThrow(RangeError);
  });
});

describe('localDate', () => {
  it.each([
    // [instant, time zone, year, month, day, ISO year, ISO week]
    ['2024-01-01T12:00:00Z', 'UTC', 2024, 1, 1, 2024, 1], // a Monday: week 1 starts on 1 January
    ['2023-01-01T12:00:00Z', 'UTC', 2023, 1, 1, 2022, 52], // a Sunday: last week of 2022
    ['2020-12-28T12:00:00Z', 'UTC', 2020, 12, 28, 2020, 53], // Monday of week 53 of 2020
    ['2020-12-31T12:00:00Z', 'UTC', 2020, 12, 31, 2020, 53], // Thursday: why 2020 has 53 weeks
    ['2021-01-03T12:00:00Z', 'UTC', 2021, 1, 3, 2020, 53], // Sunday, still week 53 of 2020
    ['2021-01-04T12:00:00Z', 'UTC', 2021, 1, 4, 2021, 1],
    ['2024-12-29T12:00:00Z', 'UTC', 2024, 12, 29, 2024, 52],
    ['2024-12-30T12:00:00Z', 'UTC', 2024, 12, 30, 2025, 1], // week 1 of 2025 starts Monday 30 December
    ['2025-01-01T12:00:00Z', 'UTC', 2025, 1, 1, 2025, 1],
    ['2026-12-31T12:00:00Z', 'UTC', 2026, 12, 31, 2026, 53],
    ['2027-01-03T12:00:00Z', 'UTC', 2027, 1, 3, 2026, 53],
    ['2008-12-29T12:00:00Z', 'UTC', 2008, 12, 29, 2009, 1],
    ['2010-01-03T12:00:00Z', 'UTC', 2010, 1, 3, 2009, 53],
    ['2024-06-15T12:00:00Z', 'UTC', 2024, 6, 15, 2024, 24],
    ['2024-02-29T12:00:00Z', 'UTC', 2024, 2, 29, 2024, 9],
    ['2024-12-31T23:30:00Z', 'Europe/Berlin', 2025, 1, 1, 2025, 1], // already New Year in Berlin
    ['2025-01-01T03:00:00Z', 'America/New_York', 2024, 12, 31, 2025, 1], // still 2024 in New York
    ['2024-12-31T11:30:00Z', 'Pacific/Auckland', 2025, 1, 1, 2025, 1], // UTC+13 in summer
    ['2024-03-10T10:30:00Z', 'America/Los_Angeles', 2024, 3, 10, 2024, 10], // 03:30 PDT, just after the change
  ])('places %s in %s on %i-%i-%i, ISO week %i-W%i', (iso, zone, year, month, day, isoYear, isoWeek) => {
    // Act
    const date = localDate(at(iso), zone);

    // Assess
    expect(date).toEqual({ year, month, day, isoYear, isoWeek });
  });

  it.each([
    // Offsets at 12:00 UTC stay within ±12 h all year (DST included): the local day is the UTC day.
    ['UTC', 0],
    ['Europe/Berlin', 0],
    ['America/New_York', 0],
    ['America/Los_Angeles', 0],
    ['Asia/Kathmandu', 0],
    ['Australia/Sydney', 0],
    ['Pacific/Pago_Pago', 0],
    // UTC+14: at 12:00 UTC it is already the next day.
    ['Pacific/Kiritimati', 1],
  ])('dates 12:00 UTC of every day from 1999 to 2031 in %s by the ISO 8601 definition', (zone, shiftDays) => {
    // Act
    const wrong = EVERY_DAY.filter(([y, m, d]) => {
      const date = localDate(new Date(Date.UTC(y, m - 1, d, 12)), zone);
      const local = new Date(Date.UTC(y, m - 1, d + shiftDays));
      const [ly, lm, ld] = [local.getUTCFullYear(), local.getUTCMonth() + 1, local.getUTCDate()];
      const expected = { year: ly, month: lm, day: ld, ...isoWeekOracle(ly, lm, ld) };
      return JSON.stringify(date) !== JSON.stringify(expected);
    });

    // Assess
    expect(wrong.slice(0, 5)).toEqual([]);
  });

  it('gives week 52 or 53 to the last day of every year from 2015 to 2035, as the calendar does', () => {
    // Prepare: years with 53 ISO weeks in that range (Thursday 1 January, or a leap year starting on Wednesday)
    const longYears = new Set([2015, 2020, 2026, 2032]);
    const years = Array.from({ length: 21 }, (_, i) => 2015 + i);

    // Act
    const weeks = years.map((year) => localDate(at(`${year}-12-28T12:00:00Z`), 'UTC').isoWeek);

    // Assess: 28 December always lies in the last ISO week of its year
    expect(weeks).toEqual(years.map((year) => (longYears.has(year) ? 53 : 52)));
  });
});

describe('tierOf', () => {
  it('makes the first backup ever yearly', () => {
    // Act
    const tier = tierOf(at('2024-06-12T02:00:00Z'), undefined, 'UTC');

    // Assess
    expect(tier).toBe('yearly');
  });

  it.each<[string, string, string, string, Tier]>([
    ['the next day in the same week', '2024-12-10T02:00:00Z', '2024-12-11T02:00:00Z', 'UTC', 'daily'],
    ['a second backup on the same day', '2024-12-11T02:00:00Z', '2024-12-11T14:00:00Z', 'UTC', 'daily'],
    ['a step from Sunday to Monday', '2024-12-08T02:00:00Z', '2024-12-09T02:00:00Z', 'UTC', 'weekly'],
    ['a step from Saturday to Sunday', '2024-12-07T02:00:00Z', '2024-12-08T02:00:00Z', 'UTC', 'daily'],
    ['the first of a month', '2024-11-30T02:00:00Z', '2024-12-01T02:00:00Z', 'UTC', 'monthly'],
    [
      'a month change in the middle of a week',
      '2024-10-31T02:00:00Z',
      '2024-11-01T02:00:00Z',
      'UTC',
      'monthly',
    ],
    ['the first of a year', '2024-12-31T02:00:00Z', '2025-01-01T02:00:00Z', 'UTC', 'yearly'],
    [
      'Monday 30 December, week 1 of the next ISO year but the same calendar month',
      '2024-12-29T02:00:00Z',
      '2024-12-30T02:00:00Z',
      'UTC',
      'weekly',
    ],
    [
      '1 January after a backup on Monday 30 December (same ISO week, new year)',
      '2024-12-30T02:00:00Z',
      '2025-01-01T02:00:00Z',
      'UTC',
      'yearly',
    ],
    [
      '2 January after 1 January (same ISO week, same month)',
      '2025-01-01T02:00:00Z',
      '2025-01-02T02:00:00Z',
      'UTC',
      'daily',
    ],
    [
      'Sunday 3 January 2021, still week 53 of 2020 after Monday 28 December',
      '2020-12-28T02:00:00Z',
      '2021-01-03T02:00:00Z',
      'UTC',
      'yearly',
    ],
    [
      'Monday 4 January 2021, week 1 after week 53',
      '2021-01-03T02:00:00Z',
      '2021-01-04T02:00:00Z',
      'UTC',
      'weekly',
    ],
    [
      'a backup after a failed 1st of the month',
      '2024-11-30T02:00:00Z',
      '2024-12-02T02:00:00Z',
      'UTC',
      'monthly',
    ],
    ['a backup after a failed 1 January', '2024-12-31T02:00:00Z', '2025-01-03T02:00:00Z', 'UTC', 'yearly'],
    ['a backup after a week of failures', '2024-12-06T02:00:00Z', '2024-12-17T02:00:00Z', 'UTC', 'weekly'],
  ])('gives %s the right tier', (_, previous, started, zone, expected) => {
    // Act
    const tier = tierOf(at(started), at(previous), zone);

    // Assess
    expect(tier).toBe(expected);
  });

  it('makes the backup after a failed 1st of the month monthly, and the one after it daily', () => {
    // Prepare: backups on 30 November, (1 December failed), 2 and 3 December
    const started = ['2024-11-30T02:00:00Z', '2024-12-02T02:00:00Z', '2024-12-03T02:00:00Z'].map(at);

    // Act
    const tiers = [
      tierOf(started[1] as Date, started[0], 'UTC'),
      tierOf(started[2] as Date, started[1], 'UTC'),
    ];

    // Assess
    expect(tiers).toEqual(['monthly', 'daily']);
  });

  describe('counts days in the plan time zone', () => {
    const previous = at('2024-12-30T23:30:00Z');
    const started = at('2024-12-31T23:30:00Z');

    it.each<[string, Tier]>([
      ['Europe/Berlin', 'yearly'], // 1 January 2025, 00:30
      ['UTC', 'daily'], // 31 December, 23:30
      ['America/New_York', 'daily'], // 31 December, 18:30
    ])('makes 2024-12-31T23:30Z in %s %s', (zone, expected) => {
      // Act
      const tier = tierOf(started, previous, zone);

      // Assess
      expect(tier).toBe(expected);
    });

    it('makes a backup monthly in UTC but not in Los Angeles when it is still the last day there', () => {
      // Prepare: 2024-04-01T06:30Z is 31 March, 23:30 PDT
      const before = at('2024-03-31T06:30:00Z');
      const now = at('2024-04-01T06:30:00Z');

      // Act
      const tiers = [tierOf(now, before, 'UTC'), tierOf(now, before, 'America/Los_Angeles')];

      // Assess
      expect(tiers).toEqual(['monthly', 'daily']);
    });

    it.each<[string, string, string, Tier]>([
      // A fixed 07:30 UTC schedule: 00:30 PDT before the change on 3 November 2024, 23:30 PST after it.
      ['Saturday to Sunday 00:30 PDT', '2024-11-02T07:30:00Z', '2024-11-03T07:30:00Z', 'daily'],
      [
        'Sunday 00:30 PDT to Sunday 23:30 PST (same local day)',
        '2024-11-03T07:30:00Z',
        '2024-11-04T07:30:00Z',
        'daily',
      ],
      ['Sunday 23:30 PST to Monday 23:30 PST', '2024-11-04T07:30:00Z', '2024-11-05T07:30:00Z', 'weekly'],
      // Local 01:30 every day across the spring change on 10 March 2024 (PST 09:30Z, then PDT 08:30Z).
      ['Saturday 01:30 PST to Sunday 01:30 PST', '2024-03-09T09:30:00Z', '2024-03-10T09:30:00Z', 'daily'],
      ['Sunday 01:30 PST to Monday 01:30 PDT', '2024-03-10T09:30:00Z', '2024-03-11T08:30:00Z', 'weekly'],
    ])('steps across a DST change in America/Los_Angeles: %s', (_, previousIso, startedIso, expected) => {
      // Act
      const tier = tierOf(at(startedIso), at(previousIso), 'America/Los_Angeles');

      // Assess
      expect(tier).toBe(expected);
    });
  });

  it('gives a year of daily backups one yearly, eleven more monthlies and a weekly for each other week', () => {
    // Prepare: 02:00 UTC every day of 2025, after one on 31 December 2024
    const days = Array.from({ length: 365 }, (_, i) => new Date(Date.UTC(2025, 0, 1 + i, 2)));
    let previous = at('2024-12-31T02:00:00Z');

    // Act
    const counts: Record<Tier, number> = { daily: 0, weekly: 0, monthly: 0, yearly: 0 };
    for (const day of days) {
      counts[tierOf(day, previous, 'UTC')] += 1;
      previous = day;
    }

    // Assess: 52 Mondays in 2025 (the first is 6 January); 2 of them fall on a 1st (September, December)
    expect(counts).toEqual({ yearly: 1, monthly: 11, weekly: 50, daily: 365 - 1 - 11 - 50 });
  });
});
