/**
 * Running the concurrent parts of one backup or restore as a unit: the first failure aborts all the
 * others (so nothing waits forever on a stalled stream), every part is awaited before returning (so
 * cleanup such as aborting a multipart upload has happened), and the error thrown is the first one that
 * occurred — the cause, not the AbortErrors it set off. No error is ever swallowed.
 */
import type { Writable } from 'node:stream';

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

/**
 * Concurrent tasks that may be added while others run (one upload per data object as a source yields
 * them): the first failure aborts `controller`, and `wait` returns once every task — also those added
 * while waiting — has settled, throwing that first failure. No error is swallowed.
 * @example const group = new TaskGroup(controller); group.add(upload(a)); group.add(upload(b)); await group.wait();
 */
export class TaskGroup {
  readonly #controller: AbortController;
  readonly #pending = new Set<Promise<unknown>>();
  #first: { error: unknown } | undefined;

  constructor(controller: AbortController) {
    this.#controller = controller;
  }

  /** Adds a running task; returns it, so its result can still be awaited (it is marked as handled). */
  add<T>(task: Promise<T>): Promise<T> {
    const watched = task.catch((error: unknown) => {
      if (!this.#first) {
        this.#first = { error };
        this.#controller.abort(error);
      }
      throw error;
    });
    const settled = watched.then(
      () => {},
      () => {},
    );
    this.#pending.add(settled);
    void settled.then(() => this.#pending.delete(settled));
    watched.catch(() => {});
    return watched;
  }

  /** Waits until no task is pending; throws the first failure, if any. */
  async wait(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
    if (this.#first) throw this.#first.error;
  }
}

/**
 * Waits until a child's stdin takes more (true) or is closed or broken (false), whichever comes first:
 * the backpressure step of feeding a command whose exit may close its stdin at any time.
 */
export function drainedOrClosed(stdin: Writable): Promise<boolean> {
  return new Promise((resolve) => {
    const settle = (more: boolean) => () => {
      stdin.off('drain', onDrain).off('close', onEnd).off('error', onEnd);
      resolve(more);
    };
    const onDrain = settle(true);
    const onEnd = settle(false);
    stdin.once('drain', onDrain).once('close', onEnd).once('error', onEnd);
  });
}
