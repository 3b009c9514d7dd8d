/**
 * Captures what the handlers write to stdout and stderr — Powertools' JSON log lines and EMF metric
 * lines — so tests can read metrics and logs, and check that no secret was ever written.
 */
import { afterEach, beforeEach } from 'vitest';

/** One EMF metric line, reduced to what tests read. */
export interface EmfLine {
  namespace: string;
  dimensions: string[][];
  values: Record<string, unknown>;
}

/** What a test wrote, parsed. */
export interface Captured {
  /** Every line written, raw. */
  readonly text: () => string;
  /** JSON log entries (Powertools Logger). */
  readonly logs: () => Record<string, unknown>[];
  /** EMF lines (Powertools Metrics). */
  readonly emf: () => EmfLine[];
  /** Values of one metric for one job, in the order written. */
  readonly metric: (name: string, job: string) => unknown[];
}

/**
 * Captures stdout and stderr around each test of the file that calls it.
 * @example const out = captureOutput(); … expect(out.metric('BackupFailed', 'app-db')).toEqual([1])
 */
export function captureOutput(): Captured {
  let chunks: string[] = [];
  const originals = { out: process.stdout.write, err: process.stderr.write };
  beforeEach(() => {
    chunks = [];
    const capture = (chunk: unknown) => {
      chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      return true;
    };
    process.stdout.write = capture as typeof process.stdout.write;
    process.stderr.write = capture as typeof process.stderr.write;
  });
  afterEach(() => {
    process.stdout.write = originals.out;
    process.stderr.write = originals.err;
  });
  const json = () =>
    chunks
      .join('')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  const emf = () =>
    json()
      .filter((entry) => '_aws' in entry)
      .map((entry) => {
        const aws = entry._aws as { CloudWatchMetrics: { Namespace: string; Dimensions: string[][] }[] };
        const meta = aws.CloudWatchMetrics[0];
        const { _aws, ...values } = entry;
        return { namespace: meta?.Namespace ?? '', dimensions: meta?.Dimensions ?? [], values };
      });
  return {
    text: () => chunks.join(''),
    logs: () => json().filter((entry) => !('_aws' in entry)),
    emf,
    metric: (name, job) =>
      emf().flatMap((line) => (line.values.Job === job && name in line.values ? [line.values[name]] : [])),
  };
}
