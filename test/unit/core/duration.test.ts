import { describe, expect, it } from 'vitest';
import {
  FOREVER_DAYS,
  formatDuration,
  parseDurationSeconds,
  retentionDays,
  secondsToDays,
} from '#core/duration';

describe('parseDurationSeconds', () => {
  it.each([
    ['90s', 90],
    ['15m', 900],
    ['36h', 129_600],
    ['7d', 604_800],
    ['5w', 3_024_000],
    ['12mo', 31_104_000],
    ['7y', 220_752_000],
    ['0d', 0],
    ['7 d', 604_800],
    [' 36h ', 129_600],
  ])('reads %j as %i seconds', (written, seconds) => {
    // Act
    const parsed = parseDurationSeconds(written);

    // Assess
    expect(parsed).toBe(seconds);
  });

  it('reads m as minutes and mo as months', () => {
    // Act
    const [minutes, months] = [parseDurationSeconds('1m'), parseDurationSeconds('1mo')];

    // Assess
    expect([minutes, months]).toEqual([60, 30 * 86_400]);
  });

  it.each([
    ['a bare number as text', '90'],
    ['an empty string', ''],
    ['an unknown unit', '7days'],
    ['an upper-case unit', '7D'],
    ['a fraction', '1.5h'],
    ['a negative text', '-1d'],
    ['two units', '1d12h'],
    ['a unit alone', 'h'],
  ])('rejects %s', (_, written) => {
    // Act
    const parsed = parseDurationSeconds(written);

    // Assess
    expect(parsed).toBeUndefined();
  });
});

describe('retentionDays', () => {
  it.each([
    ['7d', 7],
    ['36h', 2],
    ['5w', 35],
    // The longest span of that many calendar months: 12 monthly restore points whatever the month.
    ['1mo', 31],
    ['2mo', 62],
    ['12mo', 366],
    ['1y', 366],
    ['7y', 2557],
    ['400y', 146_097],
    ['forever', FOREVER_DAYS],
  ])('keeps %s for %i days', (written, days) => {
    expect(retentionDays(written)).toBe(days);
  });

  it('keeps 12 monthly backups for 12mo in every month of a leap and a common year', () => {
    const days = retentionDays('12mo') as number;
    for (let start = 0; start < 48; start++) {
      // Monthly backups on the 1st; just before the next one, the 12 before it must all be kept.
      const now = Date.UTC(2023, start + 1, 1) - 1;
      const kept = Array.from({ length: 12 }, (_, i) => Date.UTC(2023, start - i, 1)).filter(
        (at) => Math.floor((now - at) / 86_400_000) < days,
      );
      expect(kept).toHaveLength(12);
    }
  });

  it.each(['7', '', 'always', '1.5mo'])('refuses %j', (written) => {
    expect(retentionDays(written)).toBeUndefined();
  });
});

describe('secondsToDays', () => {
  it.each([
    [0, 0],
    [1, 1],
    [86_400, 1],
    [86_401, 2],
    [129_600, 2],
    [7 * 86_400, 7],
  ])('rounds %i seconds up to %i whole days', (seconds, days) => {
    // Act
    const result = secondsToDays(seconds);

    // Assess
    expect(result).toBe(days);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [45, '45s'],
    [59.6, '1m 0s'],
    [60, '1m 0s'],
    [125, '2m 5s'],
    [3_599, '59m 59s'],
    [3_600, '1h 0m'],
    [11_100, '3h 5m'],
    [86_399, '23h 59m'],
    [86_400, '1d 0h'],
    [187_200, '2d 4h'],
    [-5, '0s'],
  ])('writes %d seconds as %s', (seconds, text) => {
    // Act
    const formatted = formatDuration(seconds);

    // Assess
    expect(formatted).toBe(text);
  });
});
