import { describe, expect, it } from 'vitest';
import { PlanError } from '#core/errors';
import { cronTimeFields, localCalendar, nextRun, onCalendar } from '#core/local-schedule';
import { cronFieldValues, parseSchedule } from '#core/schedule';

describe('parseSchedule and cronFieldValues', () => {
  it('takes rate and cron expressions apart', () => {
    expect(parseSchedule('rate(1 day)')).toEqual({ type: 'rate', value: 1, unit: 'days' });
    expect(parseSchedule('rate(12 hours)')).toEqual({ type: 'rate', value: 12, unit: 'hours' });
    expect(parseSchedule('cron(0 2 ? * SUN *)')).toEqual({
      type: 'cron',
      fields: { minutes: '0', hours: '2', dayOfMonth: '?', month: '*', dayOfWeek: 'SUN', year: '*' },
    });
  });

  it.each([
    ['minutes', '0/20', [0, 20, 40]],
    ['minutes', '10-20/5', [10, 15, 20]],
    ['hours', '*/6', [0, 6, 12, 18]],
    ['hours', '1,3,2', [1, 2, 3]],
    ['month', 'JAN,JUL-SEP', [1, 7, 8, 9]],
    ['dayOfWeek', 'MON-FRI', [2, 3, 4, 5, 6]],
    ['dayOfWeek', 'SAT,SUN', [1, 7]],
    ['dayOfMonth', 'L', undefined],
    ['dayOfMonth', '15W', undefined],
    ['dayOfWeek', '6#3', undefined],
    ['dayOfWeek', 'FRIL', undefined],
    ['year', '*', undefined],
    ['year', '2027-2028', [2027, 2028]],
  ] as const)('%s %s matches %j', (field, text, values) => {
    expect(cronFieldValues(field, text)).toEqual(values);
  });
});

