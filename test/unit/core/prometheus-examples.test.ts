/** The Prometheus rules and the Grafana dashboard in examples/ query only metrics Strongbox writes. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PROMETHEUS_METRICS } from '#core/prometheus';

const DIR = join(import.meta.dirname, '../../../examples');
const named = (expr: string) => [...expr.matchAll(/\bstrongbox_[a-z_]+/g)].map((m) => m[0]);

describe('examples/prometheus-rules.yaml', () => {
  const rules = parse(readFileSync(join(DIR, 'prometheus-rules.yaml'), 'utf8')).groups.flatMap(
    (g: { rules: unknown[] }) => g.rules,
  ) as { alert: string; expr: string; labels: { severity: string } }[];

  it("has the Calibrify runbook's BackupFailed rule, critical, and WebSCADA's 80 % fill rule", () => {
    expect(rules.find((r) => r.alert === 'BackupFailed')).toMatchObject({
      expr: 'strongbox_backup_last_run_success != 1',
      for: '1h',
      labels: { severity: 'critical' },
    });
    expect(rules.find((r) => r.alert === 'VaultAlmostFull')?.expr).toBe('strongbox_vault_used_ratio > 0.80');
  });

  it('names only metrics Strongbox writes', () => {
    for (const rule of rules) {
      for (const name of named(rule.expr)) expect(Object.keys(PROMETHEUS_METRICS)).toContain(name);
    }
  });
});

describe('examples/grafana-dashboard.json', () => {
  const dashboard = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8'));
  const exprs: string[] = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) =>
    p.targets.map((t) => t.expr),
  );

  it("charts MODAX's queries: backup age, failure rate, size trend", () => {
    expect(
      exprs.some((e) => e.includes('time() - max by (job) (strongbox_backup_last_success_timestamp_seconds')),
    ).toBe(true);
    expect(exprs.some((e) => e.includes('increase(strongbox_backup_failure_total'))).toBe(true);
    expect(exprs.some((e) => e.includes('strongbox_backup_size_bytes'))).toBe(true);
  });

  it('names only metrics Strongbox writes', () => {
    expect(exprs.length).toBeGreaterThan(0);
    for (const name of exprs.flatMap(named)) expect(Object.keys(PROMETHEUS_METRICS)).toContain(name);
  });
});
