import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { DOCTOR_PROBE_PREFIX, OBJECT_TAGS } from '#core/layout';
import { retentionOf } from '#core/plan';
import { STORAGE_LADDER, tierLifecycles } from '#core/retention';
import { TIERS } from '#core/tiers';
import { BOOKKEEPING_PREFIXES, Vault } from '#infra/constructs/vault';
import { VaultKey } from '#infra/constructs/vault-key';
import { vaultSettings } from '#infra/stacks/vault-stack';
import { TEST_PLAN_YAML, testApp, testPlan } from './support';

interface LifecycleRule {
  Id: string;
  Prefix?: string;
  TagFilters?: { Key: string; Value: string }[];
  ExpirationInDays?: number;
  Transitions?: { StorageClass: string; TransitionInDays: number }[];
  AbortIncompleteMultipartUpload?: unknown;
  ExpiredObjectDeleteMarker?: boolean;
  NoncurrentVersionExpiration?: { NoncurrentDays: number };
}

const MINIMUM_DAYS: Record<string, number> = Object.fromEntries(
  STORAGE_LADDER.map((step) => [step.storageClass, step.minimumDays]),
);

function vaultTemplate(props: Partial<ConstructorParameters<typeof Vault>[2]> = {}) {
  const app = testApp();
  const stack = new Stack(app, 'VaultTest');
  const { plan } = testPlan();
  const vault = new Vault(stack, 'Vault', { ...vaultSettings(plan), ...props });
  return { template: Template.fromStack(stack), vault, plan };
}

function vaultBucket(template: Template) {
  const buckets = template.findResources('AWS::S3::Bucket', { Properties: { ObjectLockEnabled: true } });
  const [only, ...more] = Object.values(buckets);
  expect(more).toHaveLength(0);
  // biome-ignore lint/suspicious/noExplicitAny: synthesized CloudFormation JSON, read field by field below
  return only as { Properties: Record<string, any>; DeletionPolicy?: string };
}

