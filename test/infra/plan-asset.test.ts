/**
 * The plan asset: the JSON file CDK stages and `cdk deploy` uploads is written inside the cloud
 * assembly, never left behind in the temp dir (every synth of a changed plan would add one there).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Stack } from 'aws-cdk-lib';
import { afterEach, describe, expect, it } from 'vitest';
import { PlanAsset } from '#infra/constructs/plan-asset';
import { tempDirSync } from '#test/support/temp';
import { testApp, testPlan } from './support';

describe('PlanAsset', () => {
  const savedTmpdir = process.env.TMPDIR;
  afterEach(() => {
    if (savedTmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmpdir;
  });

  it('writes the plan into the cloud assembly and nothing into the temp dir', () => {
    // Prepare
    const app = testApp();
    const tmp = tempDirSync('strongbox-plan-tmp-');
    process.env.TMPDIR = tmp;
    const { document } = testPlan();

    // Act
    const asset = new PlanAsset(new Stack(app, 'PlanTest'), 'Plan', { document });
    app.synth();

    // Assess
    expect(readdirSync(tmp)).toEqual([]);
    const staged = JSON.parse(readFileSync(join(app.outdir, asset.asset.assetPath), 'utf8'));
    expect(staged).toEqual(document);
  });
});
