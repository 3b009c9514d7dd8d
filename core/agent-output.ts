/**
 * The agent's `--json` output contract: what `strongbox backup|restore|drill|verify|list --json` print on
 * stdout (one JSON object on one line), and the error object a failing `--json` run prints. The agent's
 * commands check their output against these types (`satisfies`); the Lambda functions parse the agent's
 * stdout with these schemas (functions/lib/commands `parseAgentJson`). One owner, so a renamed field
 * breaks a test instead of a deployment.
 *
 * The objects are strict: a field the schema does not name is an error, so the contract test
 * (test/unit/core/agent-output.test.ts, which runs the real CLI) fails when the agent prints a field
 * that was renamed or added without changing the contract here. The agent and the functions ship in
 * one deployment (the document installs the bundle of the same `cdk deploy`), so both sides always
 * read the same version of this file.
 */
import { z } from 'zod';
import { isBackupId } from './backup-id';
import { TIERS } from './tiers';

/** How bad a finding is, worst first. */
export const SEVERITIES = ['critical', 'warning', 'info'] as const;

/** The severity of a finding. */
export const severitySchema = z.enum(SEVERITIES);

/** How bad a finding is: `critical` (exit 2), `warning` (exit 1) or `info`. */
export type Severity = z.output<typeof severitySchema>;

/** A backup id as the agent prints it (`20241206T020000Z-3f9a1c`). */
const backupIdSchema = z.string().refine(isBackupId, 'must be a backup id like 20241206T020000Z-3f9a1c');

const bytes = z.number().int().nonnegative();
const seconds = z.number().nonnegative();

/**
 * One thing a check found: verification (core/checks), the checks of a restore against its manifest,
 * a drill's SQL checks and its recovery time.
 */
export const findingSchema = z.strictObject({
  severity: severitySchema,
  job: z.string().min(1),
  /** Short machine-readable name: `backup-age`, `no-backup`, `object-missing`, `rto`, … */
  check: z.string().min(1),
  message: z.string(),
  backupId: backupIdSchema.optional(),
});

/** One thing a check found (the type core/checks and the functions use). */
export type Finding = z.output<typeof findingSchema>;

/** One check a restore or a drill ran on the restored target, passed or not (core/ports `TargetCheck`). */
export const targetCheckSchema = z.strictObject({
  /** Short machine-readable name: `row-counts`, `file-count`, `sql:<name>`, `rto`, `restore`. */
  check: z.string().min(1),
  passed: z.boolean(),
  /** What was compared and what was found, in words. */
  detail: z.string(),
  /** What failed; empty when passed. */
  findings: z.array(findingSchema),
});

/** One check a restore or a drill ran. */
export type TargetCheck = z.output<typeof targetCheckSchema>;

/** `strongbox backup --job <job> --json`: one backup written and committed. */
export const agentBackupResultSchema = z.strictObject({
  job: z.string().min(1),
  backupId: backupIdSchema,
  tier: z.enum(TIERS),
  /** The job's source kind (`postgres`, `files`, …). */
  kind: z.string().min(1),
  /** Bytes the source produced (before compression and encryption). */
  sourceBytes: bytes,
  /** Bytes stored in the vault. */
  storedBytes: bytes,
  /** Data objects stored (most sources store one). */
  objects: z.number().int().positive(),
  durationSeconds: seconds,
  /** Vault key of the manifest written last. */
  manifestKey: z.string().min(1),
  /** What the source warned about (files changed or vanished while read); the run exits 1. */
  warnings: z.array(z.string()).optional(),
  /**
   * What the checks of the committed backup found: its size (source bytes) far under or over the median
   * of the job's recent backups (`backup-size`). Warnings: the backup is stored; the run exits 1.
   */
  findings: z.array(findingSchema).optional(),
});

/** What one backup printed. */
export type AgentBackupResult = z.output<typeof agentBackupResultSchema>;

/**
 * `strongbox backup --json` over several jobs (every job of the plan, or several `--job`s): every job's
 * outcome — the backups written and the jobs that failed with their error. Exit 2 when any job failed.
 */
export const agentBackupRunSchema = z.strictObject({
  backups: z.array(agentBackupResultSchema),
  failed: z.array(z.lazy(() => agentJobFailureSchema)),
});

/**
 * `strongbox backup --json`: the result of the one job (`--job <job>`, or a plan with one job), or
 * {@link agentBackupRunSchema} when the run covered several jobs. A one-job run that fails prints the
 * error object.
 */
