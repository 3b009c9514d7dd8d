import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import { parsePrometheusText, renderPrometheusText, type Sample } from '#core/prometheus';
import { checkVaultFill, type FileSystemUsage, usedRatio } from '#core/storage-watch';

const labels = { job: 'app-db', kind: 'postgres', tier: 'daily', vault: 'file:///srv/vault' };

describe('renderPrometheusText', () => {
  it('writes the text format a Prometheus parser reads: HELP, TYPE, one line per series', () => {
    // Prepare
    const samples: Sample[] = [
      { name: 'strongbox_backup_success_total', labels, value: 3 },
      { name: 'strongbox_backup_success_total', labels: { ...labels, tier: 'weekly' }, value: 1 },
      { name: 'strongbox_backup_size_bytes', labels, value: 123456789 },
      { name: 'strongbox_vault_used_ratio', labels: { vault: 'file:///srv/vault' }, value: 0.8125 },
    ];
    // Act
    const families = parsePrometheusTextFormat(renderPrometheusText(samples));
    // Assess
    const byName = new Map(families.map((f) => [f.name, f]));
    expect(byName.get('strongbox_backup_success_total')?.type).toBe('COUNTER');
    expect(byName.get('strongbox_backup_size_bytes')?.type).toBe('GAUGE');
    expect(byName.get('strongbox_backup_success_total')?.metrics).toEqual(
      expect.arrayContaining([
        { value: '3', labels },
        { value: '1', labels: { ...labels, tier: 'weekly' } },
      ]),
    );
    expect(byName.get('strongbox_backup_size_bytes')?.metrics).toEqual([{ value: '123456789', labels }]);
    expect(byName.get('strongbox_vault_used_ratio')?.metrics[0]?.value).toBe('0.8125');
  });

  it('escapes quotes, backslashes and newlines in label values so parsers read them back', () => {
    const odd = { ...labels, vault: 'file:///srv/a "b"\\c\nd' };
    const text = renderPrometheusText([{ name: 'strongbox_backup_failure_total', labels: odd, value: 2 }]);
    expect(parsePrometheusTextFormat(text)[0]?.metrics[0]?.labels).toEqual(odd);
    expect(parsePrometheusText(text)).toEqual([
      { name: 'strongbox_backup_failure_total', labels: odd, value: 2 },
    ]);
  });

  it('reads back what it wrote, skipping other metrics and damaged lines', () => {
    const samples: Sample[] = [
      { name: 'strongbox_backup_success_total', labels, value: 7 },
      { name: 'strongbox_drill_duration_seconds', labels, value: 12.5 },
    ];
    const text = `${renderPrometheusText(samples)}other_metric{a="b"} 1\nstrongbox_backup_failure_total{job="x 1\n`;
    expect(parsePrometheusText(text)).toEqual(samples);
  });
});

describe('checkVaultFill', () => {
  const usage = (percent: number): FileSystemUsage => ({
    path: '/srv/vault',
    totalBytes: 1000,
    freeBytes: 1000 - percent * 10,
    availableBytes: 1000 - percent * 10,
  });
  const thresholds = { warnAbovePercent: 80, criticalAbovePercent: 95 };

  it.each([
    [79, []],
    [80, []],
    [81, ['warning']],
    [95, ['warning']],
    [96, ['critical']],
  ])('at %i %% full: %j', (percent, severities) => {
    const found = checkVaultFill('file:///srv/vault', usage(percent), thresholds, 'app-db');
    expect(found.map((f) => f.severity)).toEqual(severities);
    for (const f of found) {
      expect(f).toMatchObject({ job: 'app-db', check: 'vault-fill' });
      expect(f.message).toContain(`${percent}.0% full`);
    }
  });

  it('counts the root reserve as used, as df does', () => {
    expect(usedRatio({ path: '/', totalBytes: 100, freeBytes: 30, availableBytes: 25 })).toBeCloseTo(70 / 95);
  });
});
