/**
 * What the agent does after each run: the record of the run that `schedule status` reads (agent/state),
 * and, for sites without AWS (the plan's `notify`, `metrics` and `storage` sections), the storage watch
 * after a backup, the Prometheus textfile, and one alert per run
 * naming job, host, what failed and what to do next — the alert the functions send (core/alerts), with
 * the same findings (core/checks, drills). Neither a metrics file that cannot be written nor an alert
 * that cannot be delivered changes the run's outcome: each is a printed warning.
 */
import type { Outcome } from '#agent/commands/outcome';
import { formatBytes } from '#agent/format';
import { deliverAlert, type NotifyServices } from '#agent/notify';
import type { Runtime } from '#agent/runtime';
import { watchVaultStorage } from '#agent/storage-watch';
import type {
  AgentBackupOutput,
  AgentBackupResult,
  AgentDrillResult,
  AgentVerifyResult,
} from '#core/agent-output';
import { type Alert, countFindings, makeAlert } from '#core/alerts';
import { readManifest } from '#core/catalog';
import { type Finding, SEVERITY_ORDER } from '#core/checks';
import { AGENT_ERROR_PREFIX } from '#core/deployment';
import { formatDuration } from '#core/duration';
import { describeError, errorLines, JOB_LOCKED_EXIT, JobLockedError } from '#core/errors';
import type { NotifyEvent } from '#core/local-ops';
import { type Job, selectJobs } from '#core/plan';
import type { Sample } from '#core/prometheus';
import { type FileSystemUsage, usedRatio } from '#core/storage-watch';
import type { Tier } from '#core/tiers';
import { type MetricUpdate, updateMetricsTextfile } from './metrics-textfile';
import { forgetAlert, lastAlertSent, recordAlertSent, recordLastRun, stateDirOf, vaultScope } from './state';

/** The commands whose runs are reported. */
export type ReportedCommand = 'backup' | 'verify' | 'drill' | 'prune' | 'wal-push' | 'doctor';

/** One run of a command, as the CLI saw it. */
export interface RunRecord {
  command: ReportedCommand;
  /** The `--job` names given (none: every job). */
  jobs?: readonly string[];
  /** The `--tier` asked for (backup). */
  tier?: Tier;
  /** What the run did, for the error line: `backup app-db`. */
  operation: string;
  /** When it started (the record `schedule status` shows). */
  startedAt: Date;
  /** How it ended: an outcome, or the error it threw. */
  outcome?: Outcome;
  error?: unknown;
}

/** Commands whose last run per job `schedule status` reports. */
const RECORDED_COMMANDS: ReadonlySet<ReportedCommand> = new Set(['backup', 'drill', 'verify', 'prune']);

/** The exit status of a run: its outcome's, 75 when its job was already running, else 2. */
function exitCodeOf(record: RunRecord): number {
  if (record.error === undefined) return record.outcome?.exitCode ?? 0;
  return record.error instanceof JobLockedError ? JOB_LOCKED_EXIT : 2;
}

/**
 * Remembers how this run of a scheduled command ended, per job, for `schedule status` on hosts without
 * systemd. A state directory that cannot be written loses only the record, never fails the run.
 */
async function recordRun(runtime: Runtime, record: RunRecord, jobs: readonly Job[]): Promise<void> {
  if (!RECORDED_COMMANDS.has(record.command)) return;
  const failure = record.error ?? record.outcome?.failure;
  const error =
    typeof failure === 'string'
      ? failure
      : failure
        ? (errorLines(failure, {}, record.operation).at(-1) ?? '').replace(AGENT_ERROR_PREFIX, '')
        : undefined;
  const finishedAt = runtime.clock.now().toISOString();
  try {
    for (const job of jobs) {
      await recordLastRun(stateDirOf(runtime.env), vaultScope(runtime.plan.vault), {
        command: record.command,
        job: job.name,
        startedAt: record.startedAt.toISOString(),
        finishedAt,
        exitCode: exitCodeOf(record),
        ...(error ? { error } : {}),
      });
    }
  } catch {
    // The run's own outcome is what matters; the record is a convenience.
  }
}

