/**
 * The vault's customer-managed KMS key: rotated automatically, retained, and usable for data only with
 * an encryption context — Strongbox's (`strongbox:job`, `strongbox:backup`, on the per-backup data keys
 * the agent asks for) or S3's own (`aws:s3:arn`, on SSE-KMS calls S3 makes for the bucket).
 */
import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { encryptionContext } from '#core/manifest';
import { DEFAULT_KEY_ROTATION_DAYS } from '#core/plan';

/** KMS operations that use key material for data, which the key policy binds to an encryption context. */
export const KMS_DATA_ACTIONS = [
  'kms:Encrypt',
  'kms:Decrypt',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
  'kms:GenerateDataKey',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:GenerateDataKeyPair',
  'kms:GenerateDataKeyPairWithoutPlaintext',
] as const;

/** The encryption-context keys of the data keys the agent generates (core/manifest `encryptionContext`). */
export const STRONGBOX_CONTEXT_KEYS = Object.keys(encryptionContext('job', 'backup'));

/** The encryption-context key S3 sends for SSE-KMS on a bucket with a bucket key: the bucket's ARN. */
export const S3_CONTEXT_KEY = 'aws:s3:arn';

/** Properties of a {@link VaultKey}. */
export interface VaultKeyProps {
  /**
   * How often KMS rotates the key material (90 to 2560 days). Old material stays, so everything
   * encrypted before a rotation stays readable.
   * @default Duration.days(DEFAULT_KEY_ROTATION_DAYS) — 90 days
   */
  readonly rotationPeriod?: Duration;
  /**
   * What happens to the key when it leaves the stack. Deleting it makes every backup unreadable, so
   * anything but RETAIN needs a reason.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Description shown in the KMS console.
   * @default 'Strongbox vault key'
   */
  readonly description?: string;
}

/**
 * A symmetric KMS key for a Strongbox vault. Its policy gives the account the usual administration (IAM
 * policies decide who may use it) and denies every data operation that carries neither the Strongbox
 * encryption context nor S3's, so no grant in an IAM policy can use the key for anything else.
 * @example const key = new VaultKey(this, 'Key', { rotationPeriod: Duration.days(180) });
 */
export class VaultKey extends Construct {
  /** The key. */
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: VaultKeyProps = {}) {
    super(scope, id);
    const rotationPeriod = props.rotationPeriod ?? Duration.days(DEFAULT_KEY_ROTATION_DAYS);
    const days = rotationPeriod.toDays();
    if (!Number.isInteger(days) || days < 90 || days > 2560) {
      throw new RangeError(`${this.node.path}: rotationPeriod must be 90 to 2560 whole days, got ${days}`);
    }
    this.key = new kms.Key(this, 'Key', {
      description: props.description ?? 'Strongbox vault key',
      enableKeyRotation: true,
      rotationPeriod,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'DenyDataUseWithoutStrongboxOrS3Context',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [...KMS_DATA_ACTIONS],
        resources: ['*'],
        conditions: {
          Null: Object.fromEntries(
            [STRONGBOX_CONTEXT_KEYS[0] as string, S3_CONTEXT_KEY].map((key) => [
              `kms:EncryptionContext:${key}`,
              'true',
            ]),
          ),
        },
      }),
    );
  }
}

/**
 * Encryption-context condition of the SSE-KMS calls S3 makes for objects of one bucket (the bucket's
 * ARN with a bucket key, the object's ARN without).
 */
export function s3ContextCondition(bucketArn: string): Record<string, Record<string, string[]>> {
  return { StringLike: { [`kms:EncryptionContext:${S3_CONTEXT_KEY}`]: [bucketArn, `${bucketArn}/*`] } };
}

/**
 * A statement that lets a principal use a vault key through S3, for one bucket only: `kms:Decrypt` to
 * read its objects, `kms:GenerateDataKey` to write them.
 * @example role.addToPolicy(keyUseViaS3(vault.key.keyArn, vault.bucket.bucketArn, ['kms:Decrypt']))
 */
export function keyUseViaS3(
  keyArn: string,
  bucketArn: string,
  actions: readonly (typeof KMS_DATA_ACTIONS)[number][],
): iam.PolicyStatement {
  return new iam.PolicyStatement({
    actions: [...actions],
    resources: [keyArn],
    conditions: {
      StringEquals: { 'kms:ViaService': `s3.${Aws.REGION}.amazonaws.com` },
      ...s3ContextCondition(bucketArn),
    },
  });
}
