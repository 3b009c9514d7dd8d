/**
 * A job's `hooks`: commands run around each backup (quiesce an application, flush a cache, take an LVM
 * snapshot and back up from it). `before` hooks run in order and the first failure stops the backup
 * before its source starts; `after` hooks always run, in order, also when a `before` hook or the backup
 * failed, and are not stopped by an aborted backup (only by their own timeout): an application quiesced
 * by `before` gets resumed.
 */
import { startCommand } from '#agent/pipeline/command';
import type { Runtime } from '#agent/runtime';
import { describeError, SourceError } from '#core/errors';
import type { Job } from '#core/plan';

/** What an `after` hook is told about the backup, in STRONGBOX_BACKUP_STATUS and STRONGBOX_BACKUP_ID. */
interface Outcome {
  ok: boolean;
  backupId?: string;
}

/**
 * Runs `backup` between the job's hooks.
 * @throws SourceError when a `before` hook fails (no backup was started), or when an `after` hook fails
 *   (the message says whether the backup itself is complete); otherwise the backup's own error.
 * @example await withHooks(runtime, job, signal, () => backupOnce(runtime, job, options))
 */
export async function withHooks<T extends { backupId: string }>(
  runtime: Runtime,
  job: Job,
  signal: AbortSignal,
  backup: () => Promise<T>,
): Promise<T> {
  const { before, after } = job.hooks;
  if (before.length === 0 && after.length === 0) return backup();
  let result: T | undefined;
  let failure: { error: unknown } | undefined;
  try {
    for (const [index, hook] of before.entries()) {
      const where = `jobs.${job.name}.hooks.before[${index}]`;
      runtime.log(`hook ${where}`);
      try {
        await runHook(runtime, job, hook, where, 'before', signal);
      } catch (error) {
        throw new SourceError(`${describeError(error)}; the backup of ${job.name} was not started`, {
          cause: error,
        });
      }
    }
    result = await backup();
  } catch (error) {
    failure = { error };
  }
  const afterFailures: string[] = [];
  for (const [index, hook] of after.entries()) {
    const where = `jobs.${job.name}.hooks.after[${index}]`;
    runtime.log(`hook ${where}`);
    try {
      await runHook(runtime, job, hook, where, 'after', undefined, {
        ok: result !== undefined,
        backupId: result?.backupId,
      });
    } catch (error) {
      afterFailures.push(describeError(error));
    }
  }
  if (failure) {
    if (afterFailures.length === 0) throw failure.error;
    throw new SourceError(`${describeError(failure.error)}; and then ${afterFailures.join('; ')}`, {
      cause: failure.error,
    });
  }
  if (afterFailures.length > 0) {
    throw new SourceError(
      `backup ${result?.backupId} of ${job.name} is complete, but ${afterFailures.join('; ')}`,
    );
  }
  return result as T;
}

async function runHook(
  runtime: Runtime,
  job: Job,
  hook: Job['hooks']['before'][number],
  where: string,
  phase: 'before' | 'after',
  signal: AbortSignal | undefined,
  outcome?: Outcome,
): Promise<void> {
  const tool = await startCommand(hook, {
    where,
    ctx: { env: runtime.env, secrets: runtime.secrets, signal },
    stdout: 'ignore',
    extraEnv: {
      STRONGBOX_JOB: job.name,
      STRONGBOX_HOOK: phase,
      ...(outcome
        ? {
            STRONGBOX_BACKUP_STATUS: outcome.ok ? 'ok' : 'failed',
            ...(outcome.backupId ? { STRONGBOX_BACKUP_ID: outcome.backupId } : {}),
          }
        : {}),
    },
  });
  await tool.done;
}
