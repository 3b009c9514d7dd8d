/** Ids of scheduled runs: the same for every invocation of one schedule firing. */
import { createHash } from 'node:crypto';
import { newBackupId } from '#core/backup-id';

/**
 * The id of a scheduled run: the scheduled time, and 6 hex digits of SHA-256 of `name` and time, so
 * every invocation for the same schedule firing computes the same id.
 * @example scheduledRunId('app-db', new Date('2024-12-06T02:00:00Z')) // '20241206T020000Z-…'
 */
export function scheduledRunId(name: string, scheduledTime: Date): string {
  const suffix = createHash('sha256')
    .update(`${name}\n${scheduledTime.toISOString()}`)
    .digest('hex')
    .slice(0, 6);
  return newBackupId(scheduledTime, suffix);
}

/** The scheduled time of an input, or the current second when invoked by hand. */
export function scheduledTimeOf(scheduledTime: string | undefined, now: Date): Date {
  return scheduledTime ? new Date(scheduledTime) : new Date(Math.floor(now.getTime() / 1000) * 1000);
}
