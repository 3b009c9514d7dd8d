/**
 * `npm run docs`: writes docs/plan.md and docs/plan.schema.json from the plan schema (core/plan-reference).
 * test/unit/core/plan-reference.test.ts fails when the checked-in files differ from what this writes.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { planJsonSchema, planReference } from '#core/plan-reference';

const docs = join(import.meta.dirname, '..', 'docs');
const schema = planJsonSchema();
await writeFile(join(docs, 'plan.schema.json'), `${JSON.stringify(schema, null, 2)}\n`);
await writeFile(join(docs, 'plan.md'), planReference(schema));
process.stdout.write('wrote docs/plan.md and docs/plan.schema.json\n');
