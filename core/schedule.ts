/**
 * EventBridge Scheduler expressions as the plan writes them, parsed for real so a typo fails at
 * `strongbox doctor` or `cdk synth` instead of at deploy time (or never):
 * `cron(minutes hours day-of-month month day-of-week year)` — six fields, exactly one of day-of-month
 * and day-of-week `?` — and `rate(value unit)` with a positive value and a unit of minutes, hours or
 * days (singular for 1, plural otherwise), as the Scheduler API accepts them.
 */

interface CronField {
  name: string;
  min: number;
  max: number;
  /** Names the field takes instead of numbers (JAN → 1, SUN → 1). */
  names?: readonly string[];
  /** Whether `?` is allowed (day-of-month, day-of-week). */
  question?: boolean;
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const WEEKDAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

const FIELDS: readonly CronField[] = [
  { name: 'minutes', min: 0, max: 59 },
  { name: 'hours', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31, question: true },
  { name: 'month', min: 1, max: 12, names: MONTHS },
  { name: 'day-of-week', min: 1, max: 7, names: WEEKDAYS, question: true },
  { name: 'year', min: 1970, max: 2199 },
];

/**
 * What is wrong with a schedule expression, in words; undefined when the Scheduler accepts it.
 * @example scheduleProblem('cron(0 2 * * ? *)') // undefined
 * @example scheduleProblem('rate(0 minutes)') // 'rate(0 minutes): the value must be a whole number of at least 1'
 */
export function scheduleProblem(expression: string): string | undefined {
  const rate = /^rate\((.*)\)$/.exec(expression);
  if (rate) return rateProblem(rate[1] as string, expression);
  const cron = /^cron\((.*)\)$/.exec(expression);
  if (cron) return cronProblem(cron[1] as string, expression);
  return `'${expression}' must be cron(minutes hours day-of-month month day-of-week year) or rate(value unit), e.g. cron(0 2 * * ? *) or rate(12 hours)`;
}

function rateProblem(body: string, expression: string): string | undefined {
  const match = /^(\S+) (\S+)$/.exec(body.trim());
  if (!match) return `${expression}: expected rate(value unit), e.g. rate(12 hours)`;
  const [, value, unit] = match as unknown as [string, string, string];
  if (!/^\d+$/.test(value) || Number(value) < 1) {
    return `${expression}: the value must be a whole number of at least 1`;
  }
  const singular = ['minute', 'hour', 'day'];
  const plural = ['minutes', 'hours', 'days'];
  if (![...singular, ...plural].includes(unit)) {
    return `${expression}: the unit must be minutes, hours or days, got '${unit}'`;
  }
  if (Number(value) === 1 && !singular.includes(unit))
    return `${expression}: write rate(1 ${unit.slice(0, -1)})`;
  if (Number(value) > 1 && !plural.includes(unit)) return `${expression}: write rate(${value} ${unit}s)`;
  return undefined;
}

function cronProblem(body: string, expression: string): string | undefined {
  const parts = body.trim().split(/\s+/);
  if (parts.length !== 6) {
    return `${expression}: expected 6 fields (minutes hours day-of-month month day-of-week year), got ${parts.length}`;
  }
  for (const [i, field] of FIELDS.entries()) {
    const problem = fieldProblem(parts[i] as string, field);
    if (problem) return `${expression}: ${field.name} '${parts[i]}': ${problem}`;
  }
  const [dayOfMonth, dayOfWeek] = [parts[2], parts[4]];
  if ((dayOfMonth === '?') === (dayOfWeek === '?')) {
    return `${expression}: exactly one of day-of-month and day-of-week must be '?' (e.g. cron(0 2 * * ? *) daily, cron(0 2 ? * SUN *) on Sundays)`;
  }
  return undefined;
}

function fieldProblem(text: string, field: CronField): string | undefined {
  if (text === '?') return field.question ? undefined : `'?' is only allowed in day-of-month and day-of-week`;
  for (const element of text.split(',')) {
    const problem = elementProblem(element, field);
    if (problem) return problem;
  }
  return undefined;
}

function elementProblem(element: string, field: CronField): string | undefined {
  if (element === '') return 'an empty list element';
  if (field.name === 'day-of-month' && /^(L|LW|\d{1,2}W)$/.test(element)) {
    return element.endsWith('W') && element !== 'LW' ? valueProblem(element.slice(0, -1), field) : undefined;
  }
  if (field.name === 'day-of-week') {
    if (element === 'L') return undefined;
    const last = /^(\w+)L$/.exec(element);
    if (last) return valueProblem(last[1] as string, field);
    const nth = /^(\w+)#(\d+)$/.exec(element);
    if (nth) {
      return Number(nth[2]) >= 1 && Number(nth[2]) <= 5
        ? valueProblem(nth[1] as string, field)
        : `the week after # must be 1 to 5`;
    }
  }
  const [range, step, extra] = element.split('/');
  if (extra !== undefined) return `more than one '/'`;
  if (step !== undefined && (!/^\d+$/.test(step) || Number(step) < 1)) {
    return `the increment after '/' must be a whole number of at least 1`;
  }
  if (range === '*') return undefined;
  const [from, to, more] = (range as string).split('-');
  if (more !== undefined) return `more than one '-'`;
  const low = fieldValue(from as string, field);
  if (low === undefined) return valueProblem(from as string, field);
  if (to === undefined) return undefined;
  const high = fieldValue(to, field);
  if (high === undefined) return valueProblem(to, field);
  if (high < low) return `the range runs backwards (${from} is after ${to})`;
  return undefined;
}

function fieldValue(text: string, field: CronField): number | undefined {
  const named = field.names?.indexOf(text.toUpperCase()) ?? -1;
  if (named >= 0) return named + 1;
  if (!/^\d+$/.test(text)) return undefined;
  const value = Number(text);
  return value >= field.min && value <= field.max ? value : undefined;
}

function valueProblem(text: string, field: CronField): string | undefined {
  if (fieldValue(text, field) !== undefined) return undefined;
  const names = field.names ? ` or ${field.names[0]}-${field.names.at(-1)}` : '';
  return `'${text}' is not a ${field.name} value (${field.min}-${field.max}${names})`;
}

/** The six fields of a `cron(…)` expression, as written. */
export interface CronFields {
  minutes: string;
  hours: string;
  dayOfMonth: string;
  month: string;
  dayOfWeek: string;
  year: string;
}

/** A schedule expression taken apart: `rate(value unit)` or the six fields of `cron(…)`. */
export type ParsedSchedule =
  | { type: 'rate'; value: number; unit: 'minutes' | 'hours' | 'days' }
  | { type: 'cron'; fields: CronFields };

/**
 * Takes a valid schedule expression apart (rate units made plural).
 * @example parseSchedule('rate(1 day)') // { type: 'rate', value: 1, unit: 'days' }
 * @throws Error when {@link scheduleProblem} finds a problem (validate first; the plan does).
 */
export function parseSchedule(expression: string): ParsedSchedule {
  const problem = scheduleProblem(expression);
  if (problem) throw new Error(problem);
  const rate = /^rate\((.*)\)$/.exec(expression);
  if (rate) {
    const [value, unit] = (rate[1] as string).trim().split(' ') as [string, string];
    return {
      type: 'rate',
      value: Number(value),
      unit: unit.replace(/s?$/, 's') as 'minutes' | 'hours' | 'days',
    };
  }
  const body = (/^cron\((.*)\)$/.exec(expression) as RegExpExecArray)[1] as string;
  const [minutes, hours, dayOfMonth, month, dayOfWeek, year] = body.trim().split(/\s+/) as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  return { type: 'cron', fields: { minutes, hours, dayOfMonth, month, dayOfWeek, year } };
}

/** Index in the cron expression of each field of {@link CronFields}. */
const FIELD_INDEX: Readonly<Record<keyof CronFields, number>> = {
  minutes: 0,
  hours: 1,
  dayOfMonth: 2,
  month: 3,
  dayOfWeek: 4,
  year: 5,
};

/**
 * Every value one field of a valid cron expression matches, ascending (`*` → all, `0/15` → 0,15,30,45,
 * `MON-FRI` → 2..6, SUN being 1); undefined for what is not a plain set of values (`?`, `L`, `W`, `#`).
 * A year `*` is undefined too (it has no end).
 * @example cronFieldValues('minutes', '0/20') // [0, 20, 40]
 */
export function cronFieldValues(field: keyof CronFields, text: string): number[] | undefined {
  const spec = FIELDS[FIELD_INDEX[field]] as CronField;
  if (text === '?' || /[LW#]/i.test(text.replace(/[A-Z]{3}/gi, (name) => (spec.names ? 'x' : name)))) {
    return undefined;
  }
  if (field === 'year' && text.includes('*')) return undefined;
  const values = new Set<number>();
  for (const element of text.split(',')) {
    const [range, stepText] = element.split('/') as [string, string | undefined];
    const step = stepText === undefined ? 1 : Number(stepText);
    let low: number;
    let high: number;
    if (range === '*') {
      low = spec.min;
      high = spec.max;
    } else {
      const [from, to] = range.split('-') as [string, string | undefined];
      low = fieldValue(from, spec) as number;
      // `5/15` runs from 5 to the end of the field; `5` alone is one value.
      high = to !== undefined ? (fieldValue(to, spec) as number) : stepText !== undefined ? spec.max : low;
    }
    for (let value = low; value <= high; value += step) values.add(value);
  }
  return [...values].sort((a, b) => a - b);
}
