/**
 * Durations as plans write them: `90s`, `36h`, `7d`, `5w`, `12mo`, `7y` — always with a unit (a bare
 * `25` could mean hours or days, so it is refused). For ages and timeouts a month counts 30 days and a
 * year 365; a retention counts calendar months and years (see {@link retentionDays}).
 */

const UNIT_SECONDS = {
  s: 1,
  m: 60,
  h: 3_600,
  d: 86_400,
  w: 7 * 86_400,
  mo: 30 * 86_400,
  y: 365 * 86_400,
} as const;

type Unit = keyof typeof UNIT_SECONDS;

const DURATION = /^(\d+)\s*(s|m|h|d|w|mo|y)$/;

/** The units a duration takes, for messages. */
export const DURATION_UNITS_HINT = 's, m, h, d, w, mo or y, e.g. 36h, 7d, 5w, 12mo, 7y';

/** The word a retention takes to keep a tier's backups for good. */
export const FOREVER = 'forever';

/**
 * Days a `forever` retention stands for: S3 lifecycle rules and Object Lock need a day count, so
 * forever is 100 years — longer than any backup is read.
 */
export const FOREVER_DAYS = 36_500;

function split(value: string): { count: number; unit: Unit } | undefined {
  const match = DURATION.exec(value.trim());
  return match ? { count: Number(match[1]), unit: match[2] as Unit } : undefined;
}

/**
 * Parses a duration into seconds; `undefined` when the text is not a duration with a unit.
 * @example parseDurationSeconds('36h') // 129600
 * @example parseDurationSeconds('25') // undefined: a unit is required
 */
export function parseDurationSeconds(value: string): number | undefined {
  const parts = split(value);
  return parts ? parts.count * UNIT_SECONDS[parts.unit] : undefined;
}

/**
 * Days a retention keeps a backup: whole days, rounded up, for `s`…`w`; for months and years the
 * longest span that many calendar months or years can have (`1mo` 31 days, `12mo` and `1y` 366, `7y`
 * 2557), so `12mo` of monthly backups is always 12 monthly restore points, whichever month it is;
 * `forever` is {@link FOREVER_DAYS}.
 * @example retentionDays('12mo') // 366
 */
export function retentionDays(value: string): number | undefined {
  if (value.trim() === FOREVER) return FOREVER_DAYS;
  const parts = split(value);
  if (!parts) return undefined;
  if (parts.unit === 'mo') return longestMonthsDays(parts.count);
  if (parts.unit === 'y') return longestMonthsDays(parts.count * 12);
  return secondsToDays(parts.count * UNIT_SECONDS[parts.unit]);
}

/** The most days `months` consecutive calendar months span (over a 400-year Gregorian cycle). */
function longestMonthsDays(months: number): number {
  if (months === 0) return 0;
  const cycleMonths = 400 * 12;
  const whole = Math.floor(months / cycleMonths);
  const rest = months % cycleMonths;
  let longest = 0;
  // Every start month of the cycle: the span of `rest` months from it (146097 days per 400 years).
  for (let start = 0; start < cycleMonths && rest > 0; start++) {
    const from = Date.UTC(2000 + Math.floor(start / 12), start % 12, 1);
    const to = Date.UTC(2000 + Math.floor((start + rest) / 12), (start + rest) % 12, 1);
    longest = Math.max(longest, (to - from) / 86_400_000);
  }
  return whole * 146_097 + longest;
}

/** Whole days of a number of seconds, rounded up (a retention of 36h keeps for 2 lifecycle days). */
export function secondsToDays(seconds: number): number {
  return Math.ceil(seconds / UNIT_SECONDS.d);
}

/** Short human form of a number of seconds: `3h 5m`, `2d 4h`, `45s`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3_600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h ${Math.floor((s % 3_600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3_600)}h`;
}