/** What reporting needs from outside. */
export interface AfterRunServices {
  fetch: typeof fetch;
  sleep: (ms: number) => Promise<void>;
  /** Prints one warning line (shown also with --quiet). */
  warn: (line: string) => void;
}

/** The facts of a run that metrics and the alert are made of. */
interface RunFacts {
  record: RunRecord;
  jobs: Job[];
  status: NotifyEvent;
  /** Findings the run itself added (the storage watch after a backup). */
  extraFindings: Finding[];
  usage?: FileSystemUsage;
  now: Date;
  /** The tier of a backup by job and id, read from its manifest when metrics need it. */
  tiers: Map<string, Tier>;
}

/**
 * Reports one run: its record, storage watch (after a backup), metrics textfile, alert. Never throws.
 * @example await reportRun(runtime, { command: 'backup', jobs: ['app-db'], operation: 'backup app-db', error }, services)
 */
export async function reportRun(
  runtime: Runtime,
  record: RunRecord,
  services: AfterRunServices,
): Promise<void> {
  const { plan } = runtime;
  let jobs: Job[] = [];
  try {
    jobs = selectJobs(plan, record.jobs);
  } catch {
    // a run that named jobs the plan lacks failed for that reason: it is reported without jobs
  }
  await recordRun(runtime, record, jobs);
  if (!plan.notify && !plan.metrics && record.command !== 'backup') return;
  const exitCode = exitCodeOf(record);
  const facts: RunFacts = {
    record,
    jobs,
    status: exitCode >= 2 ? 'failure' : exitCode === 1 ? 'warning' : 'success',
    extraFindings: [],
    now: runtime.clock.now(),
    tiers: new Map(),
  };
  if (['backup', 'verify', 'doctor'].includes(record.command)) {
    try {
      const watched = await watchVaultStorage(runtime, jobs.map((j) => j.name).join(',') || plan.name);
      facts.usage = watched.usage;
      // verify reports the watch among its own findings; after a backup it is reported here.
      if (record.command === 'backup') {
        facts.extraFindings.push(...watched.findings);
        for (const f of watched.findings) services.warn(f.message);
        if (watched.findings.length > 0 && facts.status === 'success') facts.status = 'warning';
      }
    } catch (error) {
      services.warn(`storage watch: cannot measure the vault's file system: ${describeError(error)}`);
    }
  }
  if (plan.metrics) {
    try {
      const updates = await metricUpdates(runtime, facts);
      await updateMetricsTextfile(plan.metrics.textfile, updates, (samples) => withAges(samples, facts.now));
    } catch (error) {
      services.warn(`metrics not written to ${plan.metrics.textfile}: ${describeError(error)}`);
    }
  }
  const notify = plan.notify;
  // doctor never alerts; wal-push (once per WAL segment) only when it fails, whatever notify.on says.
  const alerting =
    record.command !== 'doctor' && (record.command !== 'wal-push' || facts.status === 'failure');
  const throttled = notify ? await walPushThrottled(runtime, facts) : false;
  if (notify && alerting && !throttled && notify.on.includes(facts.status)) {
    try {
      const alert = alertOf(runtime, facts);
      const notifyServices: NotifyServices = {
        env: runtime.env,
        fetch: services.fetch,
        sleep: services.sleep,
        host: runtime.host,
      };
      for (const delivery of await deliverAlert(alert, notify, notifyServices)) {
        if (delivery.ok) runtime.log(`alert sent (${delivery.channel}): ${alert.title}`);
        else services.warn(`alert not delivered (${delivery.channel}): ${delivery.error}`);
      }
    } catch (error) {
      services.warn(`alert not sent: ${describeError(error)}`);
    }
  }
}

/** At most one alert per job in this time for a failing wal-push (PostgreSQL retries it every minute). */
export const WAL_PUSH_ALERT_INTERVAL_MS = 3_600_000;

