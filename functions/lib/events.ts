/**
 * The events and payloads the handlers accept, as zod schemas: anything else is refused with one
 * message per bad field before anything starts. docs/functions.md shows an example of each.
 */
import { z } from 'zod';

const JOB_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** A job name as plans spell it. */
export const jobName = z.string().regex(JOB_NAME, 'must be a job name (lowercase letters, digits, dashes)');

/** ISO 8601 time with a zone, e.g. `2024-12-06T02:00:00Z`. */
export const isoTime = z.iso.datetime({
  offset: true,
  message: 'must be an ISO 8601 time, e.g. 2024-12-06T02:00:00Z',
});

/** Scheduler target input of backup and drill schedules (core/deployment `JobScheduleInput`). */
export const jobScheduleSchema = z.strictObject({
  job: jobName,
  scheduledTime: isoTime.optional(),
});

/** Scheduler target input of the verify schedule (core/deployment `VerifyScheduleInput`), or a manual run. */
export const verifyInputSchema = z.strictObject({
  jobs: z.array(jobName).min(1).optional(),
  /** Bytes of newest backups the run may read to compare checksums (0: none). */
  checksumBudgetBytes: z.number().int().min(0).optional(),
  /**
   * Publish the metrics only (backup age, size, findings), read no checksums and send no alert: the
   * hourly run that keeps the backup-age alarm within a job's criticalAge; alerts come from the daily run.
   */
  metricsOnly: z.boolean().optional(),
});

/** The EventBridge event SSM sends when one host's invocation of a command changes status. */
export const commandStatusEventSchema = z.object({
  source: z.literal('aws.ssm'),
  'detail-type': z.literal('EC2 Command Invocation Status-change Notification'),
  time: z.string().optional(),
  detail: z.object({
    'command-id': z.string().min(1),
    'instance-id': z.string().min(1),
    'document-name': z.string().min(1),
    status: z.string().min(1),
    'requested-date-time': z.string().optional(),
  }),
});
export type CommandStatusEvent = z.output<typeof commandStatusEventSchema>;

/** The EventBridge event S3 sends when an archive retrieval finished (`Object Restore Completed`). */
export const restoreCompletedEventSchema = z.object({
  source: z.literal('aws.s3'),
  'detail-type': z.literal('Object Restore Completed'),
  detail: z.object({
    bucket: z.object({ name: z.string().min(1) }),
    object: z.object({ key: z.string().min(1) }),
    'restore-expiry-time': z.string().optional(),
    'source-storage-class': z.string().optional(),
  }),
});
export type RestoreCompletedEvent = z.output<typeof restoreCompletedEventSchema>;

/** Where an event came from (`aws.ssm`, `aws.s3`), or undefined for a direct invocation. */
export function eventSource(event: unknown): string | undefined {
  if (event === null || typeof event !== 'object') return undefined;
  const source = (event as { source?: unknown }).source;
  return typeof source === 'string' ? source : undefined;
}

/** The SNS event Lambda receives (the parts notify-slack reads). */
export const snsEventSchema = z.object({
  Records: z
    .array(
      z.object({
        Sns: z.object({
          MessageId: z.string().optional(),
          Subject: z.string().nullish(),
          Message: z.string(),
          Timestamp: z.string().optional(),
          MessageAttributes: z
            .record(z.string(), z.object({ Type: z.string(), Value: z.string() }))
            .optional(),
        }),
      }),
    )
    .min(1),
});
export type SnsEvent = z.output<typeof snsEventSchema>;
