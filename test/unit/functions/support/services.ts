/**
 * Services for handler tests: the real plan parser, a real vault (s3rver through the agent's S3Vault,
 * or the MemoryVault where archive classes are needed), Powertools' real logger and metrics, and the
 * AWS APIs without a local server (SSM, SNS, and S3's conditional writes) mocked at the SDK client.
 */
import { Readable } from 'node:stream';
import { Logger } from '@aws-lambda-powertools/logger';
import { DeleteObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { S3ClaimStore } from '#adapters/aws/claims';
import type { S3Vault } from '#adapters/vaults/s3';
import { type Plan, parsePlan } from '#core/plan';
import type { Clock, Vault } from '#core/ports';
import type { EnvName, FunctionEnv } from '#functions/env';
import { ALERT_ATTRIBUTE, alertSchema } from '#functions/lib/alerts';
import { createMetrics } from '#functions/lib/metrics';
import type { RetrievableVault, Services } from '#functions/runtime';
import { s3rverVault as openS3rverVault, type S3rverInstance } from '#test/support/s3rver';

/** The environment the stack would set (fake names, no secrets). */
export const TEST_ENV: FunctionEnv<EnvName> = {
  planBucket: 'strongbox-plan-test',
  planKey: 'plan.json',
  vaultBucket: 'backups-test',
  documentName: 'Strongbox-Agent-ABC123',
  topicArn: 'arn:aws:sns:eu-central-1:111122223333:strongbox-alerts',
  logGroupName: '/strongbox/commands',
  slackWebhookParameter: '/strongbox/slack-webhook',
  metricsNamespace: 'Strongbox',
  serviceName: 'strongbox',
};

/** A plan with one logical PostgreSQL job on an EC2 host, one on tagged hosts, and a drill host. */
export const TEST_PLAN_YAML = `
version: 1
name: acme-prod
timezone: UTC
vault: { url: 's3://backups-test' }
key: { type: kms, keyId: 'alias/strongbox' }
hosts:
  db-primary: { instanceIds: [i-0123456789abcdef0] }
  web: { tags: { Role: web, Env: prod }, maxConcurrency: '50%', maxErrors: 1 }
  drill: { instanceIds: [mi-0123456789abcdef0] }
jobs:
  - name: app-db
    host: db-primary
    schedule: cron(0 2 * * ? *)
    source: { kind: postgres, database: app }
    timeout: 2h
    drill: { host: drill, rto: 1h, checks: [{ name: orders, query: 'select count(*) from orders', expect: 1000 }] }
  - name: web-files
    host: web
    schedule: cron(30 2 * * ? *)
    source: { kind: files, paths: [/srv/www] }
`;

export const testPlan = (): Plan => parsePlan(TEST_PLAN_YAML, 'test plan');

/** An S3Vault on s3rver, as the agent would open it. */
export function s3rverVault(s3: S3rverInstance, plan: Plan = testPlan()): S3Vault {
  return openS3rverVault(s3, plan.vault);
}

/** A clock that stands still until moved. */
export function fixedClock(at: Date): Clock & { set(at: Date): void } {
  let now = at;
  return { now: () => now, set: (to) => (now = to) };
}

/**
 * An S3 client whose conditional writes behave as S3's do (create-only with If-None-Match: *),
 * mocked at the SDK; `claims` holds what was written. With `mirror`, claims are also written to (and
 * removed from) that vault, as they share the vault bucket in a deployment.
 */
export function conditionalS3(mirror?: Vault) {
  const client = new S3Client({ region: 'eu-central-1' });
  const mock = mockClient(client);
  const claims = new Map<string, string>();
  mock.on(PutObjectCommand).callsFake((input: { Key: string; Body: string; IfNoneMatch?: string }) => {
    if (input.IfNoneMatch === '*' && claims.has(input.Key)) {
      throw new S3ServiceException({
        name: 'PreconditionFailed',
        $fault: 'client',
        $metadata: { httpStatusCode: 412 },
        message: 'At least one of the pre-conditions you specified did not hold',
      });
    }
    claims.set(input.Key, String(input.Body));
    return mirror
      ? mirror.put(input.Key, Readable.from([Buffer.from(String(input.Body))])).then(() => ({}))
      : {};
  });
  mock.on(DeleteObjectCommand).callsFake((input: { Key: string }) => {
    claims.delete(input.Key);
    return mirror ? mirror.delete([input.Key]).then(() => ({})) : {};
  });
  return { client, mock, claims };
}

/** Services with mocked SSM and SNS clients (configure them with the returned mocks). */
export function testServices(options: {
  vault: RetrievableVault;
  plan?: Plan;
  clock?: Clock;
  service?: string;
}) {
  const ssm = new SSMClient({ region: 'eu-central-1' });
  const sns = new SNSClient({ region: 'eu-central-1' });
  const ssmMock = mockClient(ssm);
  const snsMock = mockClient(sns);
  const s3 = conditionalS3(options.vault);
  const service = options.service ?? 'test';
  const services: Services = {
    env: TEST_ENV,
    plan: options.plan ?? testPlan(),
    vault: options.vault,
    claims: new S3ClaimStore(s3.client, TEST_ENV.vaultBucket, async () => {}),
    s3: s3.client,
    ssm,
    sns,
    logger: new Logger({ serviceName: service, logLevel: 'DEBUG' }),
    metrics: createMetrics(service),
    clock: options.clock ?? fixedClock(new Date('2024-12-06T02:00:03Z')),
    sleep: async () => {},
  };
  return { services, ssmMock, snsMock, s3 };
}

/** The alerts a handler published on a mocked SNS client: subject, e-mail text and the parsed alert. */
export function publishedAlerts(snsMock: ReturnType<typeof testServices>['snsMock']) {
  return snsMock.commandCalls(PublishCommand).map((c) => ({
    subject: c.args[0].input.Subject,
    text: c.args[0].input.Message ?? '',
    alert: alertSchema.parse(
      JSON.parse(c.args[0].input.MessageAttributes?.[ALERT_ATTRIBUTE]?.StringValue ?? '{}'),
    ),
  }));
}
