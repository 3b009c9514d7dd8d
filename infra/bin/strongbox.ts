/**
 * The CDK app entry named in cdk.json: `npx cdk synth -c plan=…` or `npx cdk deploy --all -c plan=…`.
 * Reads the plan once and validates it, builds the agent executables (Linux only) when they are missing
 * or older than their sources, builds the stacks and runs cdk-nag's AwsSolutions checks. A bad plan stops the synth
 * with the agent's message (`strongbox: error: …`, last line) and exit status 2.
 */
import { App } from 'aws-cdk-lib';
import { errorLines, PlanError } from '#core/errors';
import { ensureAgentExecutables } from '../../scripts/lib/agent-executable';
import { buildStrongboxApp, loadPlanFile } from '../app';
import { addNagChecks } from '../nag';
import { AGENT_EXECUTABLE_PATHS, REPO_ROOT } from '../paths';

async function main(): Promise<void> {
  const app = new App();
  const planPath: unknown = app.node.tryGetContext('plan');
  if (typeof planPath !== 'string' || planPath === '') {
    throw new PlanError(['no plan given: run `npx cdk synth -c plan=path/to/plan.yaml`']);
  }
  const plan = loadPlanFile(planPath);
  // After the plan is known good: a bad plan fails at once, without building the executables first.
  for (const reason of await ensureAgentExecutables(REPO_ROOT, AGENT_EXECUTABLE_PATHS)) {
    process.stderr.write(`built the agent executable: ${reason}\n`);
  }
  buildStrongboxApp(app, { plan });
  addNagChecks(app);
  app.synth();
}

try {
  await main();
} catch (error) {
  process.stderr.write(`${errorLines(error).join('\n')}\n`);
  process.exitCode = 2;
}
