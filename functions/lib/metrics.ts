/**
 * CloudWatch metrics as EMF lines through Powertools. Every Strongbox metric has exactly one dimension,
 * `Job` (core/deployment METRICS_DIMENSION), so alarms and the dashboard can name it: Powertools' default
 * `service` dimension is removed.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { type METRICS, METRICS_DIMENSION, METRICS_NAMESPACE } from '#core/deployment';

export { MetricUnit };

/** A metric name of core/deployment METRICS. */
export type MetricName = (typeof METRICS)[keyof typeof METRICS];

/** One value of a job's metric. */
export interface JobMetric {
  name: MetricName;
  unit: (typeof MetricUnit)[keyof typeof MetricUnit];
  value: number;
}

/**
 * A Powertools Metrics in the Strongbox namespace without default dimensions.
 * @example const metrics = createMetrics('verify')
 */
export function createMetrics(serviceName: string): Metrics {
  const metrics = new Metrics({ namespace: METRICS_NAMESPACE, serviceName });
  metrics.clearDefaultDimensions();
  return metrics;
}

/**
 * Writes one EMF line holding a job's metrics, dimension `Job`.
 * @example publishJobMetrics(metrics, 'app-db', [{ name: METRICS.backupFailed, unit: MetricUnit.Count, value: 1 }])
 */
export function publishJobMetrics(metrics: Metrics, job: string, values: readonly JobMetric[]): void {
  if (values.length === 0) return;
  metrics.addDimension(METRICS_DIMENSION, job);
  for (const { name, unit, value } of values) metrics.addMetric(name, unit, value);
  metrics.publishStoredMetrics();
}
