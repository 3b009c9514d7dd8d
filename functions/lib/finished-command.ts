/**
 * The first half of every "a command finished" handler (backup-finished, and the completion branches of
 * restore and restore-drill): is this event about a finished invocation of our document, for my action?
 * If so, what did the agent say?
 */
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { AgentAction } from '#core/deployment';
import {
  type CommandParameters,
  commandParameters,
  type InvocationResult,
  isTerminalStatus,
  readInvocation,
} from './commands';
import type { CommandStatusEvent } from './events';

/** A finished invocation of the Strongbox document for one action. */
export interface FinishedCommand {
  parameters: CommandParameters & { job: string };
  invocation: InvocationResult;
}

/** Why an event was not for this handler. */
export interface IgnoredEvent {
  ignored: string;
}

/**
 * Reads a finished invocation of the Strongbox document for `action`, or says why the event is not one:
 * another document, a status that is not final, or a command of another action (each handler that
 * receives the shared status-change rule takes only its own action).
 */
export async function readFinishedCommand(
  event: CommandStatusEvent,
  services: { ssm: SSMClient; env: { documentName: string }; sleep: (ms: number) => Promise<void> },
  action: AgentAction,
): Promise<FinishedCommand | IgnoredEvent> {
  const detail = event.detail;
  const ours = services.env.documentName.split('/').at(-1);
  if (detail['document-name'] !== ours)
    return { ignored: `document ${detail['document-name']} is not ${ours}` };
  if (!isTerminalStatus(detail.status)) return { ignored: `status ${detail.status} is not final` };
  const parameters = await commandParameters(services.ssm, detail['command-id']);
  if (!parameters) return { ignored: `command ${detail['command-id']} is unknown to SSM` };
  if (parameters.action !== action)
    return { ignored: `command runs ${parameters.action ?? 'no action'}, not ${action}` };
  if (!parameters.job) return { ignored: `command ${detail['command-id']} names no job` };
  const invocation = await readInvocation(
    services.ssm,
    detail['command-id'],
    detail['instance-id'],
    services.sleep,
  );
  return { parameters: { ...parameters, job: parameters.job }, invocation };
}
