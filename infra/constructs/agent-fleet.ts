/**
 * The hosts' side of a deployment: the agent executables (one per architecture, gzip) as assets, the SSM
 * Command document that installs the host's one and runs one action, the log group the command output goes to, and per `hosts.<name>` entry the
 * managed policies its roles get and the role of SSM hybrid activations for its on-premises servers.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Arn, ArnFormat, Aws, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Asset } from 'aws-cdk-lib/aws-s3-assets';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { AGENT_ARCHITECTURES, type AgentArchitecture } from '#core/deployment';
import { PlanError } from '#core/errors';
import { DOCTOR_PROBE_PREFIX, jobPrefix, OBJECT_TAGS, walPrefix } from '#core/layout';
import { DOCTOR_KEY_CONTEXT, encryptionContext } from '#core/manifest';
import type { Job, Plan } from '#core/plan';
import { allowIamWildcards } from '../nag';
import { AGENT_EXECUTABLE_PATHS } from '../paths';
import { type AgentArtifact, agentDocumentContent, MAX_EXECUTION_TIMEOUT_SECONDS } from './agent-document';
import { assetHttpsUrl, assetObjectArn, type PlanAsset } from './plan-asset';
import { keyUseViaS3 } from './vault-key';

/** Properties of an {@link AgentFleet}. */
export interface AgentFleetProps {
  /** The vault bucket hosts write backups to. */
  readonly vaultBucket: s3.IBucket;
  /** The vault key: SSE-KMS of the bucket, and (for `key.type: kms` plans) the per-backup data keys. */
  readonly vaultKey: kms.IKey;
  /** The plan, which hosts download with the agent. */
  readonly plan: PlanAsset;
  /**
   * Paths of the agent executables (gzip), one per architecture.
   * @default AGENT_EXECUTABLE_PATHS: `dist/strongbox-linux-<arch>.gz` of this repository, which
   * `npm run build:exe` (and the CDK app, when they are missing or stale) writes
   */
  readonly agentExecutables?: Readonly<Record<AgentArchitecture, string>>;
  /**
   * How long command output stays in CloudWatch Logs.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly commandLogRetention?: logs.RetentionDays;
}

/** IAM's limit on a customer managed policy, in characters without whitespace. */
export const MANAGED_POLICY_MAX_CHARS = 6144;

/**
 * Managed policies one host entry may get: a role takes 10 managed policies by default (a quota AWS
 * raises on request), and the host's role also carries AmazonSSMManagedInstanceCore.
 */
export const MAX_POLICIES_PER_HOST = 9;

/**
 * The longest value each CloudFormation intrinsic of a host policy can resolve to, for sizing at synth:
 * pseudo parameters by their longest real value, anything else (bucket name, key ARN, log group ARN) by
 * a bound above the longest name AWS allows.
 */
const WORST_CASE_LENGTH: Record<string, number> = {
  'AWS::Partition': 'aws-iso-b'.length + 1,
  'AWS::Region': 'ap-southeast-5'.length + 10,
  'AWS::AccountId': 12,
  'AWS::URLSuffix': 'amazonaws.com.cn'.length,
};
const OTHER_INTRINSIC_LENGTH = 128;

/**
 * The length IAM counts for a resolved policy document (JSON without whitespace), with every
 * intrinsic replaced by the longest value it may take: `known` gives the bound of particular ones
 * (resolved intrinsic, longest length), e.g. an imported bucket name (63).
 */
export function worstCasePolicyLength(
  document: unknown,
  known: readonly (readonly [unknown, number])[] = [],
): number {
  const bounds = new Map(known.map(([intrinsic, length]) => [JSON.stringify(intrinsic), length]));
  const render = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(render);
    if (value && typeof value === 'object') {
      const bound = bounds.get(JSON.stringify(value));
      if (bound !== undefined) return 'x'.repeat(bound);
      const entries = Object.entries(value as Record<string, unknown>);
      const [first] = entries;
      if (entries.length === 1 && first && (first[0] === 'Ref' || first[0].startsWith('Fn::'))) {
        const [name, argument] = first;
        if (name === 'Fn::Join' && Array.isArray(argument)) {
          const [separator, parts] = argument as [string, unknown[]];
          return parts.map((part) => String(render(part))).join(separator);
        }
        const length =
          name === 'Ref' && typeof argument === 'string'
            ? (WORST_CASE_LENGTH[argument] ?? OTHER_INTRINSIC_LENGTH)
            : OTHER_INTRINSIC_LENGTH;
        return 'x'.repeat(length);
      }
      return Object.fromEntries(entries.map(([key, inner]) => [key, render(inner)]));
    }
    return value;
  };
  return JSON.stringify(render(document)).length;
}

