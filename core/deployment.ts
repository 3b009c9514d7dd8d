/**
 * The contract between the CDK app (infra/), the Lambda handlers (functions/) and the agent on hosts:
 * names both sides must spell the same. One owner, so a rename cannot leave one side behind.
 */
import { z } from 'zod';

/** Lambda handlers, one file each under functions/, exporting `handler`. */
export const FUNCTIONS = {
  runBackup: 'run-backup',
  backupFinished: 'backup-finished',
  verify: 'verify',
  /** `aws lambda invoke` with a restore request: validate, pick the backup, retrieve or command. */
  restoreRequest: 'restore-request',
  /** S3 `Object Restore Completed`: continue the pending requests of that backup. */
  restoreContinue: 'restore-continue',
  /** SSM status change of a restore command: tell the alert topic how it ended. */
  restoreReport: 'restore-report',
  restoreDrill: 'restore-drill',
  notifySlack: 'notify-slack',
} as const;

/**
 * Environment variables the CDK app sets on the Lambdas and the handlers read (at their entry only).
 * The plan itself is a JSON S3 asset (validated at synth) that handlers load once per cold start: the
 * document as written (its YAML turned into JSON, defaults not filled in), so `parsePlan` gives the same
 * `Plan` on every side. Hosts get the same file at HOST_PATHS.plan.
 */
export const FUNCTION_ENV = {
  planBucket: 'STRONGBOX_PLAN_BUCKET',
  planKey: 'STRONGBOX_PLAN_KEY',
  vaultBucket: 'STRONGBOX_VAULT_BUCKET',
  documentName: 'STRONGBOX_DOCUMENT_NAME',
  topicArn: 'STRONGBOX_TOPIC_ARN',
  logGroupName: 'STRONGBOX_COMMAND_LOG_GROUP',
  slackWebhookParameter: 'STRONGBOX_SLACK_WEBHOOK_PARAMETER',
  metricsNamespace: 'POWERTOOLS_METRICS_NAMESPACE',
  serviceName: 'POWERTOOLS_SERVICE_NAME',
} as const;

/** CloudWatch namespace of every Strongbox metric. */
export const METRICS_NAMESPACE = 'Strongbox';

/** The one dimension of every Strongbox metric: the job name. */
export const METRICS_DIMENSION = 'Job';

/** Metric names (dimension METRICS_DIMENSION, `Job`). */
export const METRICS = {
  backupAgeSeconds: 'BackupAgeSeconds',
  lastBackupBytes: 'LastBackupBytes',
  backupDurationSeconds: 'BackupDurationSeconds',
  backupSucceeded: 'BackupSucceeded',
  backupFailed: 'BackupFailed',
  findings: 'Findings',
  drillDurationSeconds: 'RestoreDrillDurationSeconds',
  drillFailed: 'RestoreDrillFailed',
  /** Point-in-time jobs: seconds since the newest WAL file was archived (verify's `walRpoSeconds`). */
  walRpoSeconds: 'WalRpoSeconds',
} as const;

/**
 * Parameters of the Strongbox SSM Command document. Passed to the script as environment variables
 * (`interpolationType: ENV_VAR`, so `SSM_<name>`), never pasted into the script.
 */
export const DOCUMENT_PARAMETERS = {
  /** backup | restore | verify | drill */
  action: 'action',
  job: 'job',
  /** Backup id to write (backup) or read (restore); empty for latest. */
  backupId: 'backupId',
  /** GFS tier decided by run-backup. */
  tier: 'tier',
  /** Extra agent flags for restore, as validated JSON (target database, tables, mode). */
  options: 'options',
} as const;

/**
 * The SSM document's `allowedPattern` of the options parameter: the JSON of AgentRestoreOptions, with no
 * backquote, dollar, backslash, control or non-ASCII character, at most 4,002 characters. One owner:
 * the document uses it, and the restore function checks the options it would send against it, so
 * nothing it accepts is then refused by SSM.
 */
export const DOCUMENT_OPTIONS_PATTERN = `^$|^\\{[A-Za-z0-9 _.,:;"'@%+=/()*?!#<>{}\\[\\]-]{0,4000}\\}$`;

/**
 * Document parameter that sets the run limit of the agent step in seconds (the step's `timeoutSeconds`,
 * 1 to 172800): the functions pass the job's `timeout`. It is interpolated into the step's input, never
 * into the script, and defaults to the longest job timeout of the plan. Not one of DOCUMENT_PARAMETERS,
 * which reach the script as environment variables.
 */
export const DOCUMENT_TIMEOUT_PARAMETER = 'executionTimeout';

/** Agent actions the document can run. */
export const AGENT_ACTIONS = ['backup', 'restore', 'verify', 'drill'] as const;
export type AgentAction = (typeof AGENT_ACTIONS)[number];

/** Where hosts install the agent (the single executable, no Node.js needed) and the plan. */
export const HOST_PATHS = {
  agent: '/opt/strongbox/strongbox',
  plan: '/etc/strongbox/plan.json',
} as const;

/**
 * The processor architectures the agent executable is built for (Node.js's `process.arch` names), with
 * the names `uname -m` prints for each on Linux: the SSM document picks the executable by them.
 */
export const AGENT_ARCHITECTURES = {
  x64: ['x86_64', 'amd64'],
  arm64: ['aarch64', 'arm64'],
} as const;
export type AgentArchitecture = keyof typeof AGENT_ARCHITECTURES;

/** File name of the agent executable for one architecture (`npm run build:exe` writes it to dist/). */
export function agentExecutableName(arch: AgentArchitecture): string {
  return `strongbox-linux-${arch}`;
}

