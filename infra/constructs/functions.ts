/**
 * The Strongbox Lambdas and the events that reach them: each function's role holds only what its handler
 * calls (FUNCTION_PERMISSIONS), the EventBridge rule on SSM command status changes of the Strongbox
 * document, and the one on finished archive retrievals of the vault bucket.
 */
import { Arn, ArnFormat, Aws, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { newBackupId } from '#core/backup-id';
import { COMMAND_TERMINAL_STATUSES, FUNCTION_ENV, FUNCTIONS } from '#core/deployment';
import { drillClaimKey, jobPrefix, restoreRequestPrefix, runClaimPrefix } from '#core/layout';
import type { Plan } from '#core/plan';
import { allowIamWildcards } from '../nag';
import type { PlanAsset } from './plan-asset';
import { type FunctionName, StrongboxFunction } from './strongbox-function';
import { keyUseViaS3 } from './vault-key';

/** Properties of {@link StrongboxFunctions}. */
export interface StrongboxFunctionsProps {
  /** The plan (read by every function from its asset). */
  readonly plan: PlanAsset;
  /** The vault bucket. */
  readonly vaultBucket: s3.IBucket;
  /** The vault key (SSE-KMS of the bucket). */
  readonly vaultKey: kms.IKey;
  /** Name of the Strongbox SSM document. */
  readonly documentName: string;
  /** ARN of the Strongbox SSM document. */
  readonly documentArn: string;
  /** Name of the log group command output goes to. */
  readonly commandLogGroupName: string;
  /** The alert topic. */
  readonly topic: sns.ITopic;
  /** The key the alert topic is encrypted with. */
  readonly topicKey: kms.IKey;
  /**
   * Directory with the handler files.
   * @default this repository's functions/
   */
  readonly functionsDir?: string;
}

/** What a function may do; each maps to IAM statements in one place. */
type Permission =
  /** List the vault (backups, WAL, claims). */
  | 'listVault'
  /** Read manifests and data objects of the plan's jobs. */
  | 'readBackups'
  /**
   * Head data objects of the plan's jobs (storage class, retrieval state). IAM has no action for heads
   * alone: HeadObject needs s3:GetObject, so the stored bytes are readable too — still encrypted on the
   * host, and no function holds a key that unwraps their data keys.
   */
  | 'headBackups'
  /** Ask for temporary copies of archived objects of the plan's jobs. */
  | 'restoreArchived'
  /** Read back what a command did. */
  | 'readCommands'
  | 'publishAlerts'
  /** Create and release its own claims below a prefix, and read them back when `read`. */
  | { claims: string; read?: boolean }
  /** Write records whose keys match a pattern (`restores/*.json`): never read or delete them. */
  | { records: string }
  | { sendCommandTo: 'jobHosts' | 'drillHosts' | 'allHosts' };

const SAMPLE_ID = newBackupId(new Date(0), '000000');
const topLevel = (key: string) => key.split('/')[0] as string;

/**
 * What each handler calls, and nothing more. Every function also reads the plan object and writes its
 * own log group (its metrics are EMF log lines, so no cloudwatch:PutMetricData).
 */
export const FUNCTION_PERMISSIONS: Record<Exclude<FunctionName, 'notify-slack'>, readonly Permission[]> = {
  [FUNCTIONS.runBackup]: [
    'listVault',
    { claims: topLevel(runClaimPrefix('job')) },
    { sendCommandTo: 'jobHosts' },
    'publishAlerts',
  ],
  [FUNCTIONS.backupFinished]: ['readCommands', 'publishAlerts'],
  [FUNCTIONS.verify]: ['listVault', 'readBackups', 'publishAlerts'],
  // Answers the person who invoked it: no alerts. Any plan host, as the request may name one.
  [FUNCTIONS.restoreRequest]: [
    'listVault',
    'readBackups',
    'restoreArchived',
    // Pending requests only, not the `.started` markers restore-continue claims beside them.
    { records: `${topLevel(restoreRequestPrefix('job', SAMPLE_ID))}/*.json` },
    { sendCommandTo: 'allHosts' },
  ],
  // Reads the pending requests back and claims each once; heads objects, retrieves nothing.
  [FUNCTIONS.restoreContinue]: [
    'listVault',
    'headBackups',
    { claims: topLevel(restoreRequestPrefix('job', SAMPLE_ID)), read: true },
    { sendCommandTo: 'allHosts' },
    'publishAlerts',
  ],
  // Reads command outcomes and alerts: no vault, no retrieval, no SendCommand.
  [FUNCTIONS.restoreReport]: ['readCommands', 'publishAlerts'],
  [FUNCTIONS.restoreDrill]: [
    'listVault',
    { claims: topLevel(drillClaimKey('job', SAMPLE_ID)) },
    { sendCommandTo: 'drillHosts' },
    'readCommands',
    'publishAlerts',
  ],
};

/**
 * The functions of a deployment: run-backup, backup-finished, verify, restore-request, restore-continue,
 * restore-report, restore-drill, and notify-slack when the plan has a Slack webhook. SSM status changes
 * of the document's commands go to backup-finished, restore-report and restore-drill (each handles its
 * own action); finished archive retrievals of the vault go to restore-continue. Events that still fail
 * after two retries land in `deadLetterQueue`.
 * @example const fns = new StrongboxFunctions(this, 'Functions', { plan, vaultBucket, vaultKey, ... });
 */
export class StrongboxFunctions extends Construct {
  /** The functions by handler name. */
  readonly functions: ReadonlyMap<FunctionName, StrongboxFunction>;
  /** Where failed asynchronous invocations go (SSE, TLS only, 14 days). */
  readonly deadLetterQueue: sqs.Queue;
  /** The rule on SSM command status changes of the Strongbox document. */
  readonly commandStatusRule: events.Rule;
  /** The rule on finished archive retrievals of the vault bucket. */
  readonly retrievalDoneRule: events.Rule;

  constructor(scope: Construct, id: string, props: StrongboxFunctionsProps) {
    super(scope, id);
    const plan = props.plan.plan;
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: DEAD_LETTER_QUEUE_REASON,
    });
    const onFailure = sendOnlyQueueDestination(this.deadLetterQueue);
    const common = {
      [FUNCTION_ENV.planBucket]: props.plan.asset.s3BucketName,
      [FUNCTION_ENV.planKey]: props.plan.asset.s3ObjectKey,
      [FUNCTION_ENV.vaultBucket]: props.vaultBucket.bucketName,
    };
    const commands = {
      [FUNCTION_ENV.documentName]: props.documentName,
      [FUNCTION_ENV.logGroupName]: props.commandLogGroupName,
    };
    const alerts = { [FUNCTION_ENV.topicArn]: props.topic.topicArn };
    const environment: Record<Exclude<FunctionName, 'notify-slack'>, Record<string, string>> = {
      [FUNCTIONS.runBackup]: { ...common, ...commands, ...alerts },
      [FUNCTIONS.backupFinished]: { ...common, ...commands, ...alerts },
      [FUNCTIONS.verify]: { ...common, ...alerts },
      [FUNCTIONS.restoreRequest]: { ...common, ...commands },
      [FUNCTIONS.restoreContinue]: { ...common, ...commands, ...alerts },
      [FUNCTIONS.restoreReport]: { ...common, ...commands, ...alerts },
      [FUNCTIONS.restoreDrill]: { ...common, ...commands, ...alerts },
    };
    const timeouts: Partial<Record<FunctionName, Duration>> = {
      // verify reads every manifest and hashes the newest backups within a byte budget.
      [FUNCTIONS.verify]: Duration.minutes(15),
      // A request heads every object of the backup and may start a retrieval of each; a continuation
      // heads the objects of every pending request of the backup.
      [FUNCTIONS.restoreRequest]: Duration.minutes(5),
      [FUNCTIONS.restoreContinue]: Duration.minutes(5),
    };

    const functions = new Map<FunctionName, StrongboxFunction>();
    for (const [name, permissions] of Object.entries(FUNCTION_PERMISSIONS) as [
      Exclude<FunctionName, 'notify-slack'>,
      readonly Permission[],
    ][]) {
      const fn = new StrongboxFunction(this, constructId(name), {
        name,
        environment: environment[name],
        functionsDir: props.functionsDir,
        timeout: timeouts[name],
        onFailure,
      });
      props.plan.grantRead(fn.role);
      fn.allow(...permissions.flatMap((permission) => this.statements(permission, props, plan)));
      allowIamWildcards(fn, WILDCARDS);
      functions.set(name, fn);
    }

    const slack = plan.alerts.slack;
    if (slack) {
      const notify = new StrongboxFunction(this, constructId(FUNCTIONS.notifySlack), {
        name: FUNCTIONS.notifySlack,
        environment: { [FUNCTION_ENV.slackWebhookParameter]: slack.webhookParameter },
        functionsDir: props.functionsDir,
        onFailure,
      });
      notify.allow(
        new iam.PolicyStatement({
          actions: ['ssm:GetParameter'],
          resources: [parameterArn(this, slack.webhookParameter)],
        }),
      );
      functions.set(FUNCTIONS.notifySlack, notify);
    }
    this.functions = functions;

    this.commandStatusRule = new events.Rule(this, 'CommandStatusRule', {
      description: 'Strongbox: a host finished a command of the Strongbox document',
      eventPattern: {
        source: ['aws.ssm'],
        detailType: ['EC2 Command Invocation Status-change Notification'],
        detail: { 'document-name': [props.documentName], status: [...COMMAND_TERMINAL_STATUSES] },
      },
    });
    for (const name of [FUNCTIONS.backupFinished, FUNCTIONS.restoreReport, FUNCTIONS.restoreDrill] as const) {
      this.commandStatusRule.addTarget(
        new targets.LambdaFunction(this.get(name).function, {
          deadLetterQueue: this.deadLetterQueue,
          retryAttempts: 4,
          maxEventAge: Duration.hours(2),
        }),
      );
    }
    this.retrievalDoneRule = new events.Rule(this, 'RetrievalDoneRule', {
      description: 'Strongbox: S3 finished retrieving an archived object of the vault',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Restore Completed'],
        detail: { bucket: { name: [props.vaultBucket.bucketName] } },
      },
    });
    this.retrievalDoneRule.addTarget(
      new targets.LambdaFunction(this.get(FUNCTIONS.restoreContinue).function, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 4,
        maxEventAge: Duration.hours(6),
      }),
    );
  }

  /** The function of a handler. @throws RangeError when it was not created (notify-slack without Slack). */
  get(name: FunctionName): StrongboxFunction {
    const fn = this.functions.get(name);
    if (!fn) throw new RangeError(`${this.node.path}: no ${name} function (notify-slack needs alerts.slack)`);
    return fn;
  }

  private statements(
    permission: Permission,
    props: StrongboxFunctionsProps,
    plan: Plan,
  ): iam.PolicyStatement[] {
    const bucket = props.vaultBucket;
    const keyArn = props.vaultKey.keyArn;
    const jobObjects = (prefixOf: (job: string) => string) =>
      plan.jobs.map((job) => bucket.arnForObjects(`${prefixOf(job.name)}*`));
    if (permission === 'listVault') {
      return [new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] })];
    }
    if (permission === 'readBackups') {
      return [
        new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: jobObjects(jobPrefix) }),
        keyUseViaS3(keyArn, bucket.bucketArn, ['kms:Decrypt']),
      ];
    }
    if (permission === 'headBackups') {
      return [new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: jobObjects(jobPrefix) })];
    }
    if (permission === 'restoreArchived') {
      return [new iam.PolicyStatement({ actions: ['s3:RestoreObject'], resources: jobObjects(jobPrefix) })];
    }
    if (permission === 'readCommands') {
      // Neither action supports resource-level permissions.
      return [
        new iam.PolicyStatement({
          actions: ['ssm:GetCommandInvocation', 'ssm:ListCommands'],
          resources: ['*'],
        }),
      ];
    }
    if (permission === 'publishAlerts') {
      return [
        new iam.PolicyStatement({ actions: ['sns:Publish'], resources: [props.topic.topicArn] }),
        new iam.PolicyStatement({
          actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
          resources: [props.topicKey.keyArn],
          conditions: {
            StringEquals: {
              'kms:ViaService': `sns.${Aws.REGION}.amazonaws.com`,
              'kms:EncryptionContext:aws:sns:topicArn': props.topic.topicArn,
            },
          },
        }),
      ];
    }
    if ('records' in permission) {
      return [
        new iam.PolicyStatement({
          actions: ['s3:PutObject'],
          resources: [bucket.arnForObjects(permission.records)],
        }),
        keyUseViaS3(keyArn, bucket.bucketArn, ['kms:GenerateDataKey']),
      ];
    }
    if ('claims' in permission) {
      const read = permission.read === true;
      return [
        new iam.PolicyStatement({
          actions: ['s3:PutObject', 's3:DeleteObject', ...(read ? ['s3:GetObject'] : [])],
          resources: [bucket.arnForObjects(`${permission.claims}/*`)],
        }),
        keyUseViaS3(
          keyArn,
          bucket.bucketArn,
          read ? ['kms:GenerateDataKey', 'kms:Decrypt'] : ['kms:GenerateDataKey'],
        ),
      ];
    }
    const hostsOf = {
      jobHosts: plan.jobs.flatMap((job) => (job.host ? [job.host] : [])),
      drillHosts: plan.jobs.flatMap((job) => (job.drill ? [job.drill.host ?? job.host ?? ''] : [])),
      allHosts: Object.keys(plan.hosts),
    }[permission.sendCommandTo].filter(Boolean);
    return [
      new iam.PolicyStatement({ actions: ['ssm:SendCommand'], resources: [props.documentArn] }),
      ...sendCommandTargetStatements(this, plan, [...new Set(hostsOf)]),
    ];
  }
}

