/**
 * Opens the vault a plan names, by URL scheme: `file:///path` → {@link FileVault}, `s3://bucket/prefix`
 * → {@link S3Vault} (AWS, or an S3-compatible endpoint), either one wrapped in a {@link RetryingVault}.
 */
import { PlanError } from '#core/errors';
import type { VaultConfig } from '#core/plan';
import type { Vault } from '#core/ports';
import { FileVault } from './file';
import { RetryingVault, type RetryOptions } from './retrying';
import type { S3VaultOptions } from './s3';

export { FileVault } from './file';
export { RetryingVault } from './retrying';

/** Options of {@link openVault}. */
export interface OpenVaultOptions extends S3VaultOptions {
  /** How the opened vault retries failed reads, listings and deletes. @default RETRY_DEFAULTS */
  retry?: RetryOptions;
}

/**
 * The vault of a plan, retrying its idempotent verbs (adapters/vaults/retrying); the vault itself is
 * its `inner`.
 * @param options for S3 vaults: an injected client, and the environment (region, credentials); the
 *   retry policy.
 * @throws PlanError for a URL of another scheme.
 * @example const vault = openVault(plan.vault, { env, retry: { signal } });
 */
export async function openVault(config: VaultConfig, options: OpenVaultOptions = {}): Promise<RetryingVault> {
  const { retry, ...s3Options } = options;
  return new RetryingVault(await openInner(config, s3Options), retry);
}

async function openInner(config: VaultConfig, options: S3VaultOptions): Promise<Vault> {
  if (config.url.startsWith('file://')) return new FileVault(config.url);
  // Loaded only when used: the AWS SDK is most of the agent's size and memory.
  if (config.url.startsWith('s3://')) return new (await import('./s3')).S3Vault(config, options);
  throw new PlanError([`vault.url: '${config.url}' must be file:///absolute/path or s3://bucket[/prefix]`]);
}
