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

const DAY_MS = 86_400_000;

/** One formatter per time zone: making one costs far more than using it. */
const formatters = new Map<string, Intl.DateTimeFormat>();

/**
 * Calendar date of an instant in an IANA time zone, with its ISO week. The one calendar of Strongbox:
 * tiers, tier coverage checks and anything else that asks "which day, week, month is this" use it.
 * @throws RangeError for an unknown time zone.
 * @example localDate(new Date('2024-12-31T23:30:00Z'), 'Europe/Berlin')
 *   // { year: 2025, month: 1, day: 1, isoYear: 2025, isoWeek: 1 }
 */
export function localDate(instant: Date, timeZone: string): LocalDate {
  let format = formatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
    });
    formatters.set(timeZone, format);
  }
  const parts = format.formatToParts(instant);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  return calendarDate(get('year'), get('month'), get('day'));
}

/**
 * The {@link LocalDate} of a calendar day (month 1–12). ISO 8601: weeks start on Monday and week 1 is
 * the week that holds the year's first Thursday, so a week belongs to the ISO year of its Thursday and
 * its number is that Thursday's day of the year divided by seven, rounded up.
 * @throws RangeError for a day that does not exist (2025-02-29).
 * @example calendarDate(2021, 1, 3) // { year: 2021, month: 1, day: 3, isoYear: 2020, isoWeek: 53 }
 */
export function calendarDate(year: number, month: number, day: number): LocalDate {
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) {
    throw new RangeError(`${year}-${month}-${day} is not a calendar day`);
  }
  const weekday = (date.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  const thursday = new Date(date.getTime() + (3 - weekday) * DAY_MS);
  const isoYear = thursday.getUTCFullYear();
  const dayOfYear = (thursday.getTime() - Date.UTC(isoYear, 0, 1)) / DAY_MS + 1;
  return { year, month, day, isoYear, isoWeek: Math.ceil(dayOfYear / 7) };
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