export const agentBackupOutputSchema = z.union([agentBackupResultSchema, agentBackupRunSchema]);

/** What `strongbox backup --json` prints. */
export type AgentBackupOutput = z.output<typeof agentBackupOutputSchema>;

/** `strongbox restore --json`: where a backup was restored to and what the checks of it found. */
export const agentRestoreResultSchema = z.strictObject({
  job: z.string().min(1),
  backupId: backupIdSchema,
  /** The job's source kind. */
  kind: z.string().min(1),
  mode: z.enum(['scratch', 'replace', 'in-place', 'into-live']),
  /** Where the data now is: the scratch target, the live database name after a replace, `/` in place. */
  target: z.string().min(1),
  /** After a replace: the name the previous live data is kept under; in place: the kept directory. */
  keptAs: z.string().min(1).optional(),
  /** After a replace: the safety backup taken first. */
  safetyBackupId: backupIdSchema.optional(),
  /** Bytes restored (after decryption and decompression). */
  sourceBytes: bytes,
  durationSeconds: seconds,
  /** Every check of the restored data against the manifest, passed or not. */
  checks: z.array(targetCheckSchema),
  /** What the checks found wrong; empty when everything matched. */
  findings: z.array(findingSchema),
});

/** What `strongbox restore --json` prints. */
export type AgentRestoreResult = z.output<typeof agentRestoreResultSchema>;

/**
 * `strongbox drill --json`, also when the drill failed (exit 2, with a `drill-restore` finding): the
 * backup and the duration are absent when nothing was restored.
 */
export const agentDrillResultSchema = z.strictObject({
  job: z.string().min(1),
  backupId: backupIdSchema.optional(),
  /** The scratch target restored into (and removed afterwards). */
  target: z.string().min(1),
  /** Seconds the restore took: the measured recovery time. */
  durationSeconds: seconds.optional(),
  /** The job's recovery time objective, when the plan sets one. */
  rtoSeconds: seconds.optional(),
  /**
   * Point-in-time jobs: where the drill's recovery (base backup plus the WAL archive to its end)
   * actually got to (core/ports `RecoveryPoint`).
   */
  recoveryPoint: z
    .strictObject({
      lsn: z.string().optional(),
      time: z.string().optional(),
      timeline: z.number().int().positive().optional(),
    })
    .optional(),
  /** Every check that ran: the source's own, the plan's SQL checks, the RTO; or the failed restore. */
  checks: z.array(targetCheckSchema),
  findings: z.array(findingSchema),
});

/** What `strongbox drill --json` prints. */
export type AgentDrillResult = z.output<typeof agentDrillResultSchema>;

/**
 * `strongbox drill --json` over several jobs (no `--job`, or several): one drill result per job, in
 * plan order. Exit status: the worst finding of any drill.
 */
export const agentDrillRunSchema = z.strictObject({ drills: z.array(agentDrillResultSchema) });

/** What `strongbox drill --json` prints for several jobs. */
export type AgentDrillRun = z.output<typeof agentDrillRunSchema>;

/**
 * One step of a whole-host recovery (`restore --all` / `drill --all`): one job, in recovery order.
 * `skipped` steps come after a failed one (without `--keep-going`); they carry no backup or duration.
 */
export const agentRecoveryStepSchema = z.strictObject({
  /** 1-based position in the recovery order. */
  step: z.number().int().min(1),
  job: z.string().min(1),
  kind: z.string().min(1),
  status: z.enum(['ok', 'failed', 'skipped']),
  backupId: backupIdSchema.optional(),
  /** Where the job was restored (a drill's scratch target is removed afterwards). */
  target: z.string().min(1).optional(),
  /** Seconds the step took: restore and checks. */
  durationSeconds: seconds.optional(),
  checks: z.array(targetCheckSchema),
  findings: z.array(findingSchema),
  /** Why the step failed when it failed without findings (the restore itself failed). */
  error: z.string().optional(),
});

/**
 * `strongbox restore --all --host <name> --json` and `strongbox drill --all --host <name> --json`:
 * every job of the host in recovery order, and the total time — the measured RTO of the host.
 */
export const agentHostRecoverySchema = z.strictObject({
  host: z.string().min(1),
  mode: z.enum(['restore', 'drill']),
  /** Whether every step passed. */
  ok: z.boolean(),
  steps: z.array(agentRecoveryStepSchema),
  /** Seconds from the first step's start to the last step's end. */
  totalSeconds: seconds,
});

