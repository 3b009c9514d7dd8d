/**
 * The storage watch, purely: how full a file vault's file system is against the plan's `storage`
 * thresholds (seed WebSCADA: alert above 80 %). The agent measures (agent/storage-watch); this judges.
 */
import type { Finding } from './agent-output';
import type { StorageConfig } from './local-ops';

/** A file system's usage as statfs(2) reports it, in bytes. */
export interface FileSystemUsage {
  /** The path measured (the vault's directory, or its nearest existing parent). */
  path: string;
  totalBytes: number;
  /** Free blocks, including those reserved for root. */
  freeBytes: number;
  /** Free blocks an unprivileged user may use (what a backup may fill). */
  availableBytes: number;
}

/**
 * The fraction in use the way `df` shows it: used / (used + available), so the root reserve counts as
 * full, because a backup running as an ordinary user cannot write there.
 * @example usedRatio({ path: '/', totalBytes: 100, freeBytes: 30, availableBytes: 25 }) // 0.7368…
 */
export function usedRatio(usage: FileSystemUsage): number {
  const used = usage.totalBytes - usage.freeBytes;
  const usable = used + usage.availableBytes;
  return usable > 0 ? used / usable : 0;
}

/**
 * A `vault-fill` finding when the vault's file system is fuller than the thresholds: critical above
 * `criticalAbovePercent`, warning above `warnAbovePercent`, none otherwise. `job` names what the
 * finding is filed under (the jobs sharing the vault).
 * @example checkVaultFill('file:///srv/vault', usage, { warnAbovePercent: 80, criticalAbovePercent: 95 }, 'app-db')
 */
export function checkVaultFill(
  vaultUrl: string,
  usage: FileSystemUsage,
  thresholds: StorageConfig,
  job: string,
): Finding[] {
  const percent = usedRatio(usage) * 100;
  const severity =
    percent > thresholds.criticalAbovePercent
      ? 'critical'
      : percent > thresholds.warnAbovePercent
        ? 'warning'
        : undefined;
  if (!severity) return [];
  const limit = severity === 'critical' ? thresholds.criticalAbovePercent : thresholds.warnAbovePercent;
  const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  return [
    {
      severity,
      job,
      check: 'vault-fill',
      message: `the file system of vault ${vaultUrl} (${usage.path}) is ${percent.toFixed(1)}% full, above ${limit}% (${gib(usage.availableBytes)} left of ${gib(usage.totalBytes)}): run strongbox prune, shorten retention or grow the disk before backups fail`,
    },
  ];
}