/** Why a dead-letter queue has no dead-letter queue (AwsSolutions-SQS3). */
export const DEAD_LETTER_QUEUE_REASON =
  'The dead-letter queue itself (of the schedules, the EventBridge rule targets and failed asynchronous invocations): a queue behind it would only move the problem. The DeadLetters alarm watches it.';

/** IAM wildcards the functions need, with why. */
const WILDCARDS = [
  {
    finding: /^Resource::.*\/(backups|wal)\/[a-z0-9-]+\/\*$/,
    reason: 'Objects of one plan job: keys below backups/<job>/ and wal/<job>/ hold ids made at run time.',
  },
  {
    finding: /^Resource::.*\/(runs|drills|restores)\/\*(\.json)?$/,
    reason: "The function's own claims and pending requests: one key per scheduled run or request.",
  },
  {
    finding: /^Resource::\*$/,
    reason: 'ssm:GetCommandInvocation and ssm:ListCommands support no resource-level permissions.',
  },
  {
    finding:
      /^Resource::arn:<AWS::Partition>:(ec2|ssm):<AWS::Region>:<AWS::AccountId>:(instance|managed-instance)\/\*$/,
    reason:
      'Hosts targeted by tag: SendCommand to any instance or managed node, only if it carries the tags of a plan host (ssm:resourceTag condition).',
  },
] as const;

