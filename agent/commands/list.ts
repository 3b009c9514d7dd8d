/**
 * `strongbox list`: the inventory of each job, like pgBackRest's `info` — a summary (backups by tier,
 * oldest and newest, age of the newest, stored and source bytes, the recovery window of a point-in-time
 * job), then every backup, complete or not, oldest first, with its tier, age, sizes, duration and status,
 * and the warnings a backup's manifest recorded (files that changed or vanished while read); with `--all`
 * also the unfinished writes interrupted backups left in the vault (partial files, incomplete multipart
 * uploads) that the next backup of the job or `prune` removes, and the targets killed restores left
 * (postgres: scratch databases still marked as being restored into) that `prune` and the next restore drop.
 */

import { formatBytes, formatTable } from '#agent/format';
import { sourceContext } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import type { AgentListBackup, AgentListJob, AgentListResult } from '#core/agent-output';
import { listWal, readCatalog } from '#core/catalog';
import { formatDuration } from '#core/duration';
import { describeError } from '#core/errors';
import { inventoryOf } from '#core/inventory';
import { jobPrefix } from '#core/layout';
import { selectJobs } from '#core/plan';
import { capabilitiesOf } from '#core/sources/index';
import { TIERS } from '#core/tiers';
import type { Outcome } from './outcome';

/** Options of {@link listCommand}. */
export interface ListOptions {
  /** Jobs to list (default: every job of the plan). */
  jobs?: readonly string[];
  /** Also list unfinished writes of interrupted backups (a dry run of what `prune` removes). */
  all?: boolean;
}

/** The latest time a Date can hold: unfinished writes that began before it are all of them. */
const EVERY_WRITE = new Date(8.64e15);

/** Warnings of one backup printed under its job's table; the rest are counted. */
const WARNINGS_SHOWN = 3;

/**
 * Lists each job's backups from the vault listing and the manifests (which stay in the Standard class:
 * no archive retrievals, no data read). Exit 0: judging the backups is `verify`'s work.
 */
export async function listCommand(runtime: Runtime, options: ListOptions): Promise<Outcome> {
  const jobs = selectJobs(runtime.plan, options.jobs);
  const result: AgentListResult = {
    jobs: [],
    backups: [],
    ...(options.all ? { unfinished: [], leftovers: [] } : {}),
  };
  const now = runtime.clock.now();
  for (const job of jobs) {
    const pointInTime = capabilitiesOf(job.source.kind).pointInTime;
    const [catalog, wal] = await Promise.all([
      readCatalog(runtime.vault, job.name),
      pointInTime ? listWal(runtime.vault, job.name) : Promise.resolve([]),
    ]);
    const inventory = inventoryOf({
      kind: job.source.kind,
      catalog,
      now,
      ...(pointInTime
        ? {
            walNames: wal.map((w) => w.name),
            walNewestArchivedAt: wal.length
              ? new Date(Math.max(...wal.map((w) => w.object.lastModified.getTime())))
              : undefined,
          }
        : {}),
    });
    result.jobs.push(inventory.job);
    result.backups.push(...inventory.backups);
    if (result.unfinished) {
      // Every unfinished write, however recent: an interrupted backup's, or one still running (the job's
      // timeout decides which `prune` removes).
      const keys =
        (await runtime.vault.removeAbandoned?.(jobPrefix(job.name), EVERY_WRITE, { dryRun: true })) ?? [];
      for (const key of keys) result.unfinished.push({ job: job.name, key });
      // Targets killed restores left (postgres: marked scratch databases), from the source itself.
      const driver = sourceDriver(job.source);
      if (driver.leftovers && result.leftovers) {
        try {
          for (const line of await driver.leftovers(job.source, sourceContext(runtime), { dryRun: true }))
            result.leftovers.push({ job: job.name, line });
        } catch (error) {
          result.leftovers.push({
            job: job.name,
            line: `restore leftovers not checked: ${describeError(error)}`,
          });
        }
      }
    }
  }
  return { exitCode: 0, json: result satisfies AgentListResult, text: listText(result) };
}