/** What `restore --all` / `drill --all` print with `--json`. */
export type AgentHostRecovery = z.output<typeof agentHostRecoverySchema>;
/** One step of it. */
export type AgentRecoveryStep = z.output<typeof agentRecoveryStepSchema>;

/** A full read of one backup by `strongbox verify --deep`: decrypted, authenticated, decompressed. */
export const agentDeepReadSchema = z.strictObject({
  backupId: backupIdSchema,
  storedBytes: bytes,
  sourceBytes: bytes,
  seconds,
  /** The source's checks of the content (postgres: the archive's TOC lists the manifest's tables). */
  checks: z.array(targetCheckSchema).optional(),
});

/** One job's summary in `strongbox verify --json` (core/checks `JobSummary`, plus the deep read). */
export const agentVerifyJobSchema = z.strictObject({
  job: z.string().min(1),
  newestBackupId: backupIdSchema.optional(),
  /** Seconds since the newest complete backup finished. */
  backupAgeSeconds: seconds.optional(),
  /** Stored bytes of the newest complete backup. */
  lastBackupBytes: bytes.optional(),
  /** Complete backups within retention, checked against their manifests. */
  retained: z.number().int().nonnegative(),
  /** Complete backups past their tier's retention. */
  expired: z.number().int().nonnegative(),
  /** Backups with data but no manifest. */
  incomplete: z.number().int().nonnegative(),
  /** Point-in-time jobs: the earliest and latest points a restore can reach. */
  recoveryWindow: z.strictObject({ earliest: z.string(), latest: z.string().optional() }).optional(),
  /** Point-in-time jobs: seconds since the newest WAL file was archived (the RPO met now). */
  walRpoSeconds: seconds.optional(),
  /** With `--deep`: the full read of the newest backup (or `--backup-id`). */
  deep: agentDeepReadSchema.optional(),
});

/** `strongbox verify --json`: one summary per job and every finding, worst first. */
export const agentVerifyResultSchema = z.strictObject({
  jobs: z.array(agentVerifyJobSchema),
  findings: z.array(findingSchema),
});

/** What `strongbox verify --json` prints. */
export type AgentVerifyResult = z.output<typeof agentVerifyResultSchema>;

/** One backup in `strongbox list --json` (core/inventory), complete or not. */
export const agentListBackupSchema = z.strictObject({
  job: z.string().min(1),
  backupId: backupIdSchema,
  /** Start time carried by the backup id. */
  startedAt: z.iso.datetime(),
  /** Whether the manifest exists. */
  complete: z.boolean(),
  /**
   * `complete`; `warnings` (complete, the source warned); `safety` (taken by `restore --replace`);
   * `incomplete` (data without a manifest: running, or a failed run's leftover); `invalid` (a manifest
   * that cannot be read: not restorable).
   */
  status: z.enum(['complete', 'warnings', 'safety', 'incomplete', 'invalid']),
  /** Seconds since the backup started. */
  ageSeconds: seconds,
  /** Bytes the vault holds for the backup, manifest included. */
  storedBytes: bytes,
  /** Storage classes of its data objects. */
  storageClasses: z.array(z.string().min(1)).min(1),
  /** From the manifest (absent for incomplete and invalid backups): the GFS tier. */
  tier: z.enum(TIERS).optional(),
  finishedAt: z.iso.datetime().optional(),
  /** Seconds from start to finish. */
  durationSeconds: seconds.optional(),
  /** Bytes the source produced (before compression and encryption). */
  sourceBytes: bytes.optional(),
  /** What the source warned about. */
  warnings: z.array(z.string()).optional(),
});

/** One backup as `strongbox list --json` shows it. */
export type AgentListBackup = z.output<typeof agentListBackupSchema>;

const backupPointSchema = z.strictObject({ backupId: backupIdSchema, finishedAt: z.iso.datetime() });

