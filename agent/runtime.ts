/**
 * What every command needs, opened once from the plan file and the environment: the validated plan,
 * the vault, the key provider, the clock and where progress lines go.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { SsmSecretStore } from '#adapters/aws/secrets';
import { openKeyProvider } from '#adapters/keys/index';
import { openVault } from '#adapters/vaults/index';
import { describeRetry } from '#adapters/vaults/retrying';
import { AGENT_ENV } from '#core/deployment';
import { PlanError } from '#core/errors';
import { type Plan, parsePlan } from '#core/plan';
import { type Clock, type KeyProvider, type SecretStore, systemClock, type Vault } from '#core/ports';

/** Environment variables, read once at the entry point and passed down. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The opened plan and the adapters it names. */
export interface Runtime {
  plan: Plan;
  /** Absolute path of the plan file. */
  planPath: string;
  vault: Vault;
  keys: KeyProvider;
  /** Where secrets the plan names by reference are read (SSM SecureString parameters). */
  secrets: SecretStore;
  env: Env;
  clock: Clock;
  /** Name of this host as recorded in manifests. */
  host: string;
  /** Writes one progress line (to stderr); never data, never secrets. */
  log: (line: string) => void;
  /** Aborted when the operator interrupts the agent (SIGINT, SIGTERM): work stops and cleans up. */
  signal: AbortSignal;
}

/**
 * Reads and validates a plan file, then applies the deployment's overrides from the environment
 * (`STRONGBOX_VAULT_URL`, `STRONGBOX_KMS_KEY_ID`): on AWS the stack creates the bucket and key with
 * generated names that the plan cannot know.
 * @throws PlanError when the file is missing or invalid.
 */
export async function loadPlanFile(path: string, env: Env): Promise<Plan> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new PlanError(
      [`cannot read plan ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`],
      {
        cause: error,
      },
    );
  }
  const plan = parsePlan(text, path);
  const vaultUrl = env[AGENT_ENV.vaultUrl];
  const kmsKeyId = env[AGENT_ENV.kmsKeyId];
  return {
    ...plan,
    vault: vaultUrl ? { ...plan.vault, url: vaultUrl } : plan.vault,
    key: kmsKeyId ? { type: 'kms', keyId: kmsKeyId, region: env[AGENT_ENV.region] } : plan.key,
  };
}

/** Opens the plan and its adapters. */
export async function openRuntime(
  planPath: string,
  env: Env,
  options: { log?: (line: string) => void; clock?: Clock; signal?: AbortSignal } = {},
): Promise<Runtime> {
  const absolute = resolve(planPath);
  const plan = await loadPlanFile(absolute, env);
  const log = options.log ?? (() => {});
  const signal = options.signal ?? new AbortController().signal;
  return {
    plan,
    planPath: absolute,
    // Retries of reads, listings and deletes stop when the operator interrupts the agent.
    vault: await openVault(plan.vault, {
      env,
      retry: { signal, onRetry: (event) => log(describeRetry(event)) },
    }),
    keys: await openKeyProvider(plan.key, { baseDir: dirname(absolute) }),
    secrets: new SsmSecretStore({ env }),
    env,
    clock: options.clock ?? systemClock,
    host: hostname(),
    log,
    signal,
  };
}
