/** Words for how a command ended on a host, shared by the handlers that report command outcomes. */
import type { Plan } from '#core/plan';
import { type InvocationResult, lastLine } from './commands';

/**
 * `db-primary (i-0abc…)` when the plan names the job's host (or its drill host, for drills), else the
 * instance id.
 */
export function hostOf(
  plan: Plan,
  job: string,
  instanceId: string,
  role: 'backup' | 'drill' = 'backup',
): string {
  const entry = plan.jobs.find((j) => j.name === job);
  const host = role === 'drill' ? (entry?.drill?.host ?? entry?.host) : entry?.host;
  return host ? `${host} (${instanceId})` : instanceId;
}

/** `Command 1b2c…: Failed (Failed), exit code 2 on i-0abc…`. */
export function statusLine(invocation: InvocationResult): string {
  const details =
    invocation.statusDetails && invocation.statusDetails !== invocation.status
      ? ` (${invocation.statusDetails})`
      : '';
  const code = invocation.responseCode !== undefined ? `, exit code ${invocation.responseCode}` : '';
  return `Command ${invocation.commandId}: ${invocation.status}${details}${code} on ${invocation.instanceId}.`;
}

/** What went wrong when the agent printed no error line: a timeout, a cancel, or its last words. */
export function failureWithoutErrorLine(invocation: InvocationResult): string {
  const details = invocation.statusDetails ?? invocation.status;
  if (/Delivery Timed Out|Undeliverable/i.test(details)) {
    return `The host never ran the command (${details}): it was offline or its SSM Agent did not answer.`;
  }
  if (invocation.status === 'TimedOut' || /Execution Timed Out/i.test(details)) {
    return `The run was stopped at the document's execution timeout (${details}).`;
  }
  if (invocation.status === 'Cancelled') return 'The command was cancelled before the backup finished.';
  const last = lastLine(invocation.stderr);
  return last
    ? `The agent printed no error line; its last output was: ${last}`
    : `The command ended ${details} without output.`;
}
