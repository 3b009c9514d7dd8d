/**
 * A local stand-in for SSM Run Command and the Strongbox document, for end-to-end tests: an SSMClient
 * mocked at the SDK (aws-sdk-client-mock) whose SendCommand runs the real agent the way the document's
 * run step does — `node agent/main.ts <agentArgv(parameters)>`, the plan path of the host replaced by a
 * local one, with the environment the document exports (STRONGBOX_VAULT_URL, AWS_REGION) plus the test's
 * (s3rver credentials) — and whose GetCommandInvocation and ListCommands answer as SSM does: the first
 * 24,000 characters of stdout and 8,000 of stderr, status Success or Failed with the exit code, TimedOut
 * after the executionTimeout parameter. Parameters are checked against the document's allowedPatterns
 * (infra's `parameterPatterns`), as SSM rejects a SendCommand whose values do not match.
 *
 * `settle()` waits for every command sent so far and returns the EventBridge events SSM would emit for
 * them (`EC2 Command Invocation Status-change Notification`), to be fed to the handlers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SendCommandCommand,
  type SendCommandCommandInput,
  SSMClient,
  SSMServiceException,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import {
  type AgentAction,
  agentArgv,
  DOCUMENT_PARAMETERS,
  DOCUMENT_RUN_STEP,
  DOCUMENT_TIMEOUT_PARAMETER,
  HOST_PATHS,
} from '#core/deployment';
import { parameterPatterns } from '#infra/constructs/agent-document';

const root = join(import.meta.dirname, '..', '..');

/** One host's run of a command. */
export interface LocalInvocation {
  instanceId: string;
  argv: string[];
  status: 'InProgress' | 'Success' | 'Failed' | 'TimedOut';
  statusDetails: string;
  responseCode: number;
  stdout: string;
  stderr: string;
  done: Promise<void>;
}

/** A command as the adapter keeps it. */
export interface LocalCommand {
  commandId: string;
  documentName: string;
  parameters: Record<string, string[]>;
  comment?: string;
  invocations: LocalInvocation[];
}

/** How the adapter runs the document. */
export interface LocalSsmOptions {
  /** The name SendCommand must use (the stack's document). */
  documentName: string;
  /** The plan file on this "host" (stands for HOST_PATHS.plan). */
  planPath: string;
  /** Jobs of the plan (the document's allowedPattern of `job` lists them). */
  jobs: readonly string[];
  /** Environment of the run step: what the document exports and what the host has (credentials). */
  env: Record<string, string>;
  /** Instances that tag targets resolve to. @default ['i-00000000000000001'] */
  taggedInstances?: string[];
}

/** The local SSM: a mocked client and the commands it ran. */
export class LocalSsm {
  readonly client = new SSMClient({ region: 'eu-central-1' });
  readonly commands = new Map<string, LocalCommand>();
  readonly #mock = mockClient(this.client);
  readonly #options: LocalSsmOptions;
  readonly #patterns: Record<string, string>;
  readonly #children = new Set<ChildProcess>();
  #reported = new Set<string>();

