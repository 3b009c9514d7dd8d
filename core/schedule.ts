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
