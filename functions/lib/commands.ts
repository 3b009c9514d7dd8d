/**
 * Commanding hosts through SSM Run Command with the Strongbox document, and reading back what the
 * agent said. The document runs `strongbox <agentArgv(...)>` (core/deployment) in its step
 * `DOCUMENT_RUN_STEP`; the agent prints one JSON object on stdout and, on failure, ends stderr with
 * `strongbox: error: <one line>`.
 */
import {
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  ListCommandsCommand,
  SendCommandCommand,
  type SSMClient,
  type Target,
} from '@aws-sdk/client-ssm';
import { z } from 'zod';
import { awsErrorName } from '#adapters/aws/errors';
import {
  AGENT_ERROR_PREFIX,
  type AgentAction,
  DOCUMENT_PARAMETERS,
  DOCUMENT_RUN_STEP,
  DOCUMENT_TIMEOUT_PARAMETER,
} from '#core/deployment';
import { PlanError } from '#core/errors';
import type { Job, Plan } from '#core/plan';
import { checkInput } from './validate';

/**
 * Where a command goes: the host entry of the plan (instance ids or tags) and its fan-out limits. A
 * schema because pending restore requests keep their target in the vault and are read back.
 */
export const commandTargetSchema = z
  .strictObject({
    /** Name of the plan's host entry, for messages (absent for ad-hoc restore targets). */
    name: z.string().min(1).optional(),
    instanceIds: z.array(z.string().min(1)).min(1).optional(),
    tags: z.record(z.string().min(1), z.string()).optional(),
    /** SendCommand MaxConcurrency: a count or a percentage (`50%`). */
    maxConcurrency: z.union([z.number().int().min(1), z.string().regex(/^\d+%?$/)]),
    /** SendCommand MaxErrors: a count or a percentage. */
    maxErrors: z.union([z.number().int().min(0), z.string().regex(/^\d+%?$/)]),
  })
  .refine((t) => Boolean(t.instanceIds?.length) || Object.keys(t.tags ?? {}).length > 0, {
    message: 'names neither instanceIds nor tags',
  });

/** Where a command goes (see commandTargetSchema). */
export type CommandTarget = z.output<typeof commandTargetSchema>;

/** The longest run limit of a document step (aws:runShellScript timeoutSeconds). */
export const MAX_RUN_SECONDS = 172_800;

/** SendCommand takes at most this many instance ids; beyond that, tags. */
export const MAX_INSTANCE_IDS = 50;

/**
 * The target of a plan host entry.
 * @example targetOfHost(plan, job.host ?? '', `jobs.${job.name}.host`)
 * @throws PlanError when the host is not in the plan.
 */
export function targetOfHost(plan: Plan, host: string | undefined, field: string): CommandTarget {
  if (!host) throw new PlanError([`${field}: required to run on AWS (name one of hosts)`]);
  const entry = Object.hasOwn(plan.hosts, host) ? plan.hosts[host] : undefined;
  if (!entry) {
    throw new PlanError([
      `${field}: '${host}' is not one of hosts (${Object.keys(plan.hosts).join(', ') || 'none'})`,
    ]);
  }
  return { name: host, ...entry };
}

/** The host a job backs up on. @throws PlanError when it has none. */
export function jobTarget(plan: Plan, job: Job): CommandTarget {
  return targetOfHost(plan, job.host, `job '${job.name}' host`);
}

/** A target in words: `db-primary (i-0abc…, i-0def…)` or `db-primary (tag Role=db)`. */
export function describeTarget(target: CommandTarget): string {
  const what = target.instanceIds?.length
    ? target.instanceIds.join(', ')
    : Object.entries(target.tags ?? {})
        .map(([k, v]) => `tag ${k}=${v}`)
        .join(', ');
  return target.name ? `${target.name} (${what})` : what;
}

/** What the functions ask the document to run. */
export interface AgentCommand {
  action: AgentAction;
  job: string;
  backupId?: string;
  tier?: string;
  /** AgentRestoreOptions as JSON (restore, drill). */
  options?: string;
  target: CommandTarget;
  /**
   * The job's time budget: the run limit of the agent step (document parameter executionTimeout, at
   * most 48 h) and also the delivery window (a host that has not started the command by then skips it).
   */
  timeoutSeconds: number;
}

/** Where the document is and where its output goes. */
export interface DocumentConfig {
  documentName: string;
  logGroupName: string;
}