/** The jobs a host entry backs up (`jobs[].host`) or drills (`drill.host`, else the job's host). */
export function jobsOfHost(plan: Plan, host: string): Job[] {
  return plan.jobs.filter((job) => job.host === host || (job.drill && (job.drill.host ?? job.host) === host));
}

/** The managed policies and the hybrid activation role of one `hosts.<name>` entry. */
export interface HostAccess {
  /** The host entry's name in the plan. */
  readonly host: string;
  /** Names of the jobs it may back up, restore or drill. */
  readonly jobs: readonly string[];
  /** Attach all of these to the instance role of the host's EC2 instances. */
  readonly policies: readonly iam.ManagedPolicy[];
  /** The role to name in `aws ssm create-activation` for the host's on-premises servers. */
  readonly hybridActivationRole: iam.Role;
}

/**
 * The agent fleet. Each `hosts.<name>` entry gets its own policies, covering only the jobs it backs up or
 * drills: put objects under those jobs' prefixes (create-only: `If-None-Match: *` required) and read
 * them back, never delete, re-tag or overwrite them or touch bucket settings; data keys only with the
 * Strongbox encryption context of those jobs; their own SecureString parameters only.
 * @example const fleet = new AgentFleet(this, 'Agents', { vaultBucket, vaultKey, plan });
 */
export class AgentFleet extends Construct {
  /** The SSM Command document (schemaVersion 2.2). */
  readonly document: ssm.CfnDocument;
  /** Name of the document, generated by CloudFormation. */
  readonly documentName: string;
  /** ARN of the document. */
  readonly documentArn: string;
  /** Where the Run Command output of the document goes. */
  readonly commandLogGroup: logs.LogGroup;
  /** What each host entry of the plan may do, by host name. */
  readonly hosts: ReadonlyMap<string, HostAccess>;
  /** The agent executable (gzip) asset of each architecture. */
  readonly agentExecutables: Readonly<Record<AgentArchitecture, Asset>>;
  /** SHA-256 (hex) of each architecture's executable (unpacked), which the document checks on every host. */
  readonly agentSha256: Readonly<Record<AgentArchitecture, string>>;

  constructor(scope: Construct, id: string, props: AgentFleetProps) {
    super(scope, id);
    const arches = Object.keys(AGENT_ARCHITECTURES) as AgentArchitecture[];
    const paths = props.agentExecutables ?? AGENT_EXECUTABLE_PATHS;
    for (const arch of arches) {
      if (!existsSync(resolve(paths[arch]))) {
        throw new Error(
          `${this.node.path}: agent executable ${resolve(paths[arch])} not found: run \`npm run build:exe\` first`,
        );
      }
    }
    const plan = props.plan.plan;
    const jobs = plan.jobs.map((job) => job.name);
    const longestTimeout = Math.max(...plan.jobs.map((job) => job.timeout));
    if (longestTimeout > MAX_EXECUTION_TIMEOUT_SECONDS) {
      throw new RangeError(`${this.node.path}: a job timeout is longer than SSM allows (48h)`);
    }

    const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
    const artifacts = {} as Record<AgentArchitecture, AgentArtifact>;
    const assets = {} as Record<AgentArchitecture, Asset>;
    for (const arch of arches) {
      const path = resolve(paths[arch]);
      const gzip = readFileSync(path);
      const asset = new Asset(this, `AgentExecutable-${arch}`, { path });
      assets[arch] = asset;
      artifacts[arch] = {
        url: assetHttpsUrl(asset),
        fileName: basename(asset.s3ObjectKey),
        sha256: sha256(gzip),
        executableSha256: sha256(gunzipSync(gzip)),
      };
    }
    this.agentExecutables = assets;
    this.agentSha256 = Object.fromEntries(
      arches.map((arch) => [arch, artifacts[arch].executableSha256]),
    ) as Record<AgentArchitecture, string>;
    this.commandLogGroup = new logs.LogGroup(this, 'CommandOutput', {
      retention: props.commandLogRetention ?? logs.RetentionDays.THREE_MONTHS,
    });

    this.document = new ssm.CfnDocument(this, 'Document', {
      documentType: 'Command',
      documentFormat: 'JSON',
      targetType: '/',
      // A changed plan or agent becomes a new version of the same document, not a replacement under a new
      // name: commands in flight during a deploy keep a document to be observed by.
      updateMethod: 'NewVersion',
      content: agentDocumentContent({
        agents: artifacts,
        planUrl: props.plan.httpsUrl,
        planFileName: basename(props.plan.fileName),
        planSha256: props.plan.sha256,
        vaultUrl: `s3://${props.vaultBucket.bucketName}`,
        kmsKeyArn: props.vaultKey.keyArn,
        region: Aws.REGION,
        jobs,
        defaultTimeoutSeconds: longestTimeout,
      }),
    });
    this.documentName = this.document.ref;
    this.documentArn = Stack.of(this).formatArn({
      service: 'ssm',
      resource: 'document',
      resourceName: this.document.ref,
    });

    const hosts = new Map<string, HostAccess>();
    for (const host of Object.keys(plan.hosts)) hosts.set(host, this.hostAccess(props, host));
    this.hosts = hosts;
  }

