/**
 * Running a command the plan names (core/command `CommandSpec`): the `command` source's backup, restore
 * and check commands and a job's hooks. One way to resolve its environment (secrets from the agent's
 * environment or SSM, never argv) and to start it, in its own process group under its timeout.
 */

import { type CommandSpec, describeCommand } from '#core/command';
import { PlanError } from '#core/errors';
import type { SourceContext } from '#core/ports';
import { spawnTool, type ToolProcess } from './child';

/** How to start one plan command. */
export interface StartCommandOptions {
  /** Where the plan gives the command, for messages: `jobs[2].source.backup`, `hooks.before[0]`. */
  where: string;
  ctx: SourceContext;
  /** Variables Strongbox itself sets (`STRONGBOX_TARGET`, `STRONGBOX_JOB`, …), over the plan's. */
  extraEnv?: Record<string, string>;
  cwd?: string;
  /** @default 'ignore' */
  stdin?: 'pipe' | 'ignore';
  /** @default 'pipe' */
  stdout?: 'pipe' | 'ignore';
}

/**
 * The complete environment of a plan command: the agent's environment, the command's `env`, the secrets
 * of its `secretEnv` (read now), then `extra`. Values are never logged.
 * @throws PlanError naming the variable when a secret's source is unset or missing.
 */
export async function commandEnv(
  command: CommandSpec,
  where: string,
  ctx: SourceContext,
  extra: Record<string, string> = {},
): Promise<Record<string, string | undefined>> {
  const env: Record<string, string | undefined> = { ...ctx.env, ...command.env };
  for (const [name, ref] of Object.entries(command.secretEnv)) {
    if ('env' in ref) {
      const value = ctx.env[ref.env];
      if (value === undefined || value === '') {
        throw new PlanError([
          `${where}.secretEnv.${name}: environment variable ${ref.env} is not set on this host`,
        ]);
      }
      env[name] = value;
    } else {
      if (!ctx.secrets) {
        throw new PlanError([`${where}.secretEnv.${name}: no secret store to read ${ref.parameter} from`]);
      }
      try {
        env[name] = await ctx.secrets.read(ref.parameter, { signal: ctx.signal });
      } catch (error) {
        if (error instanceof PlanError) {
          throw new PlanError([`${where}.secretEnv.${name}: ${error.issues.join('; ')}`], { cause: error });
        }
        throw error;
      }
    }
  }
  return { ...env, ...extra };
}

/**
 * Starts a plan command: argv directly, or its shell line under `/bin/sh -c`; in a process group of its
 * own (a shell's pipeline dies with it), killed once it exceeds its timeout or `ctx.signal` aborts.
 * `done` rejects with a SourceError naming the command, how it ended and its stderr's last lines.
 * @example const tool = await startCommand(config.backup, { where: 'source.backup', ctx }); tool.stdout
 */
export async function startCommand(command: CommandSpec, options: StartCommandOptions): Promise<ToolProcess> {
  const env = await commandEnv(command, options.where, options.ctx, options.extraEnv);
  const [program, ...args] = command.argv ?? ['/bin/sh', '-c', command.shell as string];
  return spawnTool(program as string, args, {
    env,
    cwd: options.cwd,
    signal: options.ctx.signal,
    stdin: options.stdin ?? 'ignore',
    stdout: options.stdout ?? 'pipe',
    name: `${options.where} (${truncate(describeCommand(command), 80)})`,
    timeoutSeconds: command.timeout,
    processGroup: true,
  });
}

function truncate(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}
