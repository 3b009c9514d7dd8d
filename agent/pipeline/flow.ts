/**
 * Running the concurrent parts of one backup or restore as a unit: the first failure aborts all the
 * others (so nothing waits forever on a stalled stream), every part is awaited before returning (so
 * cleanup such as aborting a multipart upload has happened), and the error thrown is the first one that
 * occurred — the cause, not the AbortErrors it set off. No error is ever swallowed.
 */

/**
 * Awaits every task; on the first rejection aborts `controller` and, once all have settled, rethrows that
 * first rejection.
 * @example await settleAll([pipelineDone, uploadDone, source.done], controller)
 */
export async function settleAll<T extends readonly Promise<unknown>[]>(
  tasks: T,
  controller: AbortController,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  let first: { error: unknown } | undefined;
  const watched = tasks.map((task) =>
    task.catch((error: unknown) => {
      if (!first) {
        first = { error };
        controller.abort(error);
      }
      throw error;
    }),
  );
  const results = await Promise.allSettled(watched);
  if (first) throw first.error;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as {
    -readonly [K in keyof T]: Awaited<T[K]>;
  };
}
