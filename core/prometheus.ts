/**
 * The metrics Strongbox exports to Prometheus, purely: their names, types and help, and the Prometheus
 * text exposition format (what node_exporter's textfile collector reads) — rendered from samples, and
 * parsed back from a file this module wrote, so counters carry on across runs. Labels are the job,
 * its source kind, the backup's GFS tier and the vault URL; no label ever holds a secret.
 */

/** One metric's definition. */
export interface MetricDefinition {
  type: 'gauge' | 'counter';
  help: string;
}

/** Every metric Strongbox writes, by name. */
export const PROMETHEUS_METRICS = {
  strongbox_backup_age_seconds: {
    type: 'gauge',
    help: 'Seconds since the newest complete backup of the job finished, as of the last run that wrote this file (use strongbox_backup_last_success_timestamp_seconds for alerts)',
  },
  strongbox_backup_last_success_timestamp_seconds: {
    type: 'gauge',
    help: 'Unix time the newest complete backup of the job finished',
  },
  strongbox_backup_size_bytes: {
    type: 'gauge',
    help: 'Stored bytes of the newest complete backup of the job',
  },
  strongbox_backup_success_total: { type: 'counter', help: 'Backups of the job that completed' },
  strongbox_backup_failure_total: {
    type: 'counter',
    help: 'Backups of the job that failed (nothing was committed); tier is empty when the run failed before choosing one',
  },
  strongbox_backup_last_run_success: {
    type: 'gauge',
    help: '1 when the last backup run of the job committed a backup, 0 when it failed',
  },
  strongbox_drill_duration_seconds: {
    type: 'gauge',
    help: 'Seconds the last restore drill of the job took to restore (the measured recovery time)',
  },
  strongbox_drill_success: { type: 'gauge', help: '1 when the last restore drill of the job passed, else 0' },
  strongbox_recovery_window_seconds: {
    type: 'gauge',
    help: 'Seconds from the earliest to the latest point a point-in-time job can be recovered to',
  },
  strongbox_findings: {
    type: 'gauge',
    help: 'Findings of the job of each severity at its last verify, backup or drill',
  },
  strongbox_vault_used_ratio: {
    type: 'gauge',
    help: "Fraction of a file vault's file system in use (0 to 1), as df counts it",
  },
  strongbox_vault_available_bytes: {
    type: 'gauge',
    help: "Bytes left for unprivileged users on a file vault's file system",
  },
  strongbox_last_run_timestamp_seconds: {
    type: 'gauge',
    help: 'Unix time of the last run of each command for the job',
  },
} as const satisfies Record<string, MetricDefinition>;

/** A metric name Strongbox writes. */
export type MetricName = keyof typeof PROMETHEUS_METRICS;

/** One sample: a metric, its labels and its value. */
export interface Sample {
  name: MetricName;
  labels: Readonly<Record<string, string>>;
  value: number;
}

/** The identity of a series: its name and sorted labels. */
export function seriesKey(sample: Pick<Sample, 'name' | 'labels'>): string {
  const labels = Object.keys(sample.labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(sample.labels[k])}`);
  return `${sample.name}{${labels.join(',')}}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

/**
 * The text exposition format of some samples: per metric its HELP and TYPE lines, then its series sorted
 * by labels; metrics in the order of {@link PROMETHEUS_METRICS}; a final newline.
 * @example renderPrometheusText([{ name: 'strongbox_backup_success_total', labels: { job: 'db' }, value: 3 }])
 *   // '# HELP strongbox_backup_success_total …\n# TYPE strongbox_backup_success_total counter\nstrongbox_backup_success_total{job="db"} 3\n'
 */
export function renderPrometheusText(samples: readonly Sample[]): string {
  const lines: string[] = [];
  for (const [name, definition] of Object.entries(PROMETHEUS_METRICS)) {
    const series = samples
      .filter((s) => s.name === name)
      .map((s) => ({ key: seriesKey(s), s }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    if (series.length === 0) continue;
    lines.push(`# HELP ${name} ${definition.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    lines.push(`# TYPE ${name} ${definition.type}`);
    for (const { s } of series) {
      const labels = Object.keys(s.labels)
        .sort()
        .map((k) => `${k}="${escapeLabel(s.labels[k] ?? '')}"`)
        .join(',');
      lines.push(`${name}${labels ? `{${labels}}` : ''} ${formatValue(s.value)}`);
    }
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;

/**
 * The samples of a file {@link renderPrometheusText} wrote, for carrying counters and gauges over to the
 * next run. Lines of other metrics, comments and lines that do not parse are skipped (a damaged file
 * loses those series, never the run).
 * @example parsePrometheusText('strongbox_backup_success_total{job="db"} 3\n') // [{ name: …, labels: { job: 'db' }, value: 3 }]
 */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = SAMPLE_LINE.exec(line.trim());
    if (!match) continue;
    const name = match[1] as string;
    if (!Object.hasOwn(PROMETHEUS_METRICS, name)) continue;
    const labels = parseLabels(match[2] ?? '');
    const value = parseValue(match[3] as string);
    if (!labels || value === undefined) continue;
    samples.push({ name: name as MetricName, labels, value });
  }
  return samples;
}

function parseValue(text: string): number | undefined {
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (text === 'NaN') return Number.NaN;
  const value = Number(text);
  return Number.isFinite(value) ? value : undefined;
}

function parseLabels(text: string): Record<string, string> | undefined {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const name = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"/.exec(text.slice(i));
    if (!name) return text.slice(i).trim() === '' ? labels : undefined;
    i += name[0].length;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) return undefined;
      i++;
      if (c === '"') break;
      if (c === '\\') {
        const next = text[i++];
        value += next === 'n' ? '\n' : (next ?? '');
      } else value += c;
    }
    labels[name[1] as string] = value;
    const comma = /^\s*,?/.exec(text.slice(i));
    i += comma ? comma[0].length : 0;
  }
  return labels;
}
