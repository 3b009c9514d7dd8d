/** The edge of every handler: logs a failure once, with its type and one-line message, and rethrows. */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { describeError } from '#core/errors';

/**
 * Runs a handler body, adding the Lambda context to the logs and logging any failure before it
 * propagates (so the invocation fails and Lambda's retries and error metrics see it).
 * @example return runLogged(logger, context, 'verify', () => verifyVault(event, services))
 */
export async function runLogged<T>(
  logger: Logger,
  context: Context | undefined,
  name: string,
  body: () => Promise<T>,
): Promise<T> {
  if (context) logger.addContext(context);
  try {
    return await body();
  } catch (error) {
    logger.error(`${name} failed`, {
      errorType: error instanceof Error ? error.name : typeof error,
      error: describeError(error),
    });
    throw error;
  }
}
