/**
 * Grandfather-father-son tiers. A backup is `yearly` when it is the first of its calendar year in the
 * plan's time zone, else `monthly` when first of its month, else `weekly` when first of its ISO week,
 * else `daily`. "First" means the first complete backup: when the one on the 1st fails, the next one
 * that succeeds takes its place, so a month is never left without its monthly backup.
 */

export const TIERS = ['daily', 'weekly', 'monthly', 'yearly'] as const;
export type Tier = (typeof TIERS)[number];

/** The calendar position of an instant in a time zone. */
export interface LocalDate {
  year: number;
  month: number;
  day: number;
  /** ISO week-numbering year and week (weeks start on Monday; week 1 holds the first Thursday). */
  isoYear: number;
  isoWeek: number;
}

/** Calendar date of an instant in an IANA time zone. */
export function localDate(instant: Date, timeZone: string): LocalDate {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
  }).formatToParts(instant);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const year = get('year');
  const month = get('month');
  const day = get('day');
  // ISO week: shift to the Thursday of this week, whose year is the ISO year.
  const date = new Date(Date.UTC(year, month - 1, day));
  const weekday = (date.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  date.setUTCDate(date.getUTCDate() - weekday + 3);
  const isoYear = date.getUTCFullYear();
  const firstThursday = new Date(Date.UTC(isoYear, 0, 4));
  const firstWeekday = (firstThursday.getUTCDay() + 6) % 7;
  firstThursday.setUTCDate(firstThursday.getUTCDate() - firstWeekday + 3);
  const isoWeek = 1 + Math.round((date.getTime() - firstThursday.getTime()) / (7 * 86_400_000));
  return { year, month, day, isoYear, isoWeek };
}

/**
 * The tier of a backup that starts at `startedAt`, given when the previous complete backup of the same
 * job started (undefined for the first backup ever).
 * @example tierOf(new Date('2025-01-01T02:00:00Z'), new Date('2024-12-31T02:00:00Z'), 'UTC') // 'yearly'
 */
export function tierOf(startedAt: Date, previousStartedAt: Date | undefined, timeZone: string): Tier {
  if (!previousStartedAt) return 'yearly';
  const now = localDate(startedAt, timeZone);
  const before = localDate(previousStartedAt, timeZone);
  if (now.year !== before.year) return 'yearly';
  if (now.month !== before.month) return 'monthly';
  if (now.isoYear !== before.isoYear || now.isoWeek !== before.isoWeek) return 'weekly';
  return 'daily';
}
