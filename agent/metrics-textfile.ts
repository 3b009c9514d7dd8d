/**
 * The node_exporter textfile (the plan's `metrics.textfile`), rewritten after each run: the previous
 * file is read back so counters carry on and series of other jobs stay, the run's changes are applied,
 * and the new text replaces the file atomically (a temp file in the same directory, fsync, rename), so
 * node_exporter never reads half a file. The directory is created when missing. Two agents updating
 * the file at once take turns through a lock file beside it.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parsePrometheusText, renderPrometheusText, type Sample, seriesKey } from '#core/prometheus';

/** A change to the file: set a gauge, add to a counter, or drop series that match. */
export type MetricUpdate =
  | { op: 'set'; sample: Sample }
  | { op: 'add'; sample: Sample }
  | { op: 'drop'; name: Sample['name']; where: Readonly<Record<string, string>> };

/** How long a writer waits for the lock before giving up, and when a lock counts as abandoned. */
export const METRICS_LOCK_WAIT_MS = 10_000;
export const METRICS_LOCK_STALE_MS = 60_000;

/**
 * Applies updates to samples: `set` replaces the series, `add` adds to it (a missing counter starts at
 * 0), `drop` removes every series of the metric whose labels include `where`.
 * @example applyMetricUpdates([], [{ op: 'add', sample: { name: 'strongbox_backup_success_total', labels, value: 1 } }])
 */
export function applyMetricUpdates(samples: readonly Sample[], updates: readonly MetricUpdate[]): Sample[] {
  const series = new Map(samples.map((s) => [seriesKey(s), s]));
  for (const update of updates) {
    if (update.op === 'drop') {
      for (const [key, s] of series) {
        const matches = Object.entries(update.where).every(([k, v]) => s.labels[k] === v);
        if (s.name === update.name && matches) series.delete(key);
      }
      continue;
    }
    const key = seriesKey(update.sample);
    const previous = series.get(key)?.value ?? 0;
    const value = update.op === 'add' ? previous + update.sample.value : update.sample.value;
    series.set(key, { ...update.sample, value });
  }
  return [...series.values()];
}

/**
 * Reads the textfile (missing: no samples), applies `updates`, then `finish` on the result (to derive
 * series from others, such as ages from timestamps), and replaces the file atomically.
 * @example await updateMetricsTextfile('/var/lib/node_exporter/textfile/strongbox.prom', updates)
 * @throws the file system's error when the directory cannot be created or written, or the lock not taken.
 */
export async function updateMetricsTextfile(
  path: string,
  updates: readonly MetricUpdate[],
  finish: (samples: Sample[]) => Sample[] = (s) => s,
): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const release = await takeLock(`${path}.lock`);
  try {
    const previous = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return '';
      throw error;
    });
    const text = renderPrometheusText(finish(applyMetricUpdates(parsePrometheusText(previous), updates)));
    await writeAtomically(path, text);
  } finally {
    await release();
  }
}

/**
 * Writes a file by writing `.<name>.<random>.tmp` beside it (not `*.prom`, so node_exporter skips it),
 * syncing it and renaming it over the file; the temp file is removed when anything fails.
 */
export async function writeAtomically(path: string, text: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function takeLock(lockPath: string): Promise<() => Promise<void>> {
  const deadline = Date.now() + METRICS_LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx', 0o644);
      await handle.close();
      return () => rm(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const since = await stat(lockPath).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      // A writer that died holding the lock: its lock goes, and the file it was replacing is intact.
      if (since > METRICS_LOCK_STALE_MS) await rm(lockPath, { force: true });
      else if (Date.now() > deadline) {
        throw new Error(
          `${lockPath} is held by another strongbox run for over ${METRICS_LOCK_WAIT_MS / 1000}s (remove it if no run is active)`,
        );
      } else await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
    }
  }
}
