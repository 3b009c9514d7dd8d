/**
 * The plan's sections for running a site without AWS, read by the agent itself: `notify` (alerts it sends
 * after each run to a Slack webhook, a generic JSON webhook and e-mail through the host's sendmail),
 * `metrics` (a node_exporter textfile) and `storage` (how full a file vault may get). Secrets — webhook
 * URLs count as secrets — are named by reference (an environment variable or a file), never written
 * into the plan, argv or logs.
 */
import { z } from 'zod';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Where a secret value is read: an environment variable of the agent, or a file (first line, trimmed). */
export const secretValueSchema = z.union(
  [
    z.strictObject({ env: z.string().regex(ENV_NAME, 'must be an environment variable name') }),
    z.strictObject({ file: z.string().startsWith('/', 'must be an absolute path') }),
  ],
  { error: 'must be { env: VARIABLE } or { file: /absolute/path }: a secret is never written in the plan' },
);

/** A secret reference from the plan. */
export type SecretValue = z.output<typeof secretValueSchema>;

/** Which runs alert: `failure` (a run failed), `warning` (warnings or findings), `success` (every run). */
export const NOTIFY_EVENTS = ['failure', 'warning', 'success'] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

/** The `notify:` section: the agent's own alerts, one message per run to each channel configured. */
export const notifySchema = z
  .strictObject({
    /** Which runs send an alert. @default [failure, warning] */
    on: z
      .array(z.enum(NOTIFY_EVENTS))
      .min(1)
      .default(['failure', 'warning'])
      .describe('Which runs send an alert: failure, warning, success.'),
    /** A Slack incoming webhook; its URL is a secret. */
    slack: z
      .strictObject({
        webhookUrl: secretValueSchema.describe(
          'The incoming webhook URL, from { env } or { file }: a secret.',
        ),
      })
      .optional()
      .describe('A Slack incoming webhook.'),
    /** Any HTTP endpoint taking the alert as JSON (core/alerts `Alert`) in a POST; its URL is a secret. */
    webhook: z
      .strictObject({
        url: secretValueSchema.describe('The endpoint URL, from { env } or { file }: a secret.'),
      })
      .optional()
      .describe('Any HTTP endpoint taking the alert as JSON in a POST.'),
    /** E-mail through the host's sendmail (`sendmail -t -oi`; recipients in the headers, not argv). */
    email: z
      .strictObject({
        to: z.array(z.email()).min(1).describe('Recipients.'),
        from: z.email().optional().describe('Sender address; sendmail picks one when absent.'),
        /** The sendmail program: an absolute path, or a name looked up on PATH. @default /usr/sbin/sendmail */
        sendmail: z
          .string()
          .min(1)
          .default('/usr/sbin/sendmail')
          .describe('The sendmail program: an absolute path, or a name looked up on PATH.'),
      })
      .optional()
      .describe("E-mail through the host's sendmail (sendmail -t -oi; recipients in the headers, not argv)."),
  })
  .refine((n) => n.slack || n.webhook || n.email, {
    message: 'names no channel: give slack, webhook or email (or leave notify out)',
  });

/** The validated `notify:` section. */
export type NotifyConfig = z.output<typeof notifySchema>;

/** The `metrics:` section: a Prometheus node_exporter textfile, rewritten atomically after each run. */
export const metricsSchema = z.strictObject({
  /** e.g. /var/lib/node_exporter/textfile/strongbox.prom; node_exporter reads `*.prom` files only. */
  textfile: z
    .string()
    .startsWith('/', 'must be an absolute path')
    .refine((path) => path.endsWith('.prom'), {
      message: 'must end in .prom (node_exporter reads only *.prom files)',
    })
    .describe(
      'The textfile, e.g. /var/lib/node_exporter/textfile/strongbox.prom; node_exporter reads *.prom only.',
    ),
});

/** The validated `metrics:` section. */
export type MetricsConfig = z.output<typeof metricsSchema>;

/** Fill levels of a file vault's file system that warn and are critical (seed WebSCADA: above 80 %). */
export const storageSchema = z
  .strictObject({
    warnAbovePercent: z
      .number()
      .min(1)
      .max(100)
      .default(80)
      .describe("A file vault's file system fuller than this percentage is a warning."),
    criticalAbovePercent: z
      .number()
      .min(1)
      .max(100)
      .default(95)
      .describe("A file vault's file system fuller than this percentage is critical."),
  })
  .refine((s) => s.criticalAbovePercent >= s.warnAbovePercent, {
    message: 'criticalAbovePercent must not be below warnAbovePercent',
    path: ['criticalAbovePercent'],
  });

/** The validated `storage:` section. */
export type StorageConfig = z.output<typeof storageSchema>;

/** The storage watch's thresholds when the plan has no `storage:` section. */
export const DEFAULT_STORAGE: StorageConfig = { warnAbovePercent: 80, criticalAbovePercent: 95 };
