/**
 * The CDK app entry named in cdk.json: `npx cdk synth|deploy --all -c plan=examples/aws-small.yaml`.
 * Reads the plan once, validates it, builds the stacks and runs cdk-nag's AwsSolutions checks. A bad
 * plan stops the synth with the agent's message (`strongbox: error: …`, last line) and exit status 2.
 */
import { App } from 'aws-cdk-lib';
import { errorLines, PlanError } from '#core/errors';
import { buildStrongboxApp, loadPlanFile } from '../app';
import { addNagChecks } from '../nag';

function main(): void {
  const app = new App();
  const planPath: unknown = app.node.tryGetContext('plan');
  if (typeof planPath !== 'string' || planPath === '') {
    throw new PlanError(['no plan given: run `npx cdk synth -c plan=path/to/plan.yaml`']);
  }
  buildStrongboxApp(app, { plan: loadPlanFile(planPath) });
  addNagChecks(app);
  app.synth();
}

try {
  main();
} catch (error) {
  process.stderr.write(`${errorLines(error).join('\n')}\n`);
  process.exitCode = 2;
}
