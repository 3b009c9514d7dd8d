/**
 * What every command needs, opened once from the plan file and the environment: the validated plan,
 * the vault, the key provider, the clock and where progress lines go.
 */
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { SsmSecretStore } from '#adapters/aws/secrets';
import { openKeyProvider } from '#adapters/keys/index';
import { openVault } from '#adapters/vaults/index';
import { describeRetry } from '#adapters/vaults/retrying';
import type { Progress } from '#agent/progress';
import { AGENT_ENV } from '#core/deployment';
import { describeError, PlanError } from '#core/errors';
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
  /** Where long runs show how far they got (a terminal's progress line); absent: nowhere. */
  progress?: Progress;
  /**
   * The plan's copy whose vault and key this runtime reads (agent/copy `openCopyRuntime`, `--from`);
   * absent: the primary vault. A point-in-time restore's restore_command fetches WAL from the same one.
   */
  copy?: string;
}

/**
 * Reads and validates a plan file, then applies the deployment's overrides from the environment
 * (`STRONGBOX_VAULT_URL`, `STRONGBOX_KMS_KEY_ID`): on AWS the stack creates the bucket and key with
 * generated names that the plan cannot know.
 * @throws PlanError when the file is missing or invalid.
 */
export async function loadPlanFile(path: string, env: Env): Promise<Plan> {
  const plan = parsePlan(await readPlanText(path), path);
  const vaultUrl = env[AGENT_ENV.vaultUrl];
  const kmsKeyId = env[AGENT_ENV.kmsKeyId];
  return {
    ...plan,
    vault: vaultUrl ? { ...plan.vault, url: vaultUrl } : plan.vault,
    key: kmsKeyId ? { type: 'kms', keyId: kmsKeyId, region: env[AGENT_ENV.region] } : plan.key,
  };
}

/** Largest plan file read (1 MiB); real plans are a few KiB. */
export const PLAN_MAX_BYTES = 1024 * 1024;

/** How long reading the plan file may take (a hung NFS mount, a FIFO nobody writes). */
export const PLAN_READ_TIMEOUT_MS = 10_000;

/**
 * Reads a plan file: a regular file of at most {@link PLAN_MAX_BYTES}, read within
 * {@link PLAN_READ_TIMEOUT_MS}. A FIFO, a device (`/dev/zero`) or a directory is refused without
 * reading it: opening is non-blocking, so a FIFO without a writer cannot hang the agent.
 * @throws PlanError naming the path and what it is.
 */
export async function readPlanText(path: string): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new PlanError([`cannot read plan ${path}: no answer within ${PLAN_READ_TIMEOUT_MS / 1000}s`])),
      PLAN_READ_TIMEOUT_MS,
    );
    timer.unref();
  });
  try {
    return await Promise.race([readRegularFile(path), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function readRegularFile(path: string): Promise<string> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new PlanError([`cannot read plan ${path}: ${describeError(error)}`], { cause: error });
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) {
      const what = stats.isFIFO()
        ? 'a FIFO'
        : stats.isCharacterDevice() || stats.isBlockDevice()
          ? 'a device'
          : stats.isDirectory()
            ? 'a directory'
            : 'not a regular file';
      throw new PlanError([`plan ${path} is ${what}, not a plan file`]);
    }
    if (stats.size > PLAN_MAX_BYTES) {
      throw new PlanError([
        `plan ${path} is ${stats.size} bytes, larger than a plan can be (${PLAN_MAX_BYTES})`,
      ]);
    }
    const buffer = Buffer.alloc(PLAN_MAX_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > PLAN_MAX_BYTES) {
      throw new PlanError([`plan ${path} is larger than a plan can be (${PLAN_MAX_BYTES} bytes)`]);
    }
    return buffer.subarray(0, length).toString('utf8');
  } finally {
    await handle.close();
  }
}

/** Opens the plan and its adapters. */
export async function openRuntime(
  planPath: string,
  env: Env,
  options: { log?: (line: string) => void; clock?: Clock; signal?: AbortSignal; progress?: Progress } = {},
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
    ...(options.progress ? { progress: options.progress } : {}),
  };
}