describe('localCalendar → systemd OnCalendar and cron', () => {
  it.each([
    ['cron(0 2 * * ? *)', 'UTC', '*-*-* 02:00:00 UTC', '0 2 * * *'],
    [
      'cron(30 2 ? * MON-FRI *)',
      'Europe/Berlin',
      'Mon,Tue,Wed,Thu,Fri *-*-* 02:30:00 Europe/Berlin',
      '30 2 * * 1-5',
    ],
    ['cron(0 4 ? * SAT *)', 'UTC', 'Sat *-*-* 04:00:00 UTC', '0 4 * * 6'],
    ['cron(0 3 ? * SUN *)', 'UTC', 'Sun *-*-* 03:00:00 UTC', '0 3 * * 0'],
    ['cron(0 4 1 * ? *)', 'America/New_York', '*-*-01 04:00:00 America/New_York', '0 4 1 * *'],
    [
      'cron(0/15 8-18 ? * 2-6 *)',
      'UTC',
      'Mon,Tue,Wed,Thu,Fri *-*-* 08..18:00,15,30,45:00 UTC',
      '0,15,30,45 8-18 * * 1-5',
    ],
    ['cron(5 1 1,15 JAN,JUL ? *)', 'UTC', '*-01,07-01,15 01:05:00 UTC', '5 1 1,15 1,7 *'],
    ['rate(15 minutes)', 'UTC', '*-*-* *:00,15,30,45:00 UTC', '0,15,30,45 * * * *'],
    ['rate(6 hours)', 'UTC', '*-*-* 00,06,12,18:00:00 UTC', '0 0,6,12,18 * * *'],
    ['rate(1 hour)', 'UTC', '*-*-* *:00:00 UTC', '0 * * * *'],
    ['rate(1 day)', 'Asia/Tokyo', '*-*-* 00:00:00 Asia/Tokyo', '0 0 * * *'],
    ['rate(1440 minutes)', 'UTC', '*-*-* 00:00:00 UTC', '0 0 * * *'],
  ])('%s in %s', (expression, tz, systemd, cron) => {
    const calendar = localCalendar(expression, tz, 'jobs[0].schedule');
    expect(onCalendar(calendar)).toBe(systemd);
    expect(cronTimeFields(calendar, 'jobs[0].schedule')).toBe(cron);
  });

  it('keeps what only systemd can say: the last day of the month, and years', () => {
    const last = localCalendar('cron(0 3 L * ? *)', 'UTC', 'jobs[1].schedule');
    expect(onCalendar(last)).toBe('*-*~01 03:00:00 UTC');
    expect(() => cronTimeFields(last, 'jobs[1].schedule')).toThrow(
      /^jobs\[1\]\.schedule: cron has no "last day of the month"/,
    );
    const years = localCalendar('cron(0 3 1 1 ? 2027-2028)', 'UTC', 'jobs[1].schedule');
    expect(onCalendar(years)).toBe('2027,2028-01-01 03:00:00 UTC');
    expect(() => cronTimeFields(years, 'jobs[1].schedule')).toThrow(/cron has no year field/);
  });

  it.each([
    ['rate(7 minutes)', /does not divide an hour or a day evenly/],
    ['rate(90 minutes)', /does not divide an hour or a day evenly/],
    ['rate(5 hours)', /does not divide an hour or a day evenly/],
    ['rate(2 days)', /does not divide an hour or a day evenly/],
    ['cron(0 2 15W * ? *)', /day-of-month '15W' \(nearest weekday, W\)/],
    ['cron(0 2 LW * ? *)', /day-of-month 'LW'/],
    ['cron(0 2 ? * 6#3 *)', /day-of-week '6#3' \(the last or nth weekday/],
    ['cron(0 2 ? * 5L *)', /day-of-week '5L'/],
  ])('refuses %s, naming the field', (expression, message) => {
    const refuse = () => localCalendar(expression, 'UTC', 'jobs[2].drill.schedule');
    expect(refuse).toThrow(PlanError);
    expect(refuse).toThrow(
      new RegExp(`^jobs\\[2\\]\\.drill\\.schedule: ${expression.replace(/[()*?#]/g, '\\$&')}: `),
    );
    expect(refuse).toThrow(message);
  });
});

describe('nextRun', () => {
  const next = (expression: string, tz: string, after: string) =>
    nextRun(localCalendar(expression, tz, 'schedule'), new Date(after))?.toISOString();

  it.each([
    ['cron(0 2 * * ? *)', 'UTC', '2026-12-02T01:00:00Z', '2026-12-02T02:00:00.000Z'],
    ['cron(0 2 * * ? *)', 'UTC', '2026-12-02T02:00:00Z', '2026-12-03T02:00:00.000Z'],
    ['cron(0 2 * * ? *)', 'Europe/Berlin', '2026-12-02T03:00:00Z', '2026-12-03T01:00:00.000Z'],
    // Summer time in Berlin: 02:00 local is 00:00 UTC.
    ['cron(0 2 * * ? *)', 'Europe/Berlin', '2026-07-01T03:00:00Z', '2026-07-02T00:00:00.000Z'],
    ['cron(0 4 ? * SAT *)', 'UTC', '2026-12-02T00:00:00Z', '2026-12-05T04:00:00.000Z'],
    ['cron(0 3 L * ? *)', 'UTC', '2027-02-01T00:00:00Z', '2027-02-28T03:00:00.000Z'],
    ['cron(0 23 * * ? *)', 'Asia/Tokyo', '2026-12-31T15:00:00Z', '2027-01-01T14:00:00.000Z'],
    ['rate(15 minutes)', 'UTC', '2026-12-02T01:07:30Z', '2026-12-02T01:15:00.000Z'],
    ['cron(0 3 1 1 ? 2020)', 'UTC', '2026-12-02T00:00:00Z', undefined],
  ])('%s in %s after %s is %s', (expression, tz, after, expected) => {
    expect(next(expression, tz, after)).toBe(expected);
  });
});