/**
 * Sends the Strongbox document to a target. Parameters left empty are omitted (the document gives
 * them empty defaults); output goes to CloudWatch Logs; the comment names action, job and backup.
 * @example const commandId = await sendAgentCommand(ssm, doc, { action: 'backup', job: 'app-db', backupId, tier, target, timeoutSeconds: 3600 })
 * @returns the command id.
 */
export async function sendAgentCommand(
  ssm: SSMClient,
  doc: DocumentConfig,
  command: AgentCommand,
): Promise<string> {
  const { target } = command;
  const instanceIds = target.instanceIds ?? [];
  if (instanceIds.length > MAX_INSTANCE_IDS) {
    throw new PlanError([
      `host '${target.name ?? '?'}': ${instanceIds.length} instance ids, SendCommand takes at most ${MAX_INSTANCE_IDS}: target them by tags`,
    ]);
  }
  const parameters: Record<string, string[]> = {
    [DOCUMENT_PARAMETERS.action]: [command.action],
    [DOCUMENT_PARAMETERS.job]: [command.job],
  };
  if (command.backupId) parameters[DOCUMENT_PARAMETERS.backupId] = [command.backupId];
  if (command.tier) parameters[DOCUMENT_PARAMETERS.tier] = [command.tier];
  if (command.options) parameters[DOCUMENT_PARAMETERS.options] = [command.options];
  parameters[DOCUMENT_TIMEOUT_PARAMETER] = [
    String(Math.min(Math.max(Math.round(command.timeoutSeconds), 1), MAX_RUN_SECONDS)),
  ];
  const targets: Target[] = Object.entries(target.tags ?? {}).map(([key, value]) => ({
    Key: `tag:${key}`,
    Values: [value],
  }));
  const response = await ssm.send(
    new SendCommandCommand({
      DocumentName: doc.documentName,
      Parameters: parameters,
      ...(instanceIds.length > 0 ? { InstanceIds: instanceIds } : { Targets: targets }),
      MaxConcurrency: String(target.maxConcurrency),
      MaxErrors: String(target.maxErrors),
      TimeoutSeconds: Math.min(Math.max(Math.round(command.timeoutSeconds), 30), 2_592_000),
      Comment: commandComment(command),
      CloudWatchOutputConfig: { CloudWatchLogGroupName: doc.logGroupName, CloudWatchOutputEnabled: true },
    }),
  );
  const commandId = response.Command?.CommandId;
  if (!commandId) throw new Error('SendCommand answered without a command id');
  return commandId;
}

/** `strongbox backup app-db 20241206T020000Z-3f9a1c`, at most 100 characters (SSM's limit). */
export function commandComment(command: Pick<AgentCommand, 'action' | 'job' | 'backupId'>): string {
  return `strongbox ${command.action} ${command.job}${command.backupId ? ` ${command.backupId}` : ''}`.slice(
    0,
    100,
  );
}

/** The document parameters a command was sent with (first value of each). */
export interface CommandParameters {
  action?: string;
  job?: string;
  backupId?: string;
  tier?: string;
  options?: string;
}

/**
 * The parameters of a command, from ListCommands: which action, job and backup it was.
 * @returns undefined when SSM does not know the command (any more).
 */
export async function commandParameters(
  ssm: SSMClient,
  commandId: string,
): Promise<CommandParameters | undefined> {
  const response = await ssm.send(new ListCommandsCommand({ CommandId: commandId }));
  const command = response.Commands?.[0];
  if (!command) return undefined;
  const first = (name: string) => command.Parameters?.[name]?.[0] || undefined;
  return {
    action: first(DOCUMENT_PARAMETERS.action),
    job: first(DOCUMENT_PARAMETERS.job),
    backupId: first(DOCUMENT_PARAMETERS.backupId),
    tier: first(DOCUMENT_PARAMETERS.tier),
    options: first(DOCUMENT_PARAMETERS.options),
  };
}

/** What one host's run of a command came to, from GetCommandInvocation. */
export interface InvocationResult {
  commandId: string;
  instanceId: string;
  /** Success | Failed | TimedOut | Cancelled | … */
  status: string;
  /** Finer status: `Execution Timed Out`, `Delivery Timed Out`, `Undeliverable`, … */
  statusDetails?: string;
  /** Exit status of the agent (-1 when it never ran). */
  responseCode?: number;
  /** The first 24,000 characters of stdout. */
  stdout: string;
  /** The first 8,000 characters of stderr. */
  stderr: string;
  /** The agent's error line without its prefix, when it printed one. */
  errorLine?: string;
  startedAt?: string;
  endedAt?: string;
}