describe('Vault', () => {
  let template: Template;
  let rules: LifecycleRule[];
  let plan: ReturnType<typeof testPlan>['plan'];

  beforeAll(() => {
    ({ template, plan } = vaultTemplate());
    rules = vaultBucket(template).Properties.LifecycleConfiguration.Rules;
  });

  it('turns on versioning, Object Lock with the plan mode and days, and blocks public access', () => {
    // Assess
    const bucket = vaultBucket(template).Properties;
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.ObjectLockConfiguration).toEqual({
      ObjectLockEnabled: 'Enabled',
      Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 14 } },
    });
    expect(bucket.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
  });

  it('encrypts with SSE-KMS and a bucket key, under the vault key', () => {
    const encryption = vaultBucket(template).Properties.BucketEncryption.ServerSideEncryptionConfiguration[0];
    expect(encryption.BucketKeyEnabled).toBe(true);
    expect(encryption.ServerSideEncryptionByDefault.SSEAlgorithm).toBe('aws:kms');
    expect(encryption.ServerSideEncryptionByDefault.KMSMasterKeyID).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^VaultKey/), 'Arn'],
    });
  });

  it('logs access to a separate bucket without Object Lock', () => {
    const logging = vaultBucket(template).Properties.LoggingConfiguration;
    expect(logging.DestinationBucketName).toEqual({ Ref: expect.stringMatching(/^VaultAccessLogs/) });
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      ObjectLockEnabled: Match.absent(),
    });
  });

  it('denies every request without TLS, and TLS older than 1.2, in the bucket policy', () => {
    const policies = template.findResources('AWS::S3::BucketPolicy', {
      Properties: { Bucket: { Ref: Match.stringLikeRegexp('^VaultBucket') } },
    });
    const statements = Object.values(policies).flatMap((p) => p.Properties.PolicyDocument.Statement);
    expect(statements).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Action: 's3:*',
        Principal: { AWS: '*' },
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );
    expect(statements).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } } }),
    );
  });

  it('keeps bucket, key and access logs when they leave the stack', () => {
    expect(vaultBucket(template).DeletionPolicy).toBe('Retain');
    for (const type of ['AWS::KMS::Key', 'AWS::S3::Bucket']) {
      for (const resource of Object.values(template.findResources(type)))
        expect(resource.DeletionPolicy).toBe('Retain');
    }
  });

  it('never transitions objects under 128 KB', () => {
    const lifecycle = vaultBucket(template).Properties.LifecycleConfiguration;
    expect(lifecycle.TransitionDefaultMinimumObjectSize).toBe('all_storage_classes_128K');
  });

  describe('lifecycle rules per job and tier match the plan retention (core tierLifecycles)', () => {
    const { plan: p } = testPlan();
    const cases = p.jobs.flatMap((job) => TIERS.map((tier) => [job.name, tier] as const));

    it.each(cases)('%s %s', (jobName, tier) => {
      // Prepare
      const job = plan.jobs.find((j) => j.name === jobName);
      if (!job) throw new Error(`no job ${jobName}`);
      const expected = tierLifecycles(retentionOf(plan, job)).find((l) => l.tier === tier);

      // Act
      const rule = rules.find((r) => r.Id === `${jobName}-${tier}`);

      // Assess
      expect(rule).toBeDefined();
      expect(rule?.Prefix).toBe(`backups/${jobName}/`);
      expect(rule?.TagFilters).toEqual([{ Key: OBJECT_TAGS.tier, Value: tier }]);
      expect(rule?.ExpirationInDays).toBe(expected?.expirationDays);
      expect(rule?.Transitions ?? []).toEqual(
        (expected?.transitions ?? []).map((t) => ({
          StorageClass: t.storageClass,
          TransitionInDays: t.afterDays,
        })),
      );
    });
  });

  it("applies a job's own retention over the plan's (appdb keeps dailies 14 days)", () => {
    expect(rules.find((r) => r.Id === 'appdb-daily')?.ExpirationInDays).toBe(14);
    expect(rules.find((r) => r.Id === 'web-config-daily')?.ExpirationInDays).toBe(7);
    // 7y is seven calendar years: the longest they can be, 2557 days (core/duration retentionDays).
    expect(rules.find((r) => r.Id === 'appdb-yearly')?.ExpirationInDays).toBe(2557);
  });

  it('moves the 7-year yearly backups to Standard-IA, Glacier Flexible Retrieval and Deep Archive', () => {
    expect(rules.find((r) => r.Id === 'appdb-yearly')?.Transitions).toEqual([
      { StorageClass: 'STANDARD_IA', TransitionInDays: 30 },
      { StorageClass: 'GLACIER', TransitionInDays: 90 },
      { StorageClass: 'DEEP_ARCHIVE', TransitionInDays: 180 },
    ]);
  });

  it('never transitions into a class whose minimum storage charge outlives the stay there', () => {
    for (const rule of rules) {
      const steps = rule.Transitions ?? [];
      steps.forEach((step, i) => {
        const leaves = steps[i + 1]?.TransitionInDays ?? rule.ExpirationInDays;
        expect(leaves, `${rule.Id} ${step.StorageClass}`).toBeDefined();
        expect(
          (leaves as number) - step.TransitionInDays,
          `${rule.Id} ${step.StorageClass}`,
        ).toBeGreaterThanOrEqual(MINIMUM_DAYS[step.StorageClass] as number);
      });
    }
  });

  it('moves only tier-tagged data objects: manifests (no tier tag) never leave Standard', () => {
    for (const rule of rules.filter((r) => r.Transitions?.length)) {
      expect(
        rule.TagFilters?.map((t) => t.Key),
        rule.Id,
      ).toContain(OBJECT_TAGS.tier);
    }
  });

  it("expires the WAL of jobs that recover to a point in time after the job's window, and keeps no rule for others", () => {
    // Logical dumps and file trees keep no WAL archive (their sources lack the pointInTime capability).
    expect(rules.find((r) => r.Id === 'appdb-wal')).toBeUndefined();
    expect(rules.find((r) => r.Id === 'web-config-wal')).toBeUndefined();
    const settings = vaultSettings(plan);
    const { template: withWal } = vaultTemplate({
      jobs: settings.jobs.map((job) => (job.name === 'appdb' ? { ...job, archivesWal: true } : job)),
    });
    const walRules = vaultBucket(withWal).Properties.LifecycleConfiguration.Rules as LifecycleRule[];
    expect(walRules.find((r) => r.Id === 'appdb-wal')).toEqual(
      expect.objectContaining({ Prefix: 'wal/appdb/', ExpirationInDays: 3 }),
    );
  });

  it("expires doctor's vault probes after a day (hosts may not delete them)", () => {
    expect(rules.find((r) => r.Prefix === DOCTOR_PROBE_PREFIX)).toEqual({
      Id: 'doctor-probes',
      Status: 'Enabled',
      Prefix: DOCTOR_PROBE_PREFIX,
      ExpirationInDays: 1,
    });
  });

  it('aborts incomplete multipart uploads after a day, in a rule without tag filters', () => {
    const rule = rules.find((r) => r.AbortIncompleteMultipartUpload);
    expect(rule).toEqual({
      Id: 'abort-incomplete-uploads',
      Status: 'Enabled',
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
    });
  });

  it('expires noncurrent versions and expired delete markers, in a rule without tag filters', () => {
    const rule = rules.find((r) => r.NoncurrentVersionExpiration);
    expect(rule).toEqual({
      Id: 'noncurrent-versions',
      Status: 'Enabled',
      NoncurrentVersionExpiration: { NoncurrentDays: 7 },
      ExpiredObjectDeleteMarker: true,
    });
  });

  it('never combines a tag filter with abort or delete-marker actions (S3 rejects that)', () => {
    for (const rule of rules.filter((r) => r.TagFilters)) {
      expect(rule.AbortIncompleteMultipartUpload, rule.Id).toBeUndefined();
      expect(rule.ExpiredObjectDeleteMarker, rule.Id).toBeUndefined();
    }
  });

  it.each(BOOKKEEPING_PREFIXES)("expires the functions' bookkeeping below %s after 30 days", (prefix) => {
    expect(rules.find((r) => r.Prefix === prefix)?.ExpirationInDays).toBe(30);
  });

  it('sends bucket events to EventBridge (restores continue when an archive retrieval is done)', () => {
    expect(vaultBucket(template).Properties.NotificationConfiguration).toEqual({
      EventBridgeConfiguration: { EventBridgeEnabled: true },
    });
  });
});

