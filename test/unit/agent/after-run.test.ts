/** agent/after-run's metrics for a verify of a point-in-time job: the recovery window and freshness. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import { reportRun } from '#agent/after-run';
import type { AgentVerifyResult } from '#core/agent-output';
import { testRuntime } from '#test/support/runtime';

describe('reportRun after a verify', () => {
  it('writes the recovery window of a point-in-time job and when its newest backup finished', async () => {
    // Prepare
    const { runtime, dir } = await testRuntime({
      jobs: [{ name: 'pitr', source: { kind: 'postgres-physical', host: '127.0.0.1' } }],
    });
    const textfile = join(dir, 'metrics', 'strongbox.prom');
    runtime.plan = { ...runtime.plan, metrics: { textfile } };
    const json: AgentVerifyResult = {
      jobs: [
        {
          job: 'pitr',
          newestBackupId: '20261201T020000Z-3f9a1c',
          backupAgeSeconds: 3600,
          lastBackupBytes: 4096,
          retained: 3,
          expired: 0,
          incomplete: 0,
          recoveryWindow: { earliest: '2026-11-24T02:05:00.000Z', latest: '2026-12-01T03:00:00.000Z' },
        },
      ],
      findings: [],
    };
    const warnings: string[] = [];

    // Act
    await reportRun(
      runtime,
      {
        command: 'verify',
        operation: 'verify',
        startedAt: new Date(),
        outcome: { exitCode: 0, json, text: '' },
      },
      { fetch: globalThis.fetch, sleep: async () => {}, warn: (line) => warnings.push(line) },
    );

    // Assess
    const families = parsePrometheusTextFormat(await readFile(textfile, 'utf8'));
    const value = (name: string) => Number(families.find((f) => f.name === name)?.metrics[0]?.value);
    expect(warnings).toEqual([]);
    expect(value('strongbox_recovery_window_seconds')).toBe(7 * 86_400 + 55 * 60);
    expect(
      families.find((f) => f.name === 'strongbox_recovery_window_seconds')?.metrics[0]?.labels,
    ).toMatchObject({
      job: 'pitr',
      kind: 'postgres-physical',
      vault: runtime.plan.vault.url,
    });
    expect(value('strongbox_backup_size_bytes')).toBe(4096);
    expect(value('strongbox_backup_age_seconds')).toBeGreaterThanOrEqual(3600);
    expect(value('strongbox_backup_age_seconds')).toBeLessThan(3700);
  });
});