/** Statuses of an invocation that is not over yet. */
const RUNNING_STATUSES = new Set(['Pending', 'InProgress', 'Delayed', 'Cancelling']);

/** Whether an invocation status is final. */
export function isTerminalStatus(status: string): boolean {
  return !RUNNING_STATUSES.has(status);
}

/**
 * Reads one host's invocation of a command: status, exit code, the output tails and the agent's error
 * line. Retries briefly while SSM does not know the invocation yet (its API is eventually consistent),
 * and asks without a step name when the document does not have `DOCUMENT_RUN_STEP`.
 */
export async function readInvocation(
  ssm: SSMClient,
  commandId: string,
  instanceId: string,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<InvocationResult> {
  let pluginName: string | undefined = DOCUMENT_RUN_STEP;
  let response: GetCommandInvocationCommandOutput | undefined;
  for (let attempt = 1; !response; attempt++) {
    try {
      response = await ssm.send(
        new GetCommandInvocationCommand({
          CommandId: commandId,
          InstanceId: instanceId,
          ...(pluginName ? { PluginName: pluginName } : {}),
        }),
      );
    } catch (error) {
      const name = awsErrorName(error);
      if (name === 'InvalidPluginName' && pluginName) {
        pluginName = undefined;
      } else if (name === 'InvocationDoesNotExist' && attempt < 4) {
        await sleep(500 * attempt);
      } else {
        throw error;
      }
    }
  }
  const stdout = response.StandardOutputContent ?? '';
  const stderr = response.StandardErrorContent ?? '';
  return {
    commandId,
    instanceId,
    status: response.Status ?? 'Failed',
    statusDetails: response.StatusDetails,
    responseCode: response.ResponseCode,
    stdout,
    stderr,
    errorLine: agentErrorLine(stderr),
    startedAt: response.ExecutionStartDateTime || undefined,
    endedAt: response.ExecutionEndDateTime || undefined,
  };
}

/**
 * The agent's error line (without `strongbox: error: `): the last stderr line that carries it.
 * @example agentErrorLine('…\nstrongbox: error: pg_dump exited 1\n') // 'pg_dump exited 1'
 */
export function agentErrorLine(stderr: string): string | undefined {
  const lines = stderr.split('\n').map((l) => l.trimEnd());
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] as string;
    if (line.startsWith(AGENT_ERROR_PREFIX)) return line.slice(AGENT_ERROR_PREFIX.length).trim() || undefined;
  }
  return undefined;
}

/** The last non-empty line of some output, for failures that printed no error line. */
export function lastLine(text: string): string | undefined {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1);
}

/**
 * The agent's `--json` result: the last stdout line that is a JSON object (the document may print
 * install messages before it).
 */
export function agentJson(stdout: string): unknown {
  const lines = stdout.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = (lines[i] as string).trim();
    if (!line.startsWith('{')) continue;
    try {
      return JSON.parse(line);
    } catch {
      // not JSON after all: keep looking
    }
  }
  return undefined;
}

/**
 * The agent's `--json` result checked against its contract (a core/agent-output schema).
 * @example const read = readAgentResult(agentRestoreResultSchema, invocation.stdout)
 *   // { ok: false, problem: 'findings[0].severity: must be one of "critical", "warning", "info", got string "bad"' }
 * @returns the result, or why there is none: no JSON object on stdout, or each field that does not match.
 */
export function readAgentResult<S extends z.ZodType>(
  schema: S,
  stdout: string,
): { ok: true; data: z.output<S> } | { ok: false; problem: string } {
  const json = agentJson(stdout);
  if (json === undefined) return { ok: false, problem: 'no JSON object on stdout' };
  const checked = checkInput(schema, json);
  return checked.ok ? checked : { ok: false, problem: checked.issues.join('; ') };
}

/** Where SSM put the full output of an invocation in CloudWatch Logs. */
export function outputLocation(logGroupName: string, commandId: string, instanceId: string): string {
  return `CloudWatch Logs group ${logGroupName}, streams ${commandId}/${instanceId}/${DOCUMENT_RUN_STEP}/stdout and …/stderr`;
}