/**
 * Whether this run's alert is held back. A failing wal-push is retried by PostgreSQL's archiver about
 * every minute for as long as the vault is out: it alerts once, then at most once an hour while it keeps
 * failing, and at once again after it has stored a segment. No other command is throttled.
 */
async function walPushThrottled(runtime: Runtime, facts: RunFacts): Promise<boolean> {
  const job = facts.jobs[0]?.name;
  if (facts.record.command !== 'wal-push' || !job) return false;
  const dir = stateDirOf(runtime.env);
  const vault = vaultScope(runtime.plan.vault);
  try {
    if (facts.status !== 'failure') {
      await forgetAlert(dir, vault, job, 'wal-push');
      return false;
    }
    const last = await lastAlertSent(dir, vault, job, 'wal-push');
    if (last && facts.now.getTime() - last.getTime() < WAL_PUSH_ALERT_INTERVAL_MS) {
      runtime.log(
        `alert not sent: wal-push of ${job} already alerted at ${last.toISOString()} (at most one an hour)`,
      );
      return true;
    }
    await recordAlertSent(dir, vault, job, 'wal-push', facts.now);
  } catch {
    // A state directory that cannot be written must not silence the alert.
  }
  return false;
}

// ---- what each command's outcome says ----

function backupOutcome(facts: RunFacts): {
  results: AgentBackupResult[];
  failed: { job: string; message: string }[];
} {
  const { record, jobs } = facts;
  const json = record.outcome?.json as AgentBackupOutput | undefined;
  const results = json ? ('backups' in json ? json.backups : [json]) : [];
  const failed =
    json && 'failed' in json ? json.failed.map((f) => ({ job: f.job, message: f.error.message })) : [];
  if (record.error !== undefined) {
    const line = errorLines(record.error, {}, record.operation).at(-1) ?? '';
    const names = jobs.length === 1 ? [jobs[0]?.name ?? ''] : jobs.map((j) => j.name);
    for (const job of names.filter((n) => !results.some((r) => r.job === n)))
      failed.push({ job, message: line });
  }
  return { results, failed };
}

function drillOutcome(facts: RunFacts): AgentDrillResult[] {
  const json = facts.record.outcome?.json as AgentDrillResult | { drills: AgentDrillResult[] } | undefined;
  if (!json) return [];
  return 'drills' in json ? json.drills : [json];
}

function verifyOutcome(facts: RunFacts): AgentVerifyResult | undefined {
  return facts.record.outcome?.json as AgentVerifyResult | undefined;
}

// ---- metrics ----

async function tierOf(runtime: Runtime, facts: RunFacts, job: string, backupId: string): Promise<string> {
  const key = `${job}/${backupId}`;
  const known = facts.tiers.get(key);
  if (known) return known;
  try {
    const tier = (await readManifest(runtime.vault, job, backupId)).tier;
    facts.tiers.set(key, tier);
    return tier;
  } catch {
    return '';
  }
}