  /** The policies (split to stay under IAM's size limit) and the hybrid activation role of one host. */
  private hostAccess(props: AgentFleetProps, host: string): HostAccess {
    const plan = props.plan.plan;
    const hostJobs = jobsOfHost(plan, host);
    const scope = new Construct(this, `Host-${host}`);
    const stack = Stack.of(this);
    // An S3 bucket name has at most 63 characters, its ARN 13 + partition + 63.
    const known = [
      [stack.resolve(props.vaultBucket.bucketName), 63],
      [stack.resolve(props.vaultBucket.bucketArn), 'arn:aws-iso-b:s3:::'.length + 63],
    ] as const;
    const sizeOf = (group: Job[], first: boolean) =>
      worstCasePolicyLength(
        stack.resolve(
          new iam.PolicyDocument({ statements: this.hostStatements(props, group, first) }).toJSON(),
        ),
        known,
      );

    // Greedy: as many jobs per policy as fit, in plan order.
    const groups: Job[][] = [[]];
    for (const job of hostJobs) {
      const current = groups.at(-1) as Job[];
      const first = groups.length === 1;
      if (current.length === 0 || sizeOf([...current, job], first) <= MANAGED_POLICY_MAX_CHARS)
        current.push(job);
      else groups.push([job]);
      if (sizeOf(groups.at(-1) as Job[], groups.length === 1) > MANAGED_POLICY_MAX_CHARS) {
        throw new PlanError([
          `hosts.${host}: the policy for job ${job.name} alone is longer than IAM allows (${MANAGED_POLICY_MAX_CHARS} characters)`,
        ]);
      }
      if (groups.length > MAX_POLICIES_PER_HOST) {
        throw new PlanError([
          `hosts.${host}: its ${hostJobs.length} jobs need more than ${MAX_POLICIES_PER_HOST} managed policies of ${MANAGED_POLICY_MAX_CHARS} characters (IAM's limit): split the host entry so each runs fewer jobs`,
        ]);
      }
    }
    const policies = groups.map(
      (group, index) =>
        new iam.ManagedPolicy(scope, groups.length === 1 ? 'Policy' : `Policy${index + 1}`, {
          description:
            `Strongbox host ${host}: put and read backups of ${group.length === 0 ? 'no job' : group.map((job) => job.name).join(', ')}`.slice(
              0,
              1000,
            ),
          statements: this.hostStatements(props, group, index === 0),
        }),
    );
    for (const policy of policies) {
      allowIamWildcards(policy, [
        {
          finding: /^Resource::.*\/(backups|wal)\/[a-z0-9-]+\/\*$/,
          reason:
            'Objects of one plan job: the keys below backups/<job>/ and wal/<job>/ hold backup ids and WAL segment names made at run time.',
        },
        {
          finding: new RegExp(`^Resource::.*/${DOCTOR_PROBE_PREFIX}\\*$`),
          reason:
            'strongbox doctor writes its probe create-only under a fresh name (host name and a random nonce) and reads it back.',
        },
        {
          finding: /^Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:\*$/,
          reason:
            'logs:DescribeLogGroups has no per-group resource: the SSM Agent lists log groups before it streams command output.',
        },
      ]);
    }

    const hybridActivationRole = new iam.Role(scope, 'HybridActivationRole', {
      description: `Strongbox on-premises servers of host ${host}, registered with an SSM hybrid activation`,
      assumedBy: new iam.ServicePrincipal('ssm.amazonaws.com').withConditions({
        StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
        ArnLike: { 'aws:SourceArn': `arn:${Aws.PARTITION}:ssm:${Aws.REGION}:${Aws.ACCOUNT_ID}:*` },
      }),
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore'),
        ...policies,
      ],
    });
    Validations.of(hybridActivationRole).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
      reason:
        'Hybrid-activated servers need exactly what the SSM Agent calls (ssm, ssmmessages, ec2messages); AWS maintains this policy as the agent changes.',
    });
    return { host, jobs: hostJobs.map((job) => job.name), policies, hybridActivationRole };
  }

  /**
   * The statements of one host policy covering `jobs`. The first policy of a host also holds what does
   * not depend on jobs (list, agent and plan, logs, the key through S3); every one repeats the denies.
   */
  private hostStatements(
    props: AgentFleetProps,
    jobs: readonly Job[],
    first: boolean,
  ): iam.PolicyStatement[] {
    const plan = props.plan.plan;
    const bucket = props.vaultBucket;
    const names = jobs.map((job) => job.name);
    const objects = names.flatMap((job) => [
      bucket.arnForObjects(`${jobPrefix(job)}*`),
      bucket.arnForObjects(`${walPrefix(job)}*`),
    ]);
    const statements = [
      // Create-only, as S3's "enforce conditional writes" writes it: PutObject and CompleteMultipartUpload
      // (ObjectCreationOperation true) must carry If-None-Match; CreateMultipartUpload and UploadPart
      // (false) carry no such header and are exempt. Without it a write-only credential could overwrite.
      new iam.PolicyStatement({
        sid: 'CreateOnly',
        effect: iam.Effect.DENY,
        actions: ['s3:PutObject'],
        resources: [bucket.arnForObjects('*')],
        conditions: {
          Null: { 's3:if-none-match': 'true' },
          Bool: { 's3:ObjectCreationOperation': 'true' },
        },
      }),
      // Tags are set with the upload (PutObject authorises its Tagging header as PutObjectTagging); a
      // later re-tag of an existing Strongbox object (every one carries the job tag) would move it under
      // another tier's expiry.
      new iam.PolicyStatement({
        sid: 'NoRetagging',
        effect: iam.Effect.DENY,
        actions: ['s3:PutObjectTagging', 's3:PutObjectVersionTagging'],
        resources: [bucket.arnForObjects('*')],
        conditions: { Null: { [`s3:ExistingObjectTag/${OBJECT_TAGS.job}`]: 'false' } },
      }),
    ];
    if (objects.length > 0) {
      statements.push(
        new iam.PolicyStatement({
          sid: 'JobObjects',
          actions: [
            's3:PutObject',
            // Tags go with the upload (Tagging header); S3 authorises that as PutObjectTagging.
            's3:PutObjectTagging',
            's3:AbortMultipartUpload',
            // Per-object retain-until dates by tier, when the plan locks objects.
            ...(plan.vault.objectLock ? ['s3:PutObjectRetention'] : []),
            // RestoreObject asks for a temporary copy of an archived object: restores during disaster recovery.
            's3:GetObject',
            's3:RestoreObject',
          ],
          resources: objects,
        }),
      );
    }
    if (first) statements.push(...this.sharedStatements(props));
    if (first && plan.key.type === 'kms') {
      // Doctor's key probe: a data key with exactly the doctor context, which no backup has.
      statements.push(
        new iam.PolicyStatement({
          sid: 'DoctorKeyProbe',
          actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
          resources: [props.vaultKey.keyArn],
          conditions: {
            StringEquals: Object.fromEntries(
              Object.entries(DOCTOR_KEY_CONTEXT).map(([key, value]) => [
                `kms:EncryptionContext:${key}`,
                value,
              ]),
            ),
          },
        }),
      );
    }
    if (plan.key.type === 'kms' && names.length > 0) {
      // The agent's per-backup data keys: only with the context of a job of this host.
      const contexts = names.map((job) => encryptionContext(job, '*'));
      const like: Record<string, string[]> = {};
      for (const context of contexts) {
        for (const [key, value] of Object.entries(context)) {
          like[`kms:EncryptionContext:${key}`] = [
            ...new Set([...(like[`kms:EncryptionContext:${key}`] ?? []), value]),
          ];
        }
      }
      statements.push(
        new iam.PolicyStatement({
          sid: 'DataKeysWithStrongboxContext',
          actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
          resources: [props.vaultKey.keyArn],
          conditions: { StringLike: like },
        }),
      );
    }
    const parameters = [
      ...new Set(
        jobs.flatMap((job) => ('passwordParameter' in job.source ? [job.source.passwordParameter] : [])),
      ),
    ].filter((name): name is string => Boolean(name));
    if (parameters.length > 0) {
      statements.push(
        new iam.PolicyStatement({
          sid: 'ReadOwnPasswords',
          actions: ['ssm:GetParameter'],
          resources: parameters.map((name) =>
            Arn.format(
              {
                service: 'ssm',
                resource: 'parameter',
                resourceName: name.replace(/^\//, ''),
                arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
              },
              Stack.of(this),
            ),
          ),
        }),
      );
    }
    return statements;
  }

  /** What every host needs whatever its jobs: list the vault, the key through S3, agent and plan, logs. */
  private sharedStatements(props: AgentFleetProps): iam.PolicyStatement[] {
    const bucket = props.vaultBucket;
    return [
      new iam.PolicyStatement({
        sid: 'ListVault',
        // ListBucketMultipartUploads: a backup (and prune) finds the unfinished multipart uploads of
        // interrupted backups of its jobs and aborts them (AbortMultipartUpload, per job below).
        actions: ['s3:ListBucket', 's3:ListBucketMultipartUploads'],
        resources: [bucket.bucketArn],
      }),
      // `strongbox doctor` writes a probe (create-only, a fresh key) and reads it back; it may not delete it.
      new iam.PolicyStatement({
        sid: 'DoctorProbe',
        actions: ['s3:PutObject', 's3:GetObject'],
        resources: [bucket.arnForObjects(`${DOCTOR_PROBE_PREFIX}*`)],
      }),
      keyUseViaS3(props.vaultKey.keyArn, bucket.bucketArn, ['kms:GenerateDataKey', 'kms:Decrypt']),
      new iam.PolicyStatement({
        sid: 'ReadAgentAndPlan',
        actions: ['s3:GetObject'],
        resources: [
          ...Object.values(this.agentExecutables).map((asset) => assetObjectArn(asset)),
          assetObjectArn(props.plan.asset),
        ],
      }),
      // The SSM Agent calls CreateLogGroup (and DescribeLogGroups when that fails) before it streams
      // command output, and turns streaming off silently when both are denied.
      new iam.PolicyStatement({
        sid: 'StreamCommandOutput',
        actions: [
          'logs:CreateLogGroup',
          'logs:CreateLogStream',
          'logs:PutLogEvents',
          'logs:DescribeLogStreams',
        ],
        // CreateLogGroup names the group itself (`log-group:<name>`); the others its streams (`…:*`).
        resources: [
          this.commandLogGroup.logGroupArn,
          Stack.of(this).formatArn({
            service: 'logs',
            resource: 'log-group',
            resourceName: this.commandLogGroup.logGroupName,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
      new iam.PolicyStatement({
        sid: 'FindCommandOutputGroup',
        // DescribeLogGroups is authorised on the account's log groups, not on one group.
        actions: ['logs:DescribeLogGroups'],
        resources: [
          Stack.of(this).formatArn({
            service: 'logs',
            resource: 'log-group',
            resourceName: '*',
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    ];
  }
}
