/** `strongbox restore`: CLI glue over agent/restore. */
import type { z } from 'zod';
import { formatBytes } from '#agent/format';
import { lockOptionsOf, withJobLocks } from '#agent/job-lock';
import { type RestoreRequest, runRestore } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import type { AgentRestoreResult } from '#core/agent-output';
import { agentRestoreOptionsSchema } from '#core/deployment';
import { formatDuration } from '#core/duration';
import { PlanError } from '#core/errors';
import { describeZodIssues } from '#core/issues';
import { findJob } from '#core/plan';
import { parseRecoveryTarget, type RecoveryTarget } from '#core/recovery';
import type { Outcome } from './outcome';

/** A job name plus a restore request, from CLI flags and/or `--options` JSON (flags win). */
export interface ParsedRestoreOptions extends RestoreRequest {
  job: string;
}

/**
 * Merges `--options` JSON with the individual flags.
 * @throws PlanError naming the bad option.
 */
export function parseRestoreOptions(
  flags: Record<string, string | string[] | boolean | undefined>,
): ParsedRestoreOptions {
  let fromJson: z.output<typeof agentRestoreOptionsSchema> = {};
  if (typeof flags.options === 'string' && flags.options.trim() !== '') {
    let data: unknown;
    try {
      data = JSON.parse(flags.options);
    } catch {
      throw new PlanError(['--options: not valid JSON']);
    }
    const parsed = agentRestoreOptionsSchema.safeParse(data);
    if (!parsed.success) {
      throw new PlanError(describeZodIssues(parsed.error.issues, data, { root: '--options' }));
    }
    fromJson = parsed.data;
  }
  const text = (name: string) => (typeof flags[name] === 'string' ? (flags[name] as string) : undefined);
  // Kept as written, empty entries included: validateRestoreRequest refuses an empty or malformed list.
  const tables = text('tables')
    ?.split(',')
    .map((t) => t.trim());
  return {
    job: text('job') ?? '',
    backupId: text('backupId'),
    target: text('target') ?? fromJson.target,
    tables: tables ?? fromJson.tables,
    replace: flags.replace === true || fromJson.replace === true,
    confirm: text('confirm') ?? fromJson.confirm,
    recoverTo: recoveryTargetOf(text('to') ?? fromJson.to),
    start: flags.start === true || fromJson.start === true,
    paths: Array.isArray(flags.path) ? flags.path : fromJson.paths,
    inPlace: flags.inPlace === true || fromJson.inPlace === true,
    delete: flags.delete === true || fromJson.delete === true,
    intoLive: flags.intoLive === true || fromJson.intoLive === true,
    archive: flags.archive === true || fromJson.archive === true,
    tablespaceMap: tablespaceMapOf(flags.tablespaceMap) ?? fromJson.tablespaceMap,
  };
}

/** `--tablespace-map OLD=NEW` (repeated) as a map. @throws PlanError for an entry without `=`. */
function tablespaceMapOf(value: string | string[] | boolean | undefined): Record<string, string> | undefined {
  if (!Array.isArray(value)) return undefined;
  const map: Record<string, string> = {};
  for (const entry of value) {
    const at = entry.indexOf('=');
    if (at <= 0 || at === entry.length - 1)
      throw new PlanError([
        `--tablespace-map: '${entry}' is not OLD=NEW (the tablespace's location and its new one)`,
      ]);
    const old = entry.slice(0, at);
    if (old in map) throw new PlanError([`--tablespace-map: ${old} is mapped twice`]);
    map[old] = entry.slice(at + 1);
  }
  return map;
}

/** `--to` as a recovery target. @throws PlanError naming what is wrong. */
function recoveryTargetOf(text: string | undefined): RecoveryTarget | undefined {
  return text === undefined ? undefined : parseRecoveryTarget(text);
}

/** Restores and reports; exit 2 when a check of the restored data failed. */
export async function restoreCommand(runtime: Runtime, options: ParsedRestoreOptions): Promise<Outcome> {
  const job = findJob(runtime.plan, options.job);
  // Replacing the live data takes the job's lock: no backup of the job dumps it halfway through a swap.
  const live = options.replace ? 'restore --replace' : options.intoLive ? 'restore --into-live' : undefined;
  const result = live
    ? await withJobLocks({ ...lockOptionsOf(runtime, live), jobs: [job.name] }, () =>
        runRestore(runtime, job, options),
      )
    : await runRestore(runtime, job, options);
  const lines = [
    result.mode === 'replace'
      ? `restored ${result.job} ${result.backupId} over '${result.target}'; the previous database is kept as '${result.keptAs}' (safety backup ${result.safetyBackupId})`
      : result.mode === 'into-live'
        ? `restored ${result.job} ${result.backupId} tables into the live database '${result.target}' (${result.safetyBackupId ? `safety backup ${result.safetyBackupId}` : 'no safety backup: the tables did not exist'})`
        : result.mode === 'in-place'
          ? `restored ${result.job} ${result.backupId} in place over ${result.target}; ${result.keptAs ? `what it overwrote is kept in ${result.keptAs}` : 'nothing was overwritten'}`
          : `restored ${result.job} ${result.backupId} into ${result.target}`,
    `${formatBytes(result.sourceBytes)} in ${formatDuration(result.durationSeconds)}`,
    ...(result.notes ?? []),
    ...result.findings.map((f) => `${f.severity.toUpperCase()}  ${f.message}`),
  ];
  if (result.findings.length === 0) lines.push('checks passed: the restored data matches the manifest');
  const critical = result.findings.some((f) => f.severity === 'critical');
  return {
    exitCode: critical ? 2 : result.findings.length ? 1 : 0,
    json: result satisfies AgentRestoreResult,
    text: lines.join('\n'),
  };
}