async function metricUpdates(runtime: Runtime, facts: RunFacts): Promise<MetricUpdate[]> {
  const { plan } = runtime;
  const vault = plan.vault.url;
  const now = facts.now.getTime() / 1000;
  const updates: MetricUpdate[] = [];
  const labelsOf = (job: string, tier?: string) => {
    const kind = plan.jobs.find((j) => j.name === job)?.source.kind ?? '';
    return { job, kind, vault, ...(tier === undefined ? {} : { tier }) };
  };
  /** Replaces the one series of a per-job gauge (its tier label may have changed). */
  const setForJob = (name: Sample['name'], job: string, tier: string, value: number) => {
    updates.push({ op: 'drop', name, where: { job, vault } });
    updates.push({ op: 'set', sample: { name, labels: labelsOf(job, tier), value } });
  };
  const setFindings = (job: string, findings: readonly Finding[]) => {
    for (const severity of SEVERITY_ORDER) {
      updates.push({
        op: 'set',
        sample: {
          name: 'strongbox_findings',
          labels: { ...labelsOf(job), severity },
          value: findings.filter((f) => f.job === job && f.severity === severity).length,
        },
      });
    }
  };
  const { record } = facts;
  if (record.command === 'backup') {
    const { results, failed } = backupOutcome(facts);
    for (const r of results) {
      facts.tiers.set(`${r.job}/${r.backupId}`, r.tier);
      updates.push({
        op: 'add',
        sample: { name: 'strongbox_backup_success_total', labels: labelsOf(r.job, r.tier), value: 1 },
      });
      setForJob('strongbox_backup_size_bytes', r.job, r.tier, r.storedBytes);
      setForJob('strongbox_backup_last_success_timestamp_seconds', r.job, r.tier, now);
    }
    for (const job of facts.jobs) {
      // The failure counter exists from the first run on, so increase() sees the first failure too.
      updates.push({
        op: 'add',
        sample: {
          name: 'strongbox_backup_failure_total',
          labels: labelsOf(job.name, record.tier ?? ''),
          value: 0,
        },
      });
      const committed = results.some((r) => r.job === job.name);
      if (committed || failed.some((f) => f.job === job.name)) {
        updates.push({
          op: 'set',
          sample: {
            name: 'strongbox_backup_last_run_success',
            labels: labelsOf(job.name),
            value: committed ? 1 : 0,
          },
        });
      }
    }
    for (const f of failed) {
      if (!plan.jobs.some((j) => j.name === f.job)) continue;
      updates.push({
        op: 'add',
        sample: {
          name: 'strongbox_backup_failure_total',
          labels: labelsOf(f.job, record.tier ?? ''),
          value: 1,
        },
      });
    }
  } else if (record.command === 'verify') {
    const verified = verifyOutcome(facts);
    for (const report of verified?.jobs ?? []) {
      if (report.newestBackupId && report.backupAgeSeconds !== undefined) {
        const tier = await tierOf(runtime, facts, report.job, report.newestBackupId);
        setForJob(
          'strongbox_backup_last_success_timestamp_seconds',
          report.job,
          tier,
          now - report.backupAgeSeconds,
        );
        if (report.lastBackupBytes !== undefined) {
          setForJob('strongbox_backup_size_bytes', report.job, tier, report.lastBackupBytes);
        }
      }
      const window = report.recoveryWindow;
      if (window?.earliest && window.latest) {
        const seconds = Math.max(0, (Date.parse(window.latest) - Date.parse(window.earliest)) / 1000);
        setForJob('strongbox_recovery_window_seconds', report.job, '', seconds);
      }
      setFindings(report.job, verified?.findings ?? []);
    }
  } else if (record.command === 'drill') {
    for (const drill of drillOutcome(facts)) {
      const tier = drill.backupId ? await tierOf(runtime, facts, drill.job, drill.backupId) : '';
      if (drill.durationSeconds !== undefined) {
        setForJob('strongbox_drill_duration_seconds', drill.job, tier, drill.durationSeconds);
      }
      setForJob('strongbox_drill_success', drill.job, tier, drill.findings.length === 0 ? 1 : 0);
    }
  }
  for (const job of facts.jobs) {
    updates.push({
      op: 'set',
      sample: {
        name: 'strongbox_last_run_timestamp_seconds',
        labels: { ...labelsOf(job.name), command: record.command },
        value: now,
      },
    });
  }
  if (facts.usage) {
    updates.push({
      op: 'set',
      sample: { name: 'strongbox_vault_used_ratio', labels: { vault }, value: usedRatio(facts.usage) },
    });
    updates.push({
      op: 'set',
      sample: {
        name: 'strongbox_vault_available_bytes',
        labels: { vault },
        value: facts.usage.availableBytes,
      },
    });
  }
  return updates;
}

/** Every backup age recomputed from its newest backup's timestamp, as of `now`. */
function withAges(samples: Sample[], now: Date): Sample[] {
  const kept = samples.filter((s) => s.name !== 'strongbox_backup_age_seconds');
  const ages = samples
    .filter((s) => s.name === 'strongbox_backup_last_success_timestamp_seconds')
    .map(
      (s): Sample => ({
        name: 'strongbox_backup_age_seconds',
        labels: s.labels,
        value: Math.max(0, Math.round(now.getTime() / 1000 - s.value)),
      }),
    );
  return [...kept, ...ages];
}

