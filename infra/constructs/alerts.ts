/**
 * Where alerts go: one SNS topic, encrypted with its own KMS key and TLS only, with the plan's e-mail
 * subscriptions. The Slack notifier (notify-slack) is subscribed with {@link Alerts.subscribeFunction};
 * its webhook URL stays in the SSM SecureString parameter the plan names.
 */
import { Aws } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

/** Command-level statuses of a command that has not ended yet (SSM Run Command). */
const COMMAND_NOT_ENDED = ['Pending', 'InProgress', 'Delayed', 'Cancelling'] as const;

/** Properties of {@link Alerts}. */
export interface AlertsProps {
  /**
   * Addresses subscribed by e-mail (each confirms once, from the message SNS sends).
   * @default - none
   */
  readonly emails?: readonly string[];
  /**
   * Topic display name (the sender name of e-mails).
   * @default 'Strongbox'
   */
  readonly displayName?: string;
}

/**
 * The alert topic. CloudWatch alarms may publish to it (the key lets the CloudWatch service use it for
 * this account's topics); functions get `sns:Publish` and the key through their own roles.
 * @example const alerts = new Alerts(this, 'Alerts', { emails: ['ops@example.com'] });
 */
export class Alerts extends Construct {
  /** The topic. */
  readonly topic: sns.Topic;
  /** The key that encrypts the topic's messages at rest. */
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: AlertsProps = {}) {
    super(scope, id);
    for (const email of props.emails ?? []) {
      if (!/^[^\s@]+@[^\s@]+$/.test(email))
        throw new RangeError(`${this.node.path}: '${email}' is not an e-mail address`);
    }
    this.key = new kms.Key(this, 'Key', {
      description: 'Strongbox alert topic',
      enableKeyRotation: true,
    });
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: ['*'],
        conditions: {
          StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
          StringLike: {
            'kms:EncryptionContext:aws:sns:topicArn': `arn:${Aws.PARTITION}:sns:${Aws.REGION}:${Aws.ACCOUNT_ID}:*`,
          },
        },
      }),
    );
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: props.displayName ?? 'Strongbox',
      masterKey: this.key,
      enforceSSL: true,
    });
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
    );
    for (const email of props.emails ?? []) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    }
  }

  /**
   * Alerts on every command of `documentName` that ends other than Success, from the command-level
   * status-change event: a command whose targets match no managed node ends "No Instances In Tag" and
   * sends no invocation event, so the per-host handlers never hear of it.
   * @example alerts.alertOnCommandStatus(fleet.documentName, plan.name)
   */
  alertOnCommandStatus(documentName: string, planName: string): events.Rule {
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'EventBridgePublish',
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
    );
    const rule = new events.Rule(this, 'CommandStatusRule', {
      description: 'Strongbox: a command of the Strongbox document ended other than Success',
      eventPattern: {
        source: ['aws.ssm'],
        detailType: ['EC2 Command Status-change Notification'],
        detail: {
          'document-name': [documentName],
          status: [{ 'anything-but': [...COMMAND_NOT_ENDED, 'Success'] }],
        },
      },
    });
    const detail = (field: string) => events.EventField.fromPath(`$.detail.${field}`);
    rule.addTarget(
      new targets.SnsTopic(this.topic, {
        message: events.RuleTargetInput.fromText(
          `[Strongbox] ${planName}: SSM command ${detail('command-id')} of the Strongbox document ended "${detail('status')}" at ${events.EventField.time}. "No Instances In Tag" means no managed node matched the job's hosts entry (check the tags or instance ids in the plan, and that the SSM Agent is online); Failed, TimedOut or Cancelled: see the per-host alert and the command's output in CloudWatch Logs.`,
        ),
      }),
    );
    return rule;
  }

  /** Subscribes a function (the Slack notifier) to every alert. */
  subscribeFunction(fn: lambda.IFunction): void {
    this.topic.addSubscription(new subscriptions.LambdaSubscription(fn));
  }
}
