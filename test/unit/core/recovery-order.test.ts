/** The order of a whole-host recovery: recoveryOrder ascending, ties and unordered jobs in plan order. */
import { expect, it } from 'vitest';
import { PlanError } from '#core/errors';
import { recoveryOrderOf, validatePlan } from '#core/plan';

const files = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  host: 'db1',
  source: { kind: 'files', paths: ['/srv'] },
  ...extra,
});

function plan(
  jobs: Record<string, unknown>[],
  hosts: Record<string, unknown> = {
    db1: { instanceIds: ['i-0123456789abcdef0'] },
    web1: { tags: { role: 'web' } },
  },
) {
  return validatePlan({
    version: 1,
    vault: { url: 'file:///v' },
    key: { type: 'local', path: '/k' },
    hosts,
    jobs,
  });
}

it('orders by recoveryOrder, ties in plan order, jobs without one last in plan order', () => {
  const p = plan([
    files('configs'),
    files('volumes', { recoveryOrder: 30 }),
    files('other', { host: 'web1', recoveryOrder: 1 }),
    files('cache', { recoveryOrder: 20 }),
    files('db', { recoveryOrder: 10 }),
    files('cache2', { recoveryOrder: 20 }),
    files('logs'),
  ]);

  expect(recoveryOrderOf(p, 'db1').map((j) => j.name)).toEqual([
    'db',
    'cache',
    'cache2',
    'volumes',
    'configs',
    'logs',
  ]);
  expect(recoveryOrderOf(p, 'web1').map((j) => j.name)).toEqual(['other']);
});

it.each([
  ['nosuch', /'nosuch' is not one of hosts \(db1, web1\)/],
  ['web1', /no job of the plan runs on host 'web1'/],
])('refuses host %s', (host, message) => {
  const p = plan([files('a')]);
  expect(() => recoveryOrderOf(p, host)).toThrow(PlanError);
  expect(() => recoveryOrderOf(p, host)).toThrow(message);
});

it('refuses a negative or fractional recoveryOrder', () => {
  expect(() => plan([files('a', { recoveryOrder: -1 })])).toThrow(/jobs\[0\]\.recoveryOrder/);
  expect(() => plan([files('a', { recoveryOrder: 1.5 })])).toThrow(/jobs\[0\]\.recoveryOrder/);
});