// ---- the alert ----

const SEVERITY_OF: Record<NotifyEvent, Alert['severity']> = {
  failure: 'critical',
  warning: 'warning',
  success: 'info',
};

function alertOf(runtime: Runtime, facts: RunFacts): Alert {
  const { record, jobs, status } = facts;
  const host = runtime.host;
  const plan = `--plan ${runtime.planPath}`;
  const names = jobs.map((j) => j.name);
  const jobOption = names.length === 1 ? ` --job ${names[0]}` : '';
  const errorLine =
    record.error === undefined ? undefined : errorLines(record.error, {}, record.operation).at(-1);
  const failureLine =
    record.outcome?.failure === undefined
      ? undefined
      : errorLines(record.outcome.failure, {}, record.operation).at(-1);
  let title: string;
  let details: string[] = [];
  let findings: Finding[] = [...facts.extraFindings];
  let nextSteps: string[] = [];
  let backupId: string | undefined;
  let job = names.length === 1 ? names[0] : undefined;
  const doctor = `Check the job's tools, database access and vault on ${host}: strongbox doctor ${plan}${jobOption}`;
  switch (record.command) {
    case 'backup': {
      const { results, failed } = backupOutcome(facts);
      const failedNames = failed.map((f) => f.job).filter(Boolean);
      if (failedNames.length === 1) job = failedNames[0];
      const warned = results.filter((r) => r.warnings?.length);
      title =
        status === 'failure'
          ? `Backup failed: ${failedNames.join(', ') || 'the run'} on ${host}`
          : status === 'warning'
            ? `Backup with warnings: ${[...new Set([...warned.map((r) => r.job), ...facts.extraFindings.map((f) => f.job)])].join(', ')} on ${host}`
            : `Backup done: ${results.map((r) => r.job).join(', ')} on ${host}`;
      details = [
        ...failed.map((f) => `${f.job}: ${f.message.replace(/^strongbox: error: /, 'Agent error: ')}`),
        ...(failed.length > 0
          ? [
              'Nothing was committed: a backup without its manifest never counts, so the previous complete backup is still the newest.',
            ]
          : []),
        ...results.map(
          (r) =>
            `${r.job}: backup ${r.backupId} (${r.tier}) committed, ${formatBytes(r.storedBytes)} stored in ${formatDuration(r.durationSeconds)}`,
        ),
        ...warned.flatMap((r) => (r.warnings ?? []).map((w) => `${r.job} ${r.backupId}: warning: ${w}`)),
      ];
      if (results.length === 1 && failed.length === 0) backupId = results[0]?.backupId;
      nextSteps =
        failed.length > 0
          ? [
              doctor,
              `Run the backup again once fixed: strongbox backup ${plan}${failedNames.length === 1 ? ` --job ${failedNames[0]}` : ''}`,
              `See what is there now: strongbox list ${plan}${failedNames.length === 1 ? ` --job ${failedNames[0]}` : ''}`,
            ]
          : [];
      break;
    }
    case 'verify': {
      const verified = verifyOutcome(facts);
      findings = [...findings, ...(verified?.findings ?? [])];
      const problems = findings.filter((f) => f.severity !== 'info');
      const affected = new Set(problems.map((f) => f.job)).size;
      const total = verified?.jobs.length ?? jobs.length;
      title = errorLine
        ? `Verification could not run on ${host}`
        : problems.length > 0
          ? `Verification: ${countFindings(problems)} in ${affected} of ${total} job${total === 1 ? '' : 's'} on ${host}`
          : `Verification passed: ${total} job${total === 1 ? '' : 's'} on ${host}`;
      if (affected === 1 && problems[0]) job = problems[0].job;
      details = (verified?.jobs ?? []).map(
        (r) =>
          `${r.job}: ${r.newestBackupId ? `newest ${r.newestBackupId} (${formatDuration(r.backupAgeSeconds ?? 0)} old, ${formatBytes(r.lastBackupBytes ?? 0)})` : 'no complete backup'}; ${r.retained} retained, ${r.expired} expired, ${r.incomplete} incomplete`,
      );
      nextSteps =
        problems.length > 0 || errorLine
          ? [
              `Critical first: a missing or damaged object, an invalid manifest or a WAL gap means that backup cannot be restored — take a new backup now: strongbox backup ${plan}${job ? ` --job ${job}` : ''}`,
              'A backup too old or missing: see the alert of its backup run, or the output of its timer or cron job.',
              `Read a backup back end to end (decrypt, authenticate, decompress): strongbox verify ${plan}${job ? ` --job ${job}` : ''} --deep`,
              'A vault filling up: strongbox prune, shorter retention, or a bigger disk.',
            ]
          : [];
      break;
    }
    case 'drill': {
      const drills = drillOutcome(facts);
      findings = [...findings, ...drills.flatMap((d) => d.findings)];
      const failedDrills = drills.filter((d) => d.findings.length > 0).map((d) => d.job);
      if (failedDrills.length === 1) job = failedDrills[0];
      title =
        status === 'success'
          ? `Restore drill passed: ${drills.map((d) => d.job).join(', ')} on ${host}`
          : `Restore drill failed: ${failedDrills.join(', ') || names.join(', ') || 'the run'} on ${host}`;
      details = drills.map(
        (d) =>
          `${d.job}: ${d.durationSeconds === undefined ? 'nothing restored' : `${d.backupId} restored in ${formatDuration(d.durationSeconds)}`}${d.rtoSeconds === undefined ? '' : ` (RTO ${formatDuration(d.rtoSeconds)})`}; ${d.checks.filter((c) => c.passed).length} of ${d.checks.length} checks passed; scratch target removed`,
      );
      if (drills.length === 1) backupId = drills[0]?.backupId;
      nextSteps =
        status === 'success'
          ? []
          : [
              'A drill that cannot restore means the backup would not restore in an emergency either: read the failed checks above.',
              `Read the newest backup back without restoring: strongbox verify ${plan}${job ? ` --job ${job}` : ''} --deep`,
              `Run the drill again by hand to see its full output: strongbox drill ${plan}${job ? ` --job ${job}` : ''}`,
            ];
      break;
    }
    case 'wal-push':
      title = `WAL archiving failed: ${names.join(', ')} on ${host}`;
      nextSteps = [
        'PostgreSQL keeps the WAL file and calls archive_command again; pg_wal grows until archiving succeeds, and recovery cannot reach past the last archived segment.',
        doctor,
      ];
      break;
    default:
      title = `${record.command[0]?.toUpperCase()}${record.command.slice(1)} ${status === 'failure' ? 'failed' : status === 'warning' ? 'warned' : 'done'}${names.length === 1 ? `: ${names[0]}` : ''} on ${host}`;
      nextSteps = status === 'failure' ? [doctor] : [];
  }
  // A backup lists each job's failure itself; other commands end with one error line.
  for (const line of record.command === 'backup' ? [] : [errorLine, failureLine]) {
    if (line) details.unshift(`Agent error: ${line.replace(/^strongbox: error: /, '')}`);
  }
  return makeAlert({
    severity:
      findings.length > 0 && status !== 'failure'
        ? worstOf(findings, SEVERITY_OF[status])
        : SEVERITY_OF[status],
    title,
    plan: runtime.plan.name,
    ...(job ? { job } : {}),
    host,
    ...(backupId ? { backupId } : {}),
    details: [...new Set(details)],
    findings,
    nextSteps,
    source: `agent ${record.command}`,
    at: facts.now.toISOString(),
  });
}

function worstOf(findings: readonly Finding[], floor: Alert['severity']): Alert['severity'] {
  const worst = SEVERITY_ORDER.find((s) => findings.some((f) => f.severity === s)) ?? floor;
  return SEVERITY_ORDER.indexOf(worst) < SEVERITY_ORDER.indexOf(floor) ? worst : floor;
}
