/**
 * The running half of a deployment: the plan asset, the agent fleet (document, host policy, hybrid
 * activation role), the functions and their events, the schedules, the alert topic, the dashboard and
 * the alarms. Stateless: it can be destroyed and deployed again without losing a backup.
 */
import { CfnOutput, Fn, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { type AgentArchitecture, FUNCTIONS } from '#core/deployment';
import { AgentFleet } from '../constructs/agent-fleet';
import { Alerts } from '../constructs/alerts';
import { Dashboard } from '../constructs/dashboard';
import { StrongboxFunctions } from '../constructs/functions';
import { PlanAsset } from '../constructs/plan-asset';
import { Schedules } from '../constructs/schedules';
import type { StrongboxVaultStack } from './vault-stack';

/** Properties of a {@link StrongboxStack}. */
export interface StrongboxStackProps extends StackProps {
  /** The plan as written (parsed YAML, defaults not filled in); validated again here. */
  readonly planDocument: unknown;
  /** The stack holding the vault (same environment). */
  readonly vaultStack: StrongboxVaultStack;
  /**
   * Paths of the agent executables (gzip) by architecture.
   * @default this repository's dist/strongbox-linux-<arch>.gz (`npm run build:exe`)
   */
  readonly agentExecutables?: Readonly<Record<AgentArchitecture, string>>;
  /**
   * Directory of the Lambda handler files.
   * @default this repository's functions/
   */
  readonly functionsDir?: string;
}

/**
 * A plan deployed: everything but the vault.
 * @example new StrongboxStack(app, 'acme-app', { planDocument, vaultStack });
 */
export class StrongboxStack extends Stack {
  /** The plan asset. */
  readonly plan: PlanAsset;
  /** The agent fleet. */
  readonly fleet: AgentFleet;
  /** The alert topic. */
  readonly alerts: Alerts;
  /** The functions. */
  readonly functions: StrongboxFunctions;
  /** The schedules. */
  readonly schedules: Schedules;
  /** The dashboard and alarms. */
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: StrongboxStackProps) {
    super(scope, id, props);
    this.plan = new PlanAsset(this, 'Plan', { document: props.planDocument });
    const plan = this.plan.plan;
    this.templateOptions.description = `Strongbox ${plan.name}: agents, functions, schedules, alerts, dashboard`;
    const { bucket, key } = props.vaultStack.importVault(this);

    this.fleet = new AgentFleet(this, 'Agents', {
      vaultBucket: bucket,
      vaultKey: key,
      plan: this.plan,
      agentExecutables: props.agentExecutables,
    });
    this.alerts = new Alerts(this, 'Alerts', {
      emails: plan.alerts.email,
      displayName: `Strongbox ${plan.name}`,
    });
    this.functions = new StrongboxFunctions(this, 'Functions', {
      plan: this.plan,
      vaultBucket: bucket,
      vaultKey: key,
      documentName: this.fleet.documentName,
      documentArn: this.fleet.documentArn,
      commandLogGroupName: this.fleet.commandLogGroup.logGroupName,
      topic: this.alerts.topic,
      topicKey: this.alerts.key,
      functionsDir: props.functionsDir,
    });
    const slack = this.functions.functions.get(FUNCTIONS.notifySlack);
    if (slack) this.alerts.subscribeFunction(slack.function);
    this.alerts.alertOnCommandStatus(this.fleet.documentName, plan.name);
    this.schedules = new Schedules(this, 'Schedules', {
      plan,
      runBackup: this.functions.get(FUNCTIONS.runBackup).function,
      verify: this.functions.get(FUNCTIONS.verify).function,
      restoreDrill: this.functions.get(FUNCTIONS.restoreDrill).function,
      deadLetterQueue: this.functions.deadLetterQueue,
    });
    this.dashboard = new Dashboard(this, 'Dashboard', {
      plan,
      topic: this.alerts.topic,
      functions: [...this.functions.functions.values()].map((fn) => fn.function),
      deadLetterQueues: [this.functions.deadLetterQueue],
    });

    for (const access of this.fleet.hosts.values()) {
      const suffix = pascalCase(access.host);
      new CfnOutput(this, `HostPolicyArns${suffix}`, {
        description: `Host ${access.host}: attach each of these (comma-separated) to the instance role of its EC2 instances, beside AmazonSSMManagedInstanceCore`,
        value: Fn.join(
          ',',
          access.policies.map((policy) => policy.managedPolicyArn),
        ),
      });
      new CfnOutput(this, `HybridActivationRoleName${suffix}`, {
        description: `Host ${access.host}: the --iam-role of \`aws ssm create-activation\` for its on-premises servers`,
        value: access.hybridActivationRole.roleName,
      });
    }
    new CfnOutput(this, 'DocumentName', {
      description: 'The Strongbox SSM document',
      value: this.fleet.documentName,
    });
    new CfnOutput(this, 'AlertTopicArn', { value: this.alerts.topic.topicArn });
    new CfnOutput(this, 'RestoreFunctionName', {
      description: 'aws lambda invoke --function-name <this> … to restore (the restore-request function)',
      value: this.functions.get(FUNCTIONS.restoreRequest).function.functionName,
    });
    new CfnOutput(this, 'DashboardName', { value: this.dashboard.dashboard.dashboardName });
  }
}

/** `db-primary` → `DbPrimary`: a host name as part of an output id (letters and digits only). */
function pascalCase(name: string): string {
  return name
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}
