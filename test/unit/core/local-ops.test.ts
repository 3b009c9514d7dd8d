/** The plan's notify, metrics and storage sections: what they accept and how they refuse. */
import { describe, expect, it } from 'vitest';
import { PlanError } from '#core/errors';
import { validatePlan } from '#core/plan';

const base = {
  version: 1,
  vault: { url: 'file:///srv/vault' },
  key: { type: 'local', path: 'master.key' },
  jobs: [{ name: 'db', source: { kind: 'postgres', database: 'app' } }],
};

function issuesOf(extra: Record<string, unknown>): string[] {
  try {
    validatePlan({ ...base, ...extra });
  } catch (error) {
    if (error instanceof PlanError) return [...error.issues];
    throw error;
  }
  return [];
}

describe('notify, metrics and storage in the plan', () => {
  it('fills in when alerts go out, the sendmail program and the storage thresholds', () => {
    const plan = validatePlan({
      ...base,
      notify: { email: { to: ['ops@example.com'] }, webhook: { url: { file: '/etc/strongbox/hook' } } },
      metrics: { textfile: '/var/lib/node_exporter/textfile/strongbox.prom' },
    });
    expect(plan.notify).toEqual({
      on: ['failure', 'warning'],
      email: { to: ['ops@example.com'], sendmail: '/usr/sbin/sendmail' },
      webhook: { url: { file: '/etc/strongbox/hook' } },
    });
    expect(plan.storage).toEqual({ warnAbovePercent: 80, criticalAbovePercent: 95 });
  });

  it.each([
    ['a notify section without a channel', { notify: { on: ['failure'] } }, 'notify: names no channel'],
    [
      'a webhook URL written into the plan',
      { notify: { slack: { webhookUrl: 'https://hooks.slack.com/services/T/B/x' } } },
      'notify.slack.webhookUrl: must be { env: VARIABLE } or { file: /absolute/path }',
    ],
    [
      'a secret file given relative',
      { notify: { webhook: { url: { file: 'hook-url' } } } },
      'notify.webhook.url',
    ],
    [
      'an unknown notify event',
      { notify: { on: ['always'], email: { to: ['a@b.example'] } } },
      'notify.on[0]',
    ],
    [
      'a textfile node_exporter would not read',
      { metrics: { textfile: '/var/lib/node_exporter/textfile/strongbox.txt' } },
      'metrics.textfile: must end in .prom',
    ],
    [
      'a critical level below the warning level',
      { storage: { warnAbovePercent: 90, criticalAbovePercent: 80 } },
      'storage.criticalAbovePercent: criticalAbovePercent must not be below warnAbovePercent',
    ],
  ])('refuses %s, naming the field', (_, extra, expected) => {
    const issues = issuesOf(extra);
    expect(issues.join('\n')).toContain(expected);
  });
});