/** One job's summary in `strongbox list --json` (core/inventory). */
export const agentListJobSchema = z.strictObject({
  job: z.string().min(1),
  /** The job's source kind. */
  kind: z.string().min(1),
  /** Complete backups whose data is stored, safety backups not counted. */
  complete: z.number().int().nonnegative(),
  /** Those backups per GFS tier. */
  tiers: z.strictObject({
    daily: z.number().int().nonnegative(),
    weekly: z.number().int().nonnegative(),
    monthly: z.number().int().nonnegative(),
    yearly: z.number().int().nonnegative(),
  }),
  /** Safety backups (`restore --replace`) whose data is stored. */
  safety: z.number().int().nonnegative(),
  /** Complete backups whose source warned. */
  warnings: z.number().int().nonnegative(),
  /** Backups with data but no manifest. */
  incomplete: z.number().int().nonnegative(),
  /** Backups whose manifest cannot be read. */
  invalid: z.number().int().nonnegative(),
  /** Bytes the vault holds for the job's backups, incomplete ones included (WAL not counted). */
  storedBytes: bytes,
  /** Bytes the sources produced for the complete backups. */
  sourceBytes: bytes,
  /** The oldest complete backup (not a safety backup). */
  oldest: backupPointSchema.optional(),
  /** The newest complete backup, and seconds since it finished. */
  newest: backupPointSchema.extend({ ageSeconds: seconds }).optional(),
  /** Point-in-time jobs: the earliest and latest points a restore can reach (core/recovery-window). */
  recoveryWindow: z.strictObject({ earliest: z.string(), latest: z.string().optional() }).optional(),
});

/** One job's summary as `strongbox list --json` shows it. */
export type AgentListJob = z.output<typeof agentListJobSchema>;

/**
 * `strongbox list --json`: a summary per job, in plan order, and every backup of those jobs, complete
 * or not, oldest first per job.
 */
export const agentListResultSchema = z.strictObject({
  jobs: z.array(agentListJobSchema),
  backups: z.array(agentListBackupSchema),
  /** With `--all`: writes of interrupted (or still running) backups that `prune` removes past the timeout. */
  unfinished: z.array(z.strictObject({ job: z.string().min(1), key: z.string().min(1) })).optional(),
  /** With `--all`: targets killed restores left (postgres: scratch databases still marked), one line each. */
  leftovers: z.array(z.strictObject({ job: z.string().min(1), line: z.string().min(1) })).optional(),
});

/** What `strongbox list --json` prints. */
export type AgentListResult = z.output<typeof agentListResultSchema>;

/** What kind of failure ended a run: core/errors' types, by meaning. */
export const AGENT_ERROR_KINDS = [
  /** The command line is wrong: an unknown command or option, a missing or bad value (UsageError). */
  'usage',
  /** The plan, a flag or a request is wrong (PlanError): the user can fix it. */
  'plan',
  /** The data source failed (SourceError). */
  'source',
  /** The vault failed (VaultError). */
  'vault',
  /** Stored data does not match what was written (IntegrityError). */
  'integrity',
  /** A key could not be created, unwrapped or used (KeyError). */
  'key',
  /** A job, backup or object does not exist (NotFoundError). */
  'not-found',
  /** Restoring failed; what was there before is untouched (RestoreError). */
  'restore',
  /** Stopped by a signal; nothing was committed. */
  'interrupted',
  /** Another run of the job holds its lock; this run did nothing (JobLockedError). */
  'locked',
  /** Anything else: a bug or an unexpected failure. */
  'internal',
] as const;

/** The kind of an agent failure. */
export type AgentErrorKind = (typeof AGENT_ERROR_KINDS)[number];

/** One error, as `--json` output carries it. */
export const agentErrorSchema = z.strictObject({
  kind: z.enum(AGENT_ERROR_KINDS),
  /** The one-line error message (the stderr error line without its prefix). */
  message: z.string().min(1),
  /** Every problem of a plan error, when there are several. */
  issues: z.array(z.string().min(1)).min(1).optional(),
});

/** One error as `--json` output carries it. */
export type AgentError = z.output<typeof agentErrorSchema>;

/** A job of a several-job run that failed, and why. */
export const agentJobFailureSchema = z.strictObject({
  job: z.string().min(1),
  error: agentErrorSchema,
});

/**
 * What a failing `--json` run prints on stdout, beside the `strongbox: error: …` line on stderr: every
 * failure that is not a command's own result — a usage error, a plan that does not load, a one-job
 * backup or restore that failed, an interrupted run.
 * @example { "error": { "kind": "plan", "message": "jobs[0].source.database: required" } }
 */
export const agentErrorOutputSchema = z.strictObject({ error: agentErrorSchema });

/** What a failing `--json` run prints. */
export type AgentErrorOutput = z.output<typeof agentErrorOutputSchema>;
