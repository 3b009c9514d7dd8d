/**
 * Opens the vault a plan names, by URL scheme: `file:///path` → {@link FileVault}, `s3://bucket/prefix`
 * → {@link S3Vault} (AWS, or an S3-compatible endpoint).
 */
import { PlanError } from '#core/errors';
import type { VaultConfig } from '#core/plan';
import type { Vault } from '#core/ports';
import { FileVault } from './file';
import type { S3VaultOptions } from './s3';

export { FileVault } from './file';

/**
 * The vault of a plan.
 * @param options for S3 vaults: an injected client, and the environment (region, credentials).
 * @throws PlanError for a URL of another scheme.
 * @example const vault = openVault(plan.vault, { env });
 */
export async function openVault(config: VaultConfig, options: S3VaultOptions = {}): Promise<Vault> {
  if (config.url.startsWith('file://')) return new FileVault(config.url);
  // Loaded only when used: the AWS SDK is most of the agent's size and memory.
  if (config.url.startsWith('s3://')) return new (await import('./s3')).S3Vault(config, options);
  throw new PlanError([`vault.url: '${config.url}' must be file:///absolute/path or s3://bucket[/prefix]`]);
}
