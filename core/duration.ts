/**
 * Durations as plans write them: `90`, `36h`, `7d`, `5w`, `12mo`, `7y`. A bare number is days.
 * Months count 30 days and years 365, the way S3 lifecycle rules count them (days since creation).
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

const DURATION = /^(\d+)\s*(s|m|h|d|w|mo|y)$/;

/**
 * Parses a duration into seconds; `undefined` when the text is not a duration.
 * @example parseDurationSeconds('36h') // 129600
 */
export function parseDurationSeconds(value: string | number): number | undefined {
  if (typeof value === 'number')
    return Number.isInteger(value) && value >= 0 ? value * UNIT_SECONDS.d : undefined;
  const match = DURATION.exec(value.trim());
  if (!match) return undefined;
  return Number(match[1]) * UNIT_SECONDS[match[2] as keyof typeof UNIT_SECONDS];
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