describe('Vault options', () => {
  it('enables Object Lock without a default retention when the plan sets none', () => {
    // Act
    const { template } = vaultTemplate({ objectLock: undefined });

    // Assess
    const bucket = vaultBucket(template).Properties;
    expect(bucket.ObjectLockEnabled).toBe(true);
    expect(bucket.ObjectLockConfiguration).toBeUndefined();
  });

  it.each([
    ['STANDARD_IA', false],
    ['INTELLIGENT_TIERING', false],
    ['STANDARD', true],
  ] as const)('with uploads in %s, transitions to Standard-IA are kept: %s', (uploadStorageClass, kept) => {
    const { template } = vaultTemplate({ uploadStorageClass });
    const rules: LifecycleRule[] = vaultBucket(template).Properties.LifecycleConfiguration.Rules;
    const classes = rules.flatMap((r) => r.Transitions ?? []).map((t) => t.StorageClass);
    expect(classes.includes('STANDARD_IA')).toBe(kept);
    expect(classes).toContain('DEEP_ARCHIVE');
  });

  it('replicates backups/ and wal/ to the replica bucket with its aliased key, without deletes', () => {
    // Act
    const { template } = vaultTemplate({
      replication: {
        bucketName: 'replica-bucket',
        region: 'eu-west-1',
        keyAlias: 'alias/strongbox/acme/replica',
      },
    });

    // Assess
    const replication = vaultBucket(template).Properties.ReplicationConfiguration;
    expect(replication.Rules.map((r: { Filter: { Prefix: string } }) => r.Filter.Prefix)).toEqual([
      'backups/',
      'wal/',
    ]);
    for (const rule of replication.Rules) {
      expect(rule.DeleteMarkerReplication).toEqual({ Status: 'Disabled' });
      expect(rule.SourceSelectionCriteria).toEqual({ SseKmsEncryptedObjects: { Status: 'Enabled' } });
      expect(JSON.stringify(rule.Destination.EncryptionConfiguration)).toContain(
        ':alias/strongbox/acme/replica',
      );
    }
    const actions = Object.values(template.findResources('AWS::IAM::Policy')).flatMap((p) =>
      p.Properties.PolicyDocument.Statement.flatMap((s: { Action: string | string[] }) => s.Action),
    );
    expect(actions).toEqual(expect.arrayContaining(['s3:ReplicateObject', 's3:GetObjectRetention']));
    expect(actions.filter((a: string) => /Delete|PutBucket|PutLifecycle/.test(a))).toEqual([]);
  });

  it('refuses a vault without jobs', () => {
    const stack = new Stack(testApp(), 'Empty');
    expect(() => new Vault(stack, 'Vault', { jobs: [] })).toThrow(/jobs must name at least one job/);
  });
});

describe('VaultKey', () => {
  function keyTemplate(rotationPeriod?: Duration) {
    const stack = new Stack(testApp(), 'KeyTest');
    new VaultKey(stack, 'Key', { rotationPeriod });
    return Template.fromStack(stack);
  }

  it('rotates every 90 days by default and on the given period otherwise', () => {
    keyTemplate().hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      RotationPeriodInDays: 90,
    });
    keyTemplate(Duration.days(365)).hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      RotationPeriodInDays: 365,
    });
  });

  it.each([30, 3000])('refuses a rotation period of %i days', (days) => {
    expect(() => keyTemplate(Duration.days(days))).toThrow(/rotationPeriod must be 90 to 2560/);
  });

  it('denies data use without the Strongbox or S3 encryption context, to every principal', () => {
    const [key] = Object.values(keyTemplate().findResources('AWS::KMS::Key'));
    const deny = key?.Properties.KeyPolicy.Statement.find((s: { Effect: string }) => s.Effect === 'Deny');
    expect(deny).toEqual(
      expect.objectContaining({
        Principal: { AWS: '*' },
        Action: expect.arrayContaining(['kms:Decrypt', 'kms:GenerateDataKey', 'kms:Encrypt']),
        Condition: {
          Null: { 'kms:EncryptionContext:strongbox:job': 'true', 'kms:EncryptionContext:aws:s3:arn': 'true' },
        },
      }),
    );
  });

  it('is rotated from the plan (vault.keyRotationDays)', () => {
    const stack = new Stack(testApp(), 'FromPlan');
    const { plan } = testPlan(testPlanWith('  keyRotationDays: 180'));
    new Vault(stack, 'Vault', vaultSettings(plan));
    Template.fromStack(stack).hasResourceProperties('AWS::KMS::Key', { RotationPeriodInDays: 180 });
  });
});

/** The test plan with one more line in its vault mapping. */
function testPlanWith(vaultLine: string): string {
  return TEST_PLAN_YAML.replace('  url: s3://acme-backups\n', `  url: s3://acme-backups\n${vaultLine}\n`);
}
