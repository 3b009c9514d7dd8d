/** Every example plan is a valid plan, and the source examples use the kinds they document. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePlan, recoveryOrderOf } from '#core/plan';

const DIR = join(import.meta.dirname, '../../../examples');
// prometheus-rules.yaml is a Prometheus rule file, not a plan (test/unit/core/prometheus-examples.test.ts).
const PLANS = readdirSync(DIR).filter((name) => name.endsWith('.yaml') && name !== 'prometheus-rules.yaml');

describe.each(PLANS)('examples/%s', (name) => {
  it('is a valid plan', () => {
    expect(() => parsePlan(readFileSync(join(DIR, name), 'utf8'), `examples/${name}`)).not.toThrow();
  });
});

it('shows the redis and command sources and hooks', () => {
  const kinds = (name: string) =>
    parsePlan(readFileSync(join(DIR, name), 'utf8')).jobs.map((job) => job.source.kind);
  expect(kinds('webscada.yaml')).toContain('redis');
  expect(kinds('prodstack.yaml')).toEqual(expect.arrayContaining(['postgres', 'redis', 'files', 'command']));
  const volumes = parsePlan(readFileSync(join(DIR, 'prodstack.yaml'), 'utf8')).jobs.find(
    (j) => j.name === 'volumes',
  );
  expect(volumes?.hooks.before).toHaveLength(1);
  expect(volumes?.hooks.after[0]?.timeout).toBe(120);
});

it('shows the influxdb source and whole-host recovery order', () => {
  const webscada = parsePlan(readFileSync(join(DIR, 'webscada.yaml'), 'utf8'));
  const prodstack = parsePlan(readFileSync(join(DIR, 'prodstack.yaml'), 'utf8'));
  expect(webscada.jobs.map((job) => job.source.kind)).toContain('influxdb');
  expect(
    recoveryOrderOf(prodstack, 'swarm1')
      .map((job) => job.source.kind)
      .slice(0, 3),
  ).toEqual(['postgres', 'redis', 'files']);
  expect(recoveryOrderOf(webscada, 'scada1').map((job) => job.name)).toEqual([
    'scada-db',
    'cache',
    'timeseries',
    'scada-config',
  ]);
});
