import { mkdir, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import { applyMetricUpdates, type MetricUpdate, updateMetricsTextfile } from '#agent/metrics-textfile';
import { parsePrometheusText } from '#core/prometheus';
import { tempDir } from '#test/support/temp';

const labels = { job: 'db', kind: 'postgres', tier: 'daily', vault: 'file:///v' };
const success: MetricUpdate = {
  op: 'add',
  sample: { name: 'strongbox_backup_success_total', labels, value: 1 },
};

describe('applyMetricUpdates', () => {
  it('adds to counters, replaces gauges and drops series by label', () => {
    const first = applyMetricUpdates([], [success, success]);
    expect(first).toEqual([{ name: 'strongbox_backup_success_total', labels, value: 2 }]);
    const sized = applyMetricUpdates(first, [
      { op: 'set', sample: { name: 'strongbox_backup_size_bytes', labels, value: 10 } },
      { op: 'drop', name: 'strongbox_backup_size_bytes', where: { job: 'db' } },
      {
        op: 'set',
        sample: { name: 'strongbox_backup_size_bytes', labels: { ...labels, tier: 'weekly' }, value: 20 },
      },
    ]);
    expect(sized).toContainEqual({ name: 'strongbox_backup_success_total', labels, value: 2 });
    expect(sized.filter((s) => s.name === 'strongbox_backup_size_bytes')).toEqual([
      { name: 'strongbox_backup_size_bytes', labels: { ...labels, tier: 'weekly' }, value: 20 },
    ]);
  });
});

describe('updateMetricsTextfile', () => {
  it('creates a missing directory and carries counters across runs', async () => {
    const dir = await tempDir('strongbox-prom-');
    const path = join(dir, 'not', 'yet', 'strongbox.prom');
    await updateMetricsTextfile(path, [success]);
    await updateMetricsTextfile(path, [success]);
    const families = parsePrometheusTextFormat(await readFile(path, 'utf8'));
    expect(families.find((f) => f.name === 'strongbox_backup_success_total')?.metrics).toEqual([
      { value: '2', labels },
    ]);
  });

  it('replaces the file by rename, leaving no temp file, so a reader never sees half a file', async () => {
    // Prepare: a file with many series, and a reader polling it while writers replace it
    const dir = await tempDir('strongbox-prom-');
    const path = join(dir, 'strongbox.prom');
    const many: MetricUpdate[] = Array.from({ length: 300 }, (_, i) => ({
      op: 'set',
      sample: { name: 'strongbox_backup_size_bytes', labels: { ...labels, job: `job-${i}` }, value: i },
    }));
    await updateMetricsTextfile(path, many);
    // Held open, the first file's inode cannot be freed and given to a later temp file.
    const first = await open(path, 'r');
    const inode = (await first.stat()).ino;
    let reading = true;
    let reads = 0;
    const partial: number[] = [];
    const reader = (async () => {
      while (reading) {
        const text = await readFile(path, 'utf8');
        reads++;
        const sizes = parsePrometheusText(text).filter((s) => s.name === 'strongbox_backup_size_bytes');
        if (sizes.length !== 300 || !text.endsWith('\n')) partial.push(sizes.length);
      }
    })();
    // Act: 20 runs, 4 at a time (they take turns through the lock)
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 4 }, () => updateMetricsTextfile(path, [...many, success])));
    }
    reading = false;
    await reader;
    // Assess
    expect(reads).toBeGreaterThan(0);
    expect(partial).toEqual([]);
    expect((await stat(path)).ino).not.toBe(inode);
    await first.close();
    expect(await readdir(dir)).toEqual(['strongbox.prom']);
    const total = parsePrometheusText(await readFile(path, 'utf8')).find(
      (s) => s.name === 'strongbox_backup_success_total',
    );
    expect(total?.value).toBe(20);
  });

  it('leaves the previous file intact and no temp file when the new one cannot be put in place', async () => {
    const dir = await tempDir('strongbox-prom-');
    const path = join(dir, 'strongbox.prom');
    await mkdir(path); // a directory where the file should be: rename fails
    await writeFile(join(path, 'keep'), 'x');
    await expect(updateMetricsTextfile(path, [success])).rejects.toThrow();
    expect((await readdir(dir)).sort()).toEqual(['strongbox.prom']);
    expect(await readdir(path)).toEqual(['keep']);
  });
});