  constructor(options: LocalSsmOptions) {
    this.#options = options;
    this.#patterns = parameterPatterns(options.jobs);
    this.#mock.on(SendCommandCommand).callsFake((input: SendCommandCommandInput) => this.#send(input));
    this.#mock
      .on(GetCommandInvocationCommand)
      .callsFake((input: { CommandId: string; InstanceId: string; PluginName?: string }) =>
        this.#invocation(input),
      );
    this.#mock.on(ListCommandsCommand).callsFake((input: { CommandId?: string }) => {
      const command = input.CommandId ? this.commands.get(input.CommandId) : undefined;
      return {
        Commands: command
          ? [
              {
                CommandId: command.commandId,
                DocumentName: command.documentName,
                Parameters: command.parameters,
                Comment: command.comment,
              },
            ]
          : [],
      };
    });
  }

  /**
   * Waits for every command sent so far to end on every host, and returns the status-change events of
   * the invocations not reported before, in the order they were sent.
   */
  async settle(): Promise<ReturnType<typeof statusEvent>[]> {
    const events: ReturnType<typeof statusEvent>[] = [];
    for (const command of this.commands.values()) {
      for (const invocation of command.invocations) {
        await invocation.done;
        const id = `${command.commandId}/${invocation.instanceId}`;
        if (this.#reported.has(id)) continue;
        this.#reported.add(id);
        events.push(statusEvent(command, invocation));
      }
    }
    return events;
  }

  /** Kills agents still running (afterAll). */
  stop(): void {
    for (const child of this.#children) child.kill('SIGKILL');
  }

  #send(input: SendCommandCommandInput) {
    if (input.DocumentName !== this.#options.documentName) {
      throw ssmError('InvalidDocument', `document ${input.DocumentName} does not exist`);
    }
    const parameters = input.Parameters ?? {};
    for (const [name, values] of Object.entries(parameters)) {
      const pattern = this.#patterns[name];
      if (!pattern) throw ssmError('InvalidParameters', `parameter ${name} is not in the document`);
      for (const value of values) {
        if (!new RegExp(pattern).test(value)) {
          throw ssmError('InvalidParameters', `parameter ${name} value '${value}' does not match ${pattern}`);
        }
      }
    }
    const first = (name: string) => parameters[name]?.[0] || undefined;
    const action = first(DOCUMENT_PARAMETERS.action) as AgentAction | undefined;
    const job = first(DOCUMENT_PARAMETERS.job);
    if (!action || !job) throw ssmError('InvalidParameters', 'action and job are required');
    const instances = input.InstanceIds?.length
      ? input.InstanceIds
      : (this.#options.taggedInstances ?? ['i-00000000000000001']);
    const argv = agentArgv({
      action,
      job,
      backupId: first(DOCUMENT_PARAMETERS.backupId),
      tier: first(DOCUMENT_PARAMETERS.tier),
      options: first(DOCUMENT_PARAMETERS.options),
    }).map((element) => (element === HOST_PATHS.plan ? this.#options.planPath : element));
    const timeoutSeconds = Number(first(DOCUMENT_TIMEOUT_PARAMETER) ?? 3600);
    const command: LocalCommand = {
      commandId: randomUUID(),
      documentName: input.DocumentName,
      parameters,
      comment: input.Comment,
      invocations: instances.map((instanceId) => this.#run(instanceId, argv, timeoutSeconds)),
    };
    this.commands.set(command.commandId, command);
    return {
      Command: { CommandId: command.commandId, DocumentName: command.documentName, Parameters: parameters },
    };
  }

  #run(instanceId: string, argv: string[], timeoutSeconds: number): LocalInvocation {
    const invocation = {
      instanceId,
      argv,
      status: 'InProgress',
      statusDetails: 'InProgress',
      responseCode: -1,
      stdout: '',
      stderr: '',
    } as LocalInvocation;
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'agent', 'main.ts'), ...argv], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...this.#options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#children.add(child);
    child.stdout.on('data', (chunk: Buffer) => {
      invocation.stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      invocation.stderr += chunk.toString('utf8');
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutSeconds * 1000);
    invocation.done = new Promise<void>((resolve) => {
      child.on('close', (code) => {
        clearTimeout(timer);
        this.#children.delete(child);
        invocation.responseCode = code ?? -1;
        if (timedOut) {
          invocation.status = 'TimedOut';
          invocation.statusDetails = 'Execution Timed Out';
        } else {
          invocation.status = code === 0 ? 'Success' : 'Failed';
          invocation.statusDetails = invocation.status;
        }
        resolve();
      });
    });
    return invocation;
  }

  #invocation(input: { CommandId: string; InstanceId: string; PluginName?: string }) {
    if (input.PluginName !== undefined && input.PluginName !== DOCUMENT_RUN_STEP) {
      throw ssmError('InvalidPluginName', `the document has no step ${input.PluginName}`);
    }
    const invocation = this.commands
      .get(input.CommandId)
      ?.invocations.find((i) => i.instanceId === input.InstanceId);
    if (!invocation) throw ssmError('InvocationDoesNotExist', 'no such invocation');
    const over = invocation.status !== 'InProgress';
    return {
      CommandId: input.CommandId,
      InstanceId: input.InstanceId,
      DocumentName: this.#options.documentName,
      PluginName: DOCUMENT_RUN_STEP,
      Status: invocation.status,
      StatusDetails: invocation.statusDetails,
      ResponseCode: invocation.responseCode,
      StandardOutputContent: over ? invocation.stdout.slice(0, 24_000) : '',
      StandardErrorContent: over ? invocation.stderr.slice(0, 8_000) : '',
    };
  }
}

function ssmError(name: string, message: string): SSMServiceException {
  return new SSMServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: 400 }, message });
}

/** The EventBridge event SSM emits when one host's invocation of a command ends. */
export function statusEvent(command: LocalCommand, invocation: LocalInvocation) {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': 'EC2 Command Invocation Status-change Notification',
    source: 'aws.ssm',
    account: '111122223333',
    time: new Date().toISOString(),
    region: 'eu-central-1',
    resources: [`arn:aws:ec2:eu-central-1:111122223333:instance/${invocation.instanceId}`],
    detail: {
      'command-id': command.commandId,
      'document-name': command.documentName,
      'instance-id': invocation.instanceId,
      'requested-date-time': new Date().toISOString(),
      status: invocation.status,
    },
  };
}
