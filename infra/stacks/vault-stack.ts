/**
 * The stateful half of a deployment, in its own stacks: the vault bucket, its key and its access logs
 * (retained, termination-protected), and the optional replica in another region. Everything else lives
 * in StrongboxStack and reads the vault through this stack's exports.
 */
import { createHash } from 'node:crypto';
import { CfnOutput, Duration, Fn, Stack, type StackProps } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { DEFAULT_KEY_ROTATION_DAYS, type Plan, retentionOf } from '#core/plan';
import { capabilitiesOf } from '#core/sources/index';
import { replicaBucketName, Vault, type VaultJob, type VaultReplication } from '../constructs/vault';

/** The vault settings a plan implies (jobs with their retention, Object Lock, upload class, rotation). */
export function vaultSettings(plan: Plan) {
  const jobs: VaultJob[] = plan.jobs.map((job) => ({
    name: job.name,
    retention: retentionOf(plan, job),
    // Sources that recover to a point in time keep a WAL archive, expired after the pointInTime window.
    archivesWal: capabilitiesOf(job.source.kind).pointInTime,
  }));
  return {
    jobs,
    objectLock: plan.vault.objectLock,
    uploadStorageClass: plan.vault.storageClass,
    keyRotationPeriod: Duration.days(plan.vault.keyRotationDays ?? DEFAULT_KEY_ROTATION_DAYS),
  };
}

/** The replica of a plan's vault: bucket name, region and key alias, or undefined without replicaRegion. */
export function replicaOf(plan: Plan): VaultReplication | undefined {
  const region = plan.vault.replicaRegion;
  if (!region) return undefined;
  // From the plan name only, so editing the plan never renames the bucket.
  const hash = createHash('sha256').update(plan.name).digest('hex');
  return {
    bucketName: replicaBucketName(region, hash),
    region,
    keyAlias: `alias/strongbox/${plan.name}/replica`,
  };
}

/** Properties of a {@link StrongboxVaultStack}. */
export interface StrongboxVaultStackProps extends StackProps {
  /** The validated plan. */
  readonly plan: Plan;
}

/**
 * The vault of a plan, retained and termination-protected, with CloudFormation exports for the rest.
 * @example const vault = new StrongboxVaultStack(app, 'acme-vault', { plan });
 */
export class StrongboxVaultStack extends Stack {
  /** The vault. */
  readonly vault: Vault;
  private readonly exportNames: { bucketName: string; bucketArn: string; keyArn: string };

  constructor(scope: Construct, id: string, props: StrongboxVaultStackProps) {
    super(scope, id, {
      description: `Strongbox ${props.plan.name}: the vault bucket and its key (retained)`,
      terminationProtection: true,
      ...props,
    });
    this.vault = new Vault(this, 'Vault', {
      ...vaultSettings(props.plan),
      replication: replicaOf(props.plan),
    });
    this.exportNames = {
      bucketName: `${this.stackName}-VaultBucketName`,
      bucketArn: `${this.stackName}-VaultBucketArn`,
      keyArn: `${this.stackName}-VaultKeyArn`,
    };
    new CfnOutput(this, 'VaultBucketName', {
      description: 'The vault bucket',
      value: this.vault.bucket.bucketName,
      exportName: this.exportNames.bucketName,
    });
    new CfnOutput(this, 'VaultBucketArn', {
      value: this.vault.bucket.bucketArn,
      exportName: this.exportNames.bucketArn,
    });
    new CfnOutput(this, 'VaultKeyArn', {
      description: 'The vault key: STRONGBOX_KMS_KEY_ID for `strongbox` run by hand on a host',
      value: this.vault.key.keyArn,
      exportName: this.exportNames.keyArn,
    });
    new CfnOutput(this, 'VaultUrl', {
      description: 'STRONGBOX_VAULT_URL for `strongbox` run by hand on a host',
      value: `s3://${this.vault.bucket.bucketName}`,
    });
  }

  /**
   * The vault bucket and key as another stack of the same environment sees them, through this stack's
   * exports (explicit names, so IAM statements in the consumer resolve to stable strings).
   */
  importVault(scope: Construct): { bucket: s3.IBucket; key: kms.IKey } {
    const consumer = Stack.of(scope);
    consumer.addStackDependency(this, 'it imports the vault bucket and key');
    return {
      bucket: s3.Bucket.fromBucketAttributes(scope, 'VaultBucket', {
        bucketArn: Fn.importValue(this.exportNames.bucketArn),
        bucketName: Fn.importValue(this.exportNames.bucketName),
      }),
      key: kms.Key.fromKeyArn(scope, 'VaultKey', Fn.importValue(this.exportNames.keyArn)),
    };
  }
}

/** Properties of a {@link StrongboxReplicaStack}. */
export interface StrongboxReplicaStackProps extends StackProps {
  /** The validated plan, with `vault.replicaRegion`. */
  readonly plan: Plan;
}

/**
 * The replica of a plan's vault in `vault.replicaRegion`: same lifecycle and Object Lock, its own key
 * (aliased, so the source can name it), retained and termination-protected. Deployed before the vault.
 * @example new StrongboxReplicaStack(app, 'acme-replica', { plan, env: { region: 'eu-west-1' } });
 */
export class StrongboxReplicaStack extends Stack {
  /** The replica vault. */
  readonly vault: Vault;

  constructor(scope: Construct, id: string, props: StrongboxReplicaStackProps) {
    const replica = replicaOf(props.plan);
    if (!replica) throw new Error(`${id}: the plan has no vault.replicaRegion`);
    super(scope, id, {
      description: `Strongbox ${props.plan.name}: replica of the vault in ${replica.region} (retained)`,
      terminationProtection: true,
      ...props,
      env: { ...props.env, region: replica.region },
    });
    this.vault = new Vault(this, 'Vault', {
      ...vaultSettings(props.plan),
      bucketName: replica.bucketName,
      keyAlias: replica.keyAlias,
      eventBridgeEnabled: false,
    });
    new CfnOutput(this, 'ReplicaBucketName', { value: this.vault.bucket.bucketName });
  }
}
