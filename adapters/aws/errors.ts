/**
 * Reading AWS SDK errors by their type and status, never by message text. The one classifier of
 * Strongbox: the S3 vault, the claim store, KMS and the Lambda handlers all ask it whether a failed call
 * may succeed when tried again.
 */

/** The service's error name (`ThrottlingException`, `PreconditionFailed`, …). */
export function awsErrorName(error: unknown): string | undefined {
  const e = error as { name?: string; Code?: string } | undefined;
  return e?.Code ?? e?.name;
}

/** The HTTP status of a failed SDK call, when there was a response. */
export function awsHttpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

/** Error names that mean "slow down or try again": throttling, timeouts, a busy or failing service. */
const RETRYABLE_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
  'TimeoutError',
  // A conditional write that raced another write to the same key (S3 answers 409): try again.
  'ConditionalRequestConflict',
]);

/** Network errors of the connection itself. */
const RETRYABLE_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ECONNABORTED',
]);

/**
 * Whether the same call may succeed when tried again: throttling, 5xx, timeouts and network errors,
 * or what the SDK itself marked retryable.
 * @example isRetryableAwsError(Object.assign(new Error('x'), { name: 'SlowDown' })) // true
 */
export function isRetryableAwsError(error: unknown): boolean {
  const status = awsHttpStatus(error);
  const e = error as { $retryable?: unknown; $fault?: string; code?: string } | undefined;
  return (
    Boolean(e?.$retryable) ||
    e?.$fault === 'server' ||
    (status !== undefined && (status >= 500 || status === 429)) ||
    RETRYABLE_NAMES.has(awsErrorName(error) ?? '') ||
    RETRYABLE_CODES.has(e?.code ?? '')
  );
}

/**
 * What an S3 (or other AWS) server answered, in words, from the error's name and HTTP status only —
 * never the reply's body, which some servers fill with XML or HTML: `the server answered AccessDenied
 * (HTTP 403)`. Looks through `cause`s for the SDK error; undefined when there was no answer (a network
 * error, or not an SDK error at all).
 * @example describeAwsReply(Object.assign(new Error('<Error>…'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }))
 *   // 'the server answered AccessDenied (HTTP 403)'
 */
export function describeAwsReply(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  for (let current = error; current instanceof Error && !seen.has(current); current = current.cause) {
    seen.add(current);
    const status = awsHttpStatus(current);
    if (status === undefined) continue;
    const name = awsErrorName(current);
    const named =
      name && name !== 'Error' && !/^\d+$/.test(name) && name !== 'UnknownError' ? `${name} ` : '';
    return `the server answered ${named}(HTTP ${status})`;
  }
  return undefined;
}

/** `Name: message` of an SDK error, one line, safe to log (SDK errors carry no secrets we sent). */
export function describeAwsError(error: unknown): string {
  const name = awsErrorName(error) ?? 'Error';
  const message = error instanceof Error ? error.message : String(error);
  return `${name}: ${message}`.replace(/\s*\n\s*/g, ' ');
}
