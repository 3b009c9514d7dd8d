/**
 * Opens the key provider a plan names: a local master key file ({@link LocalKeyProvider}) or an AWS
 * KMS key ({@link KmsKeyProvider}).
 */

import { resolve } from 'node:path';
import type { KMSClient } from '@aws-sdk/client-kms';
import type { KeyConfig } from '#core/plan';
import type { KeyProvider } from '#core/ports';
import { LocalKeyProvider } from './local';

export { generateMasterKeyFile, LocalKeyProvider } from './local';

/** Where relative key paths resolve, and an optional KMS client. */
export interface OpenKeyProviderOptions {
  /** Directory relative local key paths resolve against: the plan file's directory. */
  baseDir: string;
  /** A KMS client to use (tests, Lambdas with a module-scope client). */
  kmsClient?: KMSClient;
}

/**
 * The key provider of a plan. Nothing is read or called until the first key is asked for.
 * @example const keys = openKeyProvider(plan.key, { baseDir: dirname(planPath) });
 */
export async function openKeyProvider(
  config: KeyConfig,
  options: OpenKeyProviderOptions,
): Promise<KeyProvider> {
  if (config.type === 'local') return new LocalKeyProvider(resolve(options.baseDir, config.path));
  // Loaded only when used, like the S3 vault: hosts with a local key never load the KMS client.
  return new (await import('./kms')).KmsKeyProvider(config, { client: options.kmsClient });
}