/**
 * Environment the SSM document gives the agent on hosts: a deployment creates the bucket and the KMS
 * key with generated names, so these override the plan's `vault.url` and `key` (a kms key) at run time.
 */
export const AGENT_ENV = {
  vaultUrl: 'STRONGBOX_VAULT_URL',
  kmsKeyId: 'STRONGBOX_KMS_KEY_ID',
  region: 'AWS_REGION',
  /**
   * How PostgreSQL runs this agent from `restore_command` in a point-in-time restore (`strongbox` on
   * PATH when unset), e.g. `/usr/local/bin/strongbox`.
   */
  command: 'STRONGBOX_COMMAND',
} as const;

/**
 * Options of a restore or drill that travel as one JSON document parameter (`--options`); also what a
 * pending restore request keeps in the vault until its archived objects are retrieved.
 */
export const agentRestoreOptionsSchema = z.strictObject({
  /** Database name (postgres) or directory (files) to restore into; a new scratch target by default. */
  target: z.string().min(1).optional(),
  /** Tables to restore (logical PostgreSQL only), `schema.table` or `table`. */
  tables: z.array(z.string().min(1)).optional(),
  /** Restore beside the live data, check, swap, keep the old one. */
  replace: z.boolean().optional(),
  /** Must equal the job name when replace is set. */
  confirm: z.string().optional(),
  /** Point-in-time jobs: `latest`, `time:<ISO time with offset>`, `lsn:<lsn>`, `xid:<xid>`, `name:<restore point>`. */
  to: z.string().min(1).optional(),
  /** Point-in-time jobs: start the restored copy and wait until it is promoted. */
  start: z.boolean().optional(),
  /** Point-in-time jobs, with `to`: the copy archives its new timeline into the job's WAL archive. */
  archive: z.boolean().optional(),
  /** Point-in-time jobs: new tablespace locations by original location (`--tablespace-map OLD=NEW`). */
  tablespaceMap: z
    .record(
      z.string().startsWith('/', 'must be an absolute path'),
      z.string().startsWith('/', 'must be an absolute path'),
    )
    .optional(),
  /** Files jobs: absolute paths (globs allowed) to restore instead of everything. */
  paths: z.array(z.string().startsWith('/', 'must be an absolute path')).min(1).optional(),
  /** Files jobs: restore over the original locations, keeping what is overwritten beside. */
  inPlace: z.boolean().optional(),
  /** With inPlace: also move away what is not in the backup (into the kept directory). */
  delete: z.boolean().optional(),
  /** Postgres jobs, with tables: restore them into the live database (safety backup first, one transaction). */
  intoLive: z.boolean().optional(),
});

/** Options of a restore or drill (`--options`). */
export type AgentRestoreOptions = z.output<typeof agentRestoreOptionsSchema>;

/**
 * The agent command line a document invocation runs, from the document parameters. The document's shell
 * script and the local SSM test adapter both follow it; every value is one argv element (no shell).
 * @example agentArgv({ action: 'backup', job: 'db', backupId: '20241206T020000Z-3f9a1c', tier: 'daily' })
 */
export function agentArgv(params: {
  action: AgentAction;
  job: string;
  backupId?: string;
  tier?: string;
  options?: string;
}): string[] {
  const argv = [params.action, '--plan', HOST_PATHS.plan, '--job', params.job, '--json'];
  if (params.backupId) argv.push('--backup-id', params.backupId);
  if (params.action === 'backup' && params.tier) argv.push('--tier', params.tier);
  if ((params.action === 'restore' || params.action === 'drill') && params.options)
    argv.push('--options', params.options);
  return argv;
}

/**
 * The EventBridge Scheduler context attribute that backup and drill schedules put in their target input
 * (`scheduledTime`), so a retried invocation for the same scheduled time is recognised.
 */
export const SCHEDULED_TIME_ATTRIBUTE = '<aws.scheduler.scheduled-time>';

/**
 * Target input of a job's backup schedule (→ run-backup) and drill schedule (→ restore-drill).
 * @example { job: 'appdb', scheduledTime: SCHEDULED_TIME_ATTRIBUTE }
 */
export interface JobScheduleInput {
  job: string;
  /** ISO 8601 time the schedule fired for; absent when invoked by hand (the invocation time is used). */
  scheduledTime?: string;
}

/** Target input of the verify schedule: every job when `jobs` is absent. */
export interface VerifyScheduleInput {
  jobs?: string[];
  /** Metrics only, no checksums and no alert (the hourly backup-age run). */
  metricsOnly?: boolean;
}

/**
 * Name of the document step (`mainSteps[].name`) that runs the agent. The functions read the agent's
 * stdout and stderr with `GetCommandInvocation`, which needs the step name once a document has several.
 */
export const DOCUMENT_RUN_STEP = 'runStrongbox';

/**
 * Command statuses of the `EC2 Command Invocation Status-change Notification` event that end an
 * invocation; the EventBridge rule matches these only (the handlers ignore the others anyway).
 */
export const COMMAND_TERMINAL_STATUSES = ['Success', 'Failed', 'TimedOut', 'Cancelled'] as const;

/** How the agent's last stderr line starts when it fails (SSM keeps only the tail of the output). */
export const AGENT_ERROR_PREFIX = 'strongbox: error: ';

/**
 * What the agent prints with `--json`, as the functions read it: the schemas and types of
 * core/agent-output, the one owner of that contract.
 */
export type {
  AgentBackupResult,
  AgentDrillResult,
  AgentRestoreResult,
  Finding as AgentFinding,
} from './agent-output';
