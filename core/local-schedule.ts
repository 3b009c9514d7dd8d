/**
 * The plan's schedules (EventBridge Scheduler `cron(…)` and `rate(…)` in the plan's time zone) as a
 * host's own scheduler writes them: a systemd timer's `OnCalendar=` and a cron line. A conversion is
 * exact or refused: what systemd or cron cannot express (`L`, `W`, `#`, a rate that does not divide
 * its hour or day) is a PlanError naming the field and what to write instead, never an approximation.
 */
import { PlanError } from './errors';
import { cronFieldValues, parseSchedule } from './schedule';

/** One schedule as sets of values, in `timeZone`. */
export interface LocalCalendar {
  minutes: readonly number[];
  hours: readonly number[];
  /** Days of the month 1–31, `all`, or `last` (the month's last day). */
  days: readonly number[] | 'all' | 'last';
  months: readonly number[] | 'all';
  /** Days of the week, 1 = Sunday … 7 = Saturday (EventBridge's numbering), or `all`. */
  weekdays: readonly number[] | 'all';
  years: readonly number[] | 'all';
  timeZone: string;
}

const SYSTEMD_WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * The values of a schedule expression. `where` names the plan field in messages (`jobs[1].schedule`).
 * A `rate(…)` becomes the calendar it runs on when its interval divides the hour or the day evenly
 * (`rate(15 minutes)` → minutes 0, 15, 30, 45; `rate(6 hours)` → 00:00, 06:00, …; `rate(1 day)` →
 * 00:00); EventBridge starts a rate at an arbitrary moment, so aligning it to the clock keeps its
 * interval and its catch-up meaning.
 * @example localCalendar('cron(30 2 ? * MON-FRI *)', 'Europe/Berlin', 'jobs[0].schedule').weekdays // [2, 3, 4, 5, 6]
 * @throws PlanError naming `where` for what a local scheduler cannot run exactly.
 */
export function localCalendar(expression: string, timeZone: string, where: string): LocalCalendar {
  const refuse = (why: string) => new PlanError([`${where}: ${expression}: ${why}`]);
  const parsed = parseSchedule(expression);
  if (parsed.type === 'rate') {
    const minutes =
      parsed.unit === 'minutes'
        ? parsed.value
        : parsed.unit === 'hours'
          ? parsed.value * 60
          : parsed.value * 1440;
    const base = { days: 'all', months: 'all', weekdays: 'all', years: 'all', timeZone } as const;
    if (minutes < 60 && 60 % minutes === 0) {
      return { ...base, minutes: range(0, 59).filter((m) => m % minutes === 0), hours: range(0, 23) };
    }
    if (minutes % 60 === 0 && minutes <= 1440 && 1440 % minutes === 0) {
      return { ...base, minutes: [0], hours: range(0, 23).filter((h) => h % (minutes / 60) === 0) };
    }
    throw refuse(
      'a local timer runs on the clock, and this interval does not divide an hour or a day evenly; write a cron(…) expression (e.g. cron(0 */2 * * ? *))',
    );
  }
  const { fields } = parsed;
  const values = (name: 'minutes' | 'hours', text: string) => cronFieldValues(name, text) as number[];
  let days: LocalCalendar['days'];
  if (fields.dayOfMonth === '?' || fields.dayOfMonth === '*') days = 'all';
  else if (fields.dayOfMonth === 'L') days = 'last';
  else {
    const list = cronFieldValues('dayOfMonth', fields.dayOfMonth);
    if (!list) {
      throw refuse(
        `day-of-month '${fields.dayOfMonth}' (nearest weekday, W) has no systemd or cron equivalent; name the days instead`,
      );
    }
    days = list;
  }
  let weekdays: LocalCalendar['weekdays'];
  if (fields.dayOfWeek === '?' || fields.dayOfWeek === '*') weekdays = 'all';
  else {
    const list = cronFieldValues('dayOfWeek', fields.dayOfWeek);
    if (!list) {
      throw refuse(
        `day-of-week '${fields.dayOfWeek}' (the last or nth weekday of a month, L or #) has no cron equivalent; name the weekdays or the days of the month instead`,
      );
    }
    weekdays = list.length === 7 ? 'all' : list;
  }
  const months = cronFieldValues('month', fields.month) as number[];
  return {
    minutes: values('minutes', fields.minutes),
    hours: values('hours', fields.hours),
    days: days !== 'all' && days !== 'last' && days.length === 31 ? 'all' : days,
    months: months.length === 12 ? 'all' : months,
    weekdays,
    years: fields.year === '*' ? 'all' : (cronFieldValues('year', fields.year) as number[]),
    timeZone,
  };
}

