/**
 * What the handlers share at run time: AWS clients created once at module scope, the plan loaded once
 * per cold start from its S3 object, the vault (the agent's S3Vault over the deployment's bucket), the
 * claim store, the clock, and Powertools' logger and metrics. Handlers build it at their entry from
 * `process.env` (functions/env) and tests build it by hand with mocked clients and a real vault.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { type ClaimStore, S3ClaimStore } from '#adapters/aws/claims';
import { awsErrorName, describeAwsError } from '#adapters/aws/errors';
import { type RetrievalTier, S3Vault } from '#adapters/vaults/s3';
import { PlanError } from '#core/errors';
import { type Plan, parsePlan } from '#core/plan';
import type { Clock, Vault } from '#core/ports';
import { systemClock } from '#core/ports';
import { type EnvName, type FunctionEnv, readFunctionEnv } from './env';

/** A vault that can also ask for archived objects to be retrieved (the S3 vault can). */
export interface RetrievableVault extends Vault {
  requestRestore(key: string, days: number, tier: RetrievalTier): Promise<unknown>;
}

/** Everything a handler uses. */
export interface Services<K extends EnvName = EnvName> {
  env: FunctionEnv<K>;
  plan: Plan;
  vault: RetrievableVault;
  claims: ClaimStore;
  s3: S3Client;
  ssm: SSMClient;
  sns: SNSClient;
  logger: Logger;
  metrics: Metrics;
  clock: Clock;
  /** Waits (retries, back-off); tests make it instant. */
  sleep: (ms: number) => Promise<void>;
}

/** AWS clients, created once per container; the SDK reads the region from the Lambda environment. */
const clients = { s3: new S3Client({}), ssm: new SSMClient({}), sns: new SNSClient({}) };

/**
 * Loads and validates the plan JSON object the stack uploaded.
 * @throws PlanError when it cannot be read or is not a valid plan.
 */
export async function loadPlan(s3: S3Client, bucket: string, key: string): Promise<Plan> {
  const where = `s3://${bucket}/${key}`;
  let text: string;
  try {
    const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    text = (await response.Body?.transformToString('utf8')) ?? '';
  } catch (error) {
    throw new PlanError([`cannot read the plan at ${where}: ${describeAwsError(error)}`], { cause: error });
  }
  try {
    return parsePlan(text, where);
  } catch (error) {
    if (!(error instanceof PlanError) || error.issues.every((i) => i.startsWith(where))) throw error;
    throw new PlanError(
      error.issues.map((issue) => `${where}: ${issue}`),
      { cause: error },
    );
  }
}

/**
 * The deployment's vault: the plan's vault settings with the stack's bucket as its root
 * (`s3://<STRONGBOX_VAULT_BUCKET>`, as hosts get it in STRONGBOX_VAULT_URL) and AWS's endpoint.
 */
export function deploymentVault(plan: Plan, bucket: string, client: S3Client): S3Vault {
  return new S3Vault({ ...plan.vault, url: `s3://${bucket}`, endpoint: undefined }, { client });
}

/**
 * Opens the services of a handler from the environment: called once per cold start by `lazy`.
 * @throws PlanError when a variable is missing or the plan is invalid.
 */
export async function openServices<K extends EnvName>(
  processEnv: Readonly<Record<string, string | undefined>>,
  names: readonly K[],
  observability: { logger: Logger; metrics: Metrics },
): Promise<Services<K | 'planBucket' | 'planKey' | 'vaultBucket'>> {
  const env = readFunctionEnv(processEnv, [...names, 'planBucket', 'planKey', 'vaultBucket'] as const);
  const plan = await loadPlan(clients.s3, env.planBucket, env.planKey);
  return {
    env,
    plan,
    vault: deploymentVault(plan, env.vaultBucket, clients.s3),
    claims: new S3ClaimStore(clients.s3, env.vaultBucket),
    ...clients,
    ...observability,
    clock: systemClock,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
}

/**
 * Memoises an async factory for the life of the container; a failure is not kept, so the next
 * invocation tries again (a plan fixed in S3 is picked up without a redeploy of the function).
 */
export function lazy<T>(build: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= build().catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    return pending;
  };
}

/** Whether an SDK error says a thing does not exist (used to tell "gone" from "failed"). */
export function isNotFound(error: unknown): boolean {
  return ['NoSuchKey', 'NotFound', 'InvocationDoesNotExist'].includes(awsErrorName(error) ?? '');
}
