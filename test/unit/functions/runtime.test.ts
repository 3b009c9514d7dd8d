import {
  GetObjectCommand,
  type GetObjectCommandOutput,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { S3ClaimStore } from '#adapters/aws/claims';
import { FUNCTIONS } from '#core/deployment';
import { PlanError, VaultError } from '#core/errors';
import { readFunctionEnv } from '#functions/env';
import { deploymentVault, lazy, loadPlan } from '#functions/runtime';
import { captureOutput } from './support/output';
import { TEST_PLAN_YAML } from './support/services';

captureOutput();

const s3Error = (name: string, status: number) =>
  new S3ServiceException({
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
  });

describe('readFunctionEnv', () => {
  it('reads the named variables and names every missing one', () => {
    const env = {
      STRONGBOX_PLAN_BUCKET: 'plans',
      STRONGBOX_PLAN_KEY: ' plan.json ',
      STRONGBOX_TOPIC_ARN: '',
    };
    expect(readFunctionEnv(env, ['planBucket', 'planKey'])).toEqual({
      planBucket: 'plans',
      planKey: 'plan.json',
    });
    expect(() => readFunctionEnv(env, ['planBucket', 'topicArn', 'documentName'])).toThrow(
      new PlanError([
        'STRONGBOX_TOPIC_ARN: not set (the Strongbox stack sets it on this function)',
        'STRONGBOX_DOCUMENT_NAME: not set (the Strongbox stack sets it on this function)',
      ]),
    );
  });
});

describe('S3ClaimStore', () => {
  it('claims with a create-only put and reports an existing claim as lost', async () => {
    const client = new S3Client({ region: 'eu-central-1' });
    const mock = mockClient(client);
    mock.on(PutObjectCommand).resolvesOnce({}).rejects(s3Error('PreconditionFailed', 412));
    const store = new S3ClaimStore(client, 'vault-bucket', async () => {});
    expect(await store.claim('runs/app-db/20241206T020000Z-fb5f62.json', '{}')).toBe(true);
    expect(await store.claim('runs/app-db/20241206T020000Z-fb5f62.json', '{}')).toBe(false);
    expect(mock.commandCalls(PutObjectCommand)[0]?.args[0].input).toMatchObject({
      Bucket: 'vault-bucket',
      Key: 'runs/app-db/20241206T020000Z-fb5f62.json',
      IfNoneMatch: '*',
      ContentType: 'application/json',
    });
  });

  it('retries once on a concurrent conditional write, then leaves it to the other writer', async () => {
    const client = new S3Client({ region: 'eu-central-1' });
    const mock = mockClient(client);
    mock.on(PutObjectCommand).rejects(s3Error('ConditionalRequestConflict', 409));
    const store = new S3ClaimStore(client, 'vault-bucket', async () => {});
    expect(await store.claim('k', '{}')).toBe(false);
    expect(mock.commandCalls(PutObjectCommand)).toHaveLength(2);
  });

  it.each([
    ['AccessDenied', 403, false],
    ['SlowDown', 503, true],
  ])('turns %s into a VaultError (retryable: %s)', async (name, status, retryable) => {
    const client = new S3Client({ region: 'eu-central-1' });
    mockClient(client).on(PutObjectCommand).rejects(s3Error(name, status));
    const error = await new S3ClaimStore(client, 'vault-bucket').claim('k', '{}').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VaultError);
    expect((error as VaultError).retryable).toBe(retryable);
    expect((error as Error).message).toContain(`claim s3://vault-bucket/k failed: ${name}`);
  });
});

describe('loadPlan and the deployment vault', () => {
  // The SDK's streaming body, as far as loadPlan uses it.
  const body = (text: string) =>
    ({ transformToString: async () => text }) as unknown as NonNullable<GetObjectCommandOutput['Body']>;

  it('loads the plan JSON object and roots the vault at the stack bucket', async () => {
    const client = new S3Client({ region: 'eu-central-1' });
    const mock = mockClient(client);
    // The stack uploads the plan document as written (infra PlanAsset), as JSON.
    mock.on(GetObjectCommand).resolves({ Body: body(JSON.stringify(parseYaml(TEST_PLAN_YAML))) });
    const plan = await loadPlan(client, 'plans', 'plan.json');
    expect(plan.jobs.map((j) => j.name)).toEqual(['app-db', 'web-files']);
    const vault = deploymentVault(
      { ...plan, vault: { ...plan.vault, url: 's3://elsewhere/prefix' } },
      'stack-vault-1a2b',
      client,
    );
    expect(vault.url).toBe('s3://stack-vault-1a2b');
  });

  it.each([
    [
      'an invalid plan',
      () => ({ Body: body(TEST_PLAN_YAML.replace('version: 1', 'version: 2')) }),
      's3://plans/plan.json',
    ],
    [
      'a plan it cannot read',
      () => Promise.reject(s3Error('AccessDenied', 403)),
      'cannot read the plan at s3://plans/plan.json: AccessDenied',
    ],
  ])('fails with a PlanError on %s', async (_what, answer, message) => {
    const client = new S3Client({ region: 'eu-central-1' });
    mockClient(client).on(GetObjectCommand).callsFake(answer);
    const error = await loadPlan(client, 'plans', 'plan.json').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toContain(message);
  });
});

describe('lazy', () => {
  it('builds once, but builds again after a failure', async () => {
    let builds = 0;
    const get = lazy(async () => {
      builds++;
      if (builds === 1) throw new Error('plan not there yet');
      return builds;
    });
    await expect(get()).rejects.toThrow('plan not there yet');
    expect(await get()).toBe(2);
    expect(await get()).toBe(2);
  });
});

describe('the Lambda entry points', () => {
  it.each(Object.values(FUNCTIONS))(
    '%s exports a handler that fails clearly when the stack did not set its environment',
    async (name) => {
      const saved = { ...process.env };
      for (const key of Object.keys(process.env)) if (key.startsWith('STRONGBOX_')) delete process.env[key];
      try {
        const module = (await import(`../../../functions/${name}.ts`)) as {
          handler: (e: unknown) => Promise<unknown>;
        };
        const error = await module.handler({}).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(PlanError);
        expect((error as Error).message).toMatch(/STRONGBOX_[A-Z_]+: not set/);
      } finally {
        process.env = saved;
      }
    },
  );
});
