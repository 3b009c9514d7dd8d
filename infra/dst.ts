/**
 * Local times that do not exist on daylight-saving days: EventBridge Scheduler skips a cron run whose
 * local time falls in the gap (02:30 in Europe/Berlin on the last Sunday of March), silently. The CDK app
 * reports such schedules at synth.
 */

const HOUR_MS = 3_600_000;

/** Offset of `zone` from UTC at `instant`, in minutes (Europe/Berlin in summer: 120). */
export function utcOffsetMinutes(zone: string, instant: Date): number {
  const name = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' })
    .formatToParts(instant)
    .find((part) => part.type === 'timeZoneName')?.value;
  const match = /^GMT(?:([+-])(\d{2}):(\d{2}))?$/.exec(name ?? '');
  if (!match) throw new RangeError(`cannot read the UTC offset of ${zone}: '${name}'`);
  if (!match[1]) return 0;
  return (match[1] === '-' ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3]));
}

/** A gap: local wall-clock minutes of the day [start, end) that do not exist on `date` (YYYY-MM-DD). */
export interface DstGap {
  date: string;
  startMinute: number;
  endMinute: number;
}

/** The daylight-saving gaps of `zone` in the 366 days from `from`. */
export function dstGaps(zone: string, from: Date): DstGap[] {
  const gaps: DstGap[] = [];
  for (let t = from.getTime(); t < from.getTime() + 366 * 24 * HOUR_MS; t += 6 * HOUR_MS) {
    const before = utcOffsetMinutes(zone, new Date(t));
    const after = utcOffsetMinutes(zone, new Date(t + 6 * HOUR_MS));
    if (after <= before) continue;
    // The clocks go forward within these six hours: find the minute.
    let low = t;
    let high = t + 6 * HOUR_MS;
    while (high - low > 60_000) {
      const middle = low + Math.floor((high - low) / 2 / 60_000) * 60_000;
      if (utcOffsetMinutes(zone, new Date(middle)) === before) low = middle;
      else high = middle;
    }
    const localStart = new Date(high + before * 60_000);
    const startMinute = localStart.getUTCHours() * 60 + localStart.getUTCMinutes();
    gaps.push({
      date: localStart.toISOString().slice(0, 10),
      startMinute,
      endMinute: startMinute + (after - before),
    });
  }
  return gaps;
}

/** Values of one cron field that is a number or a comma list of numbers; undefined for `*`, ranges, steps. */
function fixedValues(field: string): number[] | undefined {
  if (!/^\d+(,\d+)*$/.test(field)) return undefined;
  return field.split(',').map(Number);
}

/**
 * The runs of a Scheduler `cron(…)` expression that fall in a daylight-saving gap of `zone` within a
 * year from `from`, e.g. `02:30 on 2027-03-28`; empty when none do, or the hours or minutes are not fixed.
 * @example dstSkippedRuns('cron(30 2 * * ? *)', 'Europe/Berlin', new Date('2026-12-01')) // ['02:30 on 2027-03-28']
 */
export function dstSkippedRuns(expression: string, zone: string, from: Date): string[] {
  const cron = /^cron\((.*)\)$/.exec(expression);
  if (!cron) return [];
  const [minutes, hours] = (cron[1] as string).trim().split(/\s+/);
  const mins = fixedValues(minutes ?? '');
  const hrs = fixedValues(hours ?? '');
  if (!mins || !hrs) return [];
  const skipped: string[] = [];
  for (const gap of dstGaps(zone, from)) {
    for (const h of hrs) {
      for (const m of mins) {
        const minute = h * 60 + m;
        if (minute >= gap.startMinute && minute < gap.endMinute) {
          skipped.push(`${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')} on ${gap.date}`);
        }
      }
    }
  }
  return skipped;
}