/**
 * SendCommand permissions on a plan's hosts: their instance ids, or every instance and managed node that
 * carries all the tags of a host entry.
 */
export function sendCommandTargetStatements(
  scope: Construct,
  plan: Plan,
  hosts: readonly string[],
): iam.PolicyStatement[] {
  const stack = Stack.of(scope);
  const instanceArn = (id: string) =>
    id.startsWith('mi-')
      ? stack.formatArn({ service: 'ssm', resource: 'managed-instance', resourceName: id })
      : stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: id });
  const statements: iam.PolicyStatement[] = [];
  const ids = hosts.flatMap((host) => plan.hosts[host]?.instanceIds ?? []);
  if (ids.length > 0) {
    statements.push(
      new iam.PolicyStatement({
        actions: ['ssm:SendCommand'],
        resources: [...new Set(ids)].map(instanceArn),
      }),
    );
  }
  for (const host of hosts) {
    const tags = plan.hosts[host]?.tags;
    if (!tags || Object.keys(tags).length === 0) continue;
    statements.push(
      new iam.PolicyStatement({
        actions: ['ssm:SendCommand'],
        resources: [
          stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' }),
          stack.formatArn({ service: 'ssm', resource: 'managed-instance', resourceName: '*' }),
        ],
        conditions: {
          StringEquals: Object.fromEntries(
            Object.entries(tags).map(([key, value]) => [`ssm:resourceTag/${key}`, value]),
          ),
        },
      }),
    );
  }
  return statements;
}

/**
 * An SQS on-failure destination that grants the function `sqs:SendMessage` only (CDK's SqsDestination
 * also grants GetQueueAttributes and GetQueueUrl, which Lambda does not use to deliver).
 */
function sendOnlyQueueDestination(queue: sqs.IQueue): lambda.IDestination {
  return {
    bind: (_scope, fn) => {
      fn.addToRolePolicy(
        new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [queue.queueArn] }),
      );
      return { destination: queue.queueArn };
    },
  };
}

function parameterArn(scope: Construct, name: string): string {
  return Arn.format(
    {
      service: 'ssm',
      resource: 'parameter',
      resourceName: name.replace(/^\//, ''),
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    },
    Stack.of(scope),
  );
}

function constructId(name: FunctionName): string {
  return name.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
}
