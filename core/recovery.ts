/**
 * Point-in-time recovery settings, purely: what a restore of a physical base backup recovers to, and the
 * `postgresql.auto.conf` lines (PostgreSQL 12+, beside an empty `recovery.signal`) that make a server
 * replay the WAL archive up to there and then promote.
 */
import { PlanError } from './errors';
import { parseLsn } from './wal';

/** How far a point-in-time restore replays the WAL archive. */
export type RecoveryTarget =
  /** Every archived segment, to the end of the archive. */
  | { type: 'latest' }
  /** The last commit at or before this time (ISO 8601 with an explicit offset). */
  | { type: 'time'; time: string }
  /** Up to this WAL location (`0/3000060`). */
  | { type: 'lsn'; lsn: string }
  /** Up to and including this transaction id's commit. */
  | { type: 'xid'; xid: string }
  /** Up to this `pg_create_restore_point()` name. */
  | { type: 'name'; name: string };

/**
 * A recovery target from CLI text: `latest`, `time:2026-12-01T22:10:00+00:00`, `lsn:0/3000060`,
 * `xid:745`, `name:before-migration`.
 * @throws PlanError naming what is wrong.
 */
export function parseRecoveryTarget(text: string): RecoveryTarget {
  const trimmed = text.trim();
  if (trimmed === 'latest') return { type: 'latest' };
  const colon = trimmed.indexOf(':');
  const type = colon > 0 ? trimmed.slice(0, colon) : '';
  const value = trimmed.slice(colon + 1);
  switch (type) {
    case 'time':
      if (!/(Z|[+-]\d{2}(:?\d{2})?)$/.test(value) || Number.isNaN(Date.parse(value)))
        throw new PlanError([
          `recovery target: '${value}' is not a time with an explicit offset (2026-12-01T22:10:00+00:00)`,
        ]);
      return { type: 'time', time: value };
    case 'lsn':
      try {
        parseLsn(value);
      } catch {
        throw new PlanError([`recovery target: '${value}' is not a WAL location like 0/3000060`]);
      }
      return { type: 'lsn', lsn: value.toUpperCase() };
    case 'xid':
      if (!/^\d+$/.test(value)) throw new PlanError([`recovery target: '${value}' is not a transaction id`]);
      return { type: 'xid', xid: value };
    case 'name':
      if (value === '' || value.length > 63)
        throw new PlanError(['recovery target: a restore point name has 1 to 63 characters']);
      return { type: 'name', name: value };
    default:
      throw new PlanError([
        `recovery target: '${trimmed}' is not latest, time:<ISO time>, lsn:<lsn>, xid:<xid> or name:<restore point>`,
      ]);
  }
}

/** A value quoted for postgresql.conf: single quotes, inner quotes and backslashes doubled. */
export function quoteConfValue(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

/**
 * The recovery settings: `restore_command`, the target, `recovery_target_action = 'promote'` (the default
 * `pause` would leave automation waiting) and the newest timeline.
 * @example recoverySettings({ type: 'lsn', lsn: '0/3000060' }, 'strongbox wal-fetch … %f %p')
 */
export function recoverySettings(target: RecoveryTarget, restoreCommand: string): Record<string, string> {
  const settings: Record<string, string> = {
    restore_command: quoteConfValue(restoreCommand),
    recovery_target_timeline: quoteConfValue('latest'),
  };
  switch (target.type) {
    case 'latest':
      break;
    case 'time':
      // PostgreSQL checks the setting before it knows time zone abbreviations: 'Z' is refused at start.
      settings.recovery_target_time = quoteConfValue(target.time.replace(/Z$/, '+00:00'));
      break;
    case 'lsn':
      settings.recovery_target_lsn = quoteConfValue(target.lsn);
      break;
    case 'xid':
      settings.recovery_target_xid = quoteConfValue(target.xid);
      break;
    case 'name':
      settings.recovery_target_name = quoteConfValue(target.name);
      break;
  }
  if (target.type !== 'latest') {
    settings.recovery_target_inclusive = 'on';
    settings.recovery_target_action = quoteConfValue('promote');
  }
  return settings;
}

/** What choosing a base backup for a recovery target needs to know of each complete backup. */
export interface BaseBackupFacts {
  backupId: string;
  /** When the backup's manifest was written (after the backup's stop LSN). */
  finishedAt: string;
  stopLsn: string;
}

/**
 * The base backup a point-in-time restore starts from: the newest one that ended before the target
 * (a time or an LSN) — recovery cannot stop before the backup's own end. For a transaction id, a
 * restore point or `latest`, the newest backup (the operator names an older one with --backup-id).
 * @returns undefined when no backup ended before the target.
 */
export function chooseBaseBackup<B extends BaseBackupFacts>(
  backups: readonly B[],
  target: RecoveryTarget,
): B | undefined {
  const newestFirst = [...backups].sort((a, b) => (a.backupId < b.backupId ? 1 : -1));
  if (target.type === 'time') {
    const at = Date.parse(target.time);
    return newestFirst.find((b) => Date.parse(b.finishedAt) <= at);
  }
  if (target.type === 'lsn') {
    const at = parseLsn(target.lsn);
    return newestFirst.find((b) => parseLsn(b.stopLsn) <= at);
  }
  return newestFirst[0];
}

/** A word for PostgreSQL's shell: single-quoted, inner quotes escaped. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The `restore_command` of a point-in-time restore: this agent's `wal-fetch` for the job, with
 * PostgreSQL's `%f` and `%p` — from the plan's copy `from` when the restore reads one (`--from`), so
 * a recovery from a copy needs nothing of the primary vault.
 * @example walFetchCommand('strongbox', '/etc/strongbox/plan.yaml', 'pg-main')
 *   // "strongbox wal-fetch --plan /etc/strongbox/plan.yaml --job pg-main -q %f %p"
 */
export function walFetchCommand(agentCommand: string, planPath: string, job: string, from?: string): string {
  const copy = from === undefined ? '' : ` --from ${shellQuote(from)}`;
  return `${agentCommand} wal-fetch --plan ${shellQuote(planPath)} --job ${shellQuote(job)}${copy} -q %f %p`;
}

/**
 * The `archive_command` of a recovered copy that becomes the primary: this agent's `wal-push` into the
 * same job's archive, with PostgreSQL's `%p` (the new timeline's files never collide with the old ones).
 * @example walPushCommandLine('strongbox', '/etc/strongbox/plan.yaml', 'pg-main')
 *   // "strongbox wal-push --plan /etc/strongbox/plan.yaml --job pg-main -q %p"
 */
export function walPushCommandLine(agentCommand: string, planPath: string, job: string): string {
  return `${agentCommand} wal-push --plan ${shellQuote(planPath)} --job ${shellQuote(job)} -q %p`;
}