/** `1,2,3,4,7` → `1..4,7` (systemd) or `1-4,7` (cron), padded to `width` digits. */
function compact(values: readonly number[], to: string, width: number): string {
  const pad = (n: number) => String(n).padStart(width, '0');
  const parts: string[] = [];
  for (let i = 0; i < values.length; ) {
    let j = i;
    while (j + 1 < values.length && (values[j + 1] as number) === (values[j] as number) + 1) j++;
    const [first, last] = [values[i] as number, values[j] as number];
    if (j - i >= 2) parts.push(`${pad(first)}${to}${pad(last)}`);
    else for (let k = i; k <= j; k++) parts.push(pad(values[k] as number));
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * The calendar as a systemd `OnCalendar=` value, time zone included (systemd.time(7)):
 * `Mon..Fri *-*-* 02:30:00 Europe/Berlin`.
 * @example onCalendar(localCalendar('cron(0 2 * * ? *)', 'UTC', 'schedule')) // '*-*-* 02:00:00 UTC'
 */
export function onCalendar(calendar: LocalCalendar): string {
  const list = (values: readonly number[] | 'all', width: number, full: number) =>
    values === 'all' || values.length === full ? '*' : compact(values, '..', width);
  const weekdays =
    calendar.weekdays === 'all'
      ? ''
      : `${calendar.weekdays.map((day) => SYSTEMD_WEEKDAYS[day - 1]).join(',')} `;
  const date =
    calendar.days === 'last'
      ? `${list(calendar.years, 4, -1)}-${list(calendar.months, 2, 12)}~01`
      : `${list(calendar.years, 4, -1)}-${list(calendar.months, 2, 12)}-${list(calendar.days, 2, 31)}`;
  const time = `${list(calendar.hours, 2, 24)}:${list(calendar.minutes, 2, 60)}:00`;
  return `${weekdays}${date} ${time} ${calendar.timeZone}`;
}

/**
 * The calendar as the five time fields of a crontab line (`minute hour day month weekday`, Sunday 0),
 * to run under `CRON_TZ=<timeZone>`.
 * @example cronTimeFields(localCalendar('cron(0 2 ? * SUN *)', 'UTC', 'schedule')) // '0 2 * * 0'
 * @throws PlanError naming `where` for what cron cannot say: the last day of a month, or given years.
 */
export function cronTimeFields(calendar: LocalCalendar, where: string): string {
  if (calendar.days === 'last') {
    throw new PlanError([
      `${where}: cron has no "last day of the month" (L); use a systemd timer, or name the days`,
    ]);
  }
  if (calendar.years !== 'all') {
    throw new PlanError([`${where}: cron has no year field; use a systemd timer, or write * for the year`]);
  }
  const list = (values: readonly number[] | 'all', full: number) =>
    values === 'all' || values.length === full ? '*' : compact(values, '-', 1);
  const weekdays =
    calendar.weekdays === 'all'
      ? '*'
      : compact(
          calendar.weekdays.map((d) => d - 1),
          '-',
          1,
        );
  return [
    list(calendar.minutes, 60),
    list(calendar.hours, 24),
    list(calendar.days, 31),
    list(calendar.months, 12),
    weekdays,
  ].join(' ');
}

/** One formatter per time zone, giving the wall-clock fields of an instant. */
const wallClocks = new Map<string, Intl.DateTimeFormat>();

/** Milliseconds the time zone is ahead of UTC at `instant`. */
function offsetMs(instant: number, timeZone: string): number {
  let format = wallClocks.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    wallClocks.set(timeZone, format);
  }
  const parts = format.formatToParts(instant);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const wall = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return wall - Math.floor(instant / 1000) * 1000;
}

/** The instant of a wall-clock time in a time zone (a time skipped by a DST change moves forward). */
function zonedInstant(year: number, month: number, day: number, hour: number, minute: number, tz: string) {
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  const first = wall - offsetMs(wall, tz);
  return wall - offsetMs(first, tz);
}

/**
 * When the calendar next fires strictly after `after`, or undefined when it never does again (its
 * years are past) within five years. For `schedule status` where no systemd can say.
 * @example nextRun(localCalendar('cron(0 2 * * ? *)', 'UTC', 's'), new Date('2026-12-02T03:00:00Z')) // 2026-12-03T02:00:00Z
 */
export function nextRun(calendar: LocalCalendar, after: Date): Date | undefined {
  const has = (values: readonly number[] | 'all', value: number) =>
    values === 'all' || values.includes(value);
  const start = new Date(after.getTime() + offsetMs(after.getTime(), calendar.timeZone));
  // From the day before (a time zone's day can start before UTC's), five years of days.
  for (let i = -1; i < 5 * 366; i++) {
    const date = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate() + i));
    const [year, month, day] = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
    const lastDay = new Date(Date.UTC(year, month, 0)).getUTCDate();
    if (!has(calendar.years, year) || !has(calendar.months, month)) continue;
    if (calendar.days === 'last' ? day !== lastDay : !has(calendar.days, day)) continue;
    if (!has(calendar.weekdays, date.getUTCDay() + 1)) continue;
    for (const hour of calendar.hours) {
      for (const minute of calendar.minutes) {
        const instant = zonedInstant(year, month, day, hour, minute, calendar.timeZone);
        if (instant > after.getTime()) return new Date(instant);
      }
    }
  }
  return undefined;
}
