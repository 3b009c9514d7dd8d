/**
 * docs/plan.md and docs/plan.schema.json are generated from the plan schema (core/plan-reference) and
 * checked in: these tests fail when either differs from what `npm run docs` writes now, so CI catches a
 * schema change without its reference, and when a plan field has no description.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planJsonSchema, planReference } from '#core/plan-reference';

const docs = join(import.meta.dirname, '..', '..', '..', 'docs');
const read = (name: string) => readFileSync(join(docs, name), 'utf8');

describe('the plan reference', () => {
  it('docs/plan.schema.json is what npm run docs writes from the schema', () => {
    expect(read('plan.schema.json'), 'docs/plan.schema.json is stale: run npm run docs').toBe(
      `${JSON.stringify(planJsonSchema(), null, 2)}\n`,
    );
  });

  it('docs/plan.md is what npm run docs writes from the schema', () => {
    expect(read('plan.md'), 'docs/plan.md is stale: run npm run docs').toBe(planReference());
  });

  it('describes every field', () => {
    const undescribed = planReference()
      .split('\n')
      .filter((line) => line.startsWith('| `') && line.endsWith('|  |'))
      .map((line) => line.split(' | ')[0]);
    expect(undescribed).toEqual([]);
  });

  it('writes durations and retentions as a plan does, with their unit', () => {
    const reference = planReference();
    expect(reference).toMatch(/^\| `jobs\[\]\.limits\.warnAge` \| duration [^|]+\| {2}\| `25h` \|/m);
    expect(reference).toMatch(/^\| `retention\.yearly` \| retention [^|]+\| {2}\| `2555d` \|/m);
    expect(reference).toMatch(/^## jobs\[\]\.source \(kind: postgres\)$/m);
  });
});
