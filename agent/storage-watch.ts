/**
 * Measuring a file vault's file system for the storage watch (core/storage-watch): statfs(2) of the
 * vault's directory, or of its nearest existing parent when the vault has not been created yet (the
 * first backup creates it on that file system).
 */
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Runtime } from '#agent/runtime';
import type { Finding } from '#core/checks';
import { checkVaultFill, type FileSystemUsage } from '#core/storage-watch';

/**
 * The usage of a file vault's file system, or undefined for a vault that is not `file://`.
 * @example await measureVaultFill('file:///srv/vault') // { path: '/srv/vault', totalBytes: …, … }
 * @throws the statfs error when no parent of the path can be measured.
 */
export async function measureVaultFill(vaultUrl: string): Promise<FileSystemUsage | undefined> {
  if (!vaultUrl.startsWith('file://')) return undefined;
  let path = fileURLToPath(vaultUrl);
  for (;;) {
    try {
      const stats = await statfs(path);
      return {
        path,
        totalBytes: stats.blocks * stats.bsize,
        freeBytes: stats.bfree * stats.bsize,
        availableBytes: stats.bavail * stats.bsize,
      };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || dirname(path) === path) throw error;
      path = dirname(path);
    }
  }
}

/**
 * The storage watch of the runtime's vault: its usage (for metrics) and a `vault-fill` finding when it
 * is over the plan's thresholds, filed under `job`.
 */
export async function watchVaultStorage(
  runtime: Pick<Runtime, 'plan'>,
  job: string,
): Promise<{ usage?: FileSystemUsage; findings: Finding[] }> {
  const usage = await measureVaultFill(runtime.plan.vault.url);
  if (!usage) return { findings: [] };
  return { usage, findings: checkVaultFill(runtime.plan.vault.url, usage, runtime.plan.storage, job) };
}