/** The text inventory: per job a summary block, then a table of its backups. */
export function listText(result: AgentListResult): string {
  const blocks = result.jobs.map((job) =>
    [
      ...summaryLines(job),
      ...backupTable(result.backups.filter((b) => b.job === job.job)).map((line) => `  ${line}`),
      ...warningLines(result.backups.filter((b) => b.job === job.job)).map((line) => `  ${line}`),
    ].join('\n'),
  );
  if (result.unfinished) {
    blocks.push(
      result.unfinished.length
        ? result.unfinished
            .map(
              (u) =>
                `${u.job}: unfinished write ${u.key} (an interrupted backup's, or one still running; the next backup or prune removes it past the job timeout)`,
            )
            .join('\n')
        : 'no unfinished writes',
    );
  }
  if (result.leftovers?.length) blocks.push(result.leftovers.map((l) => `${l.job}: ${l.line}`).join('\n'));
  return blocks.join('\n\n');
}

function summaryLines(job: AgentListJob): string[] {
  const tiers = TIERS.filter((tier) => job.tiers[tier] > 0).map((tier) => `${tier} ${job.tiers[tier]}`);
  const counts = [
    `${job.complete} complete backup${job.complete === 1 ? '' : 's'}${tiers.length ? ` (${tiers.join(', ')})` : ''}`,
    ...(job.warnings ? [`${job.warnings} with warnings`] : []),
    ...(job.safety ? [`${job.safety} safety`] : []),
    ...(job.incomplete ? [`${job.incomplete} incomplete`] : []),
    ...(job.invalid ? [`${job.invalid} with an unreadable manifest`] : []),
  ];
  const lines = [`job ${job.job} (${job.kind}): ${counts.join(', ')}`];
  if (job.newest && job.oldest) {
    lines.push(
      `  newest ${job.newest.backupId}, finished ${formatDuration(job.newest.ageSeconds)} ago; oldest ${job.oldest.backupId}`,
    );
  }
  lines.push(
    `  stored ${formatBytes(job.storedBytes)} in the vault for ${formatBytes(job.sourceBytes)} of source data`,
  );
  if (job.recoveryWindow) {
    lines.push(
      `  recovery window ${job.recoveryWindow.earliest} to ${job.recoveryWindow.latest ?? 'the newest backup end'}`,
    );
  }
  return lines;
}

const STATUS_MARKS: Readonly<Record<AgentListBackup['status'], string>> = {
  complete: 'complete',
  warnings: 'complete, WARNINGS',
  safety: 'complete, SAFETY',
  incomplete: 'INCOMPLETE',
  invalid: 'INVALID MANIFEST',
};

/** A backup's status, with how many warnings it recorded: `complete, 2 warnings`. */
function statusOf(backup: AgentListBackup): string {
  const count = backup.warnings?.length ?? 0;
  return backup.status === 'warnings' && count > 0
    ? `complete, ${count} warning${count === 1 ? '' : 's'}`
    : STATUS_MARKS[backup.status];
}

/** The first warnings of each backup that has some, the rest counted (`--json` has them all). */
function warningLines(backups: readonly AgentListBackup[]): string[] {
  return backups.flatMap((b) => {
    const warnings = b.warnings ?? [];
    return [
      ...warnings.slice(0, WARNINGS_SHOWN).map((w) => `${b.job} ${b.backupId}: warning: ${w}`),
      ...(warnings.length > WARNINGS_SHOWN
        ? [
            `${b.job} ${b.backupId}: … and ${warnings.length - WARNINGS_SHOWN} more warnings (--json lists them)`,
          ]
        : []),
    ];
  });
}

/** A run's duration: tenths of a second under a minute (`0.4s`), then `formatDuration`. */
function formatElapsed(seconds: number): string {
  return seconds < 60 ? `${seconds.toFixed(1)}s` : formatDuration(seconds);
}

function backupTable(backups: readonly AgentListBackup[]): string[] {
  if (backups.length === 0) return ['no backups'];
  return formatTable([
    ['BACKUP', 'TIER', 'AGE', 'SOURCE', 'STORED', 'TIME', 'CLASS', 'STATUS'],
    ...backups.map((b) => [
      b.backupId,
      b.tier ?? '-',
      formatDuration(b.ageSeconds),
      b.sourceBytes === undefined ? '-' : formatBytes(b.sourceBytes),
      formatBytes(b.storedBytes),
      b.durationSeconds === undefined ? '-' : formatElapsed(b.durationSeconds),
      b.storageClasses.join(','),
      statusOf(b),
    ]),
  ]).split('\n');
}
