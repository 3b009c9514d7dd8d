/**
 * A command the plan tells the agent to run: a backup or restore command of the `command` source, a
 * drill's check command, a job's `before`/`after` hook. Written as an argv list (run directly, no shell)
 * or, only when the plan says so, as one `shell:` line for `/bin/sh -c`; always with a timeout. Secrets
 * reach a command through its environment (`secretEnv`), never its argv.
 */
import { z } from 'zod';
import { parseDurationSeconds } from './duration';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A timeout with its unit (`30s`, `10m`, `2h`), in seconds; bare numbers are refused as ambiguous. */
export const commandTimeout = z
  .string({ error: 'must be a duration with its unit, such as 30s, 10m or 2h' })
  .transform((value, ctx) => {
    const seconds = parseDurationSeconds(value);
    if (seconds === undefined || seconds === 0) {
      ctx.addIssue({ code: 'custom', message: `'${value}' is not a timeout (use e.g. 30s, 10m, 2h)` });
      return z.NEVER;
    }
    return seconds;
  });

/** Where one environment variable of a command comes from: the agent's environment or an SSM SecureString. */
const secretRef = z.union([
  z.strictObject({ env: z.string().regex(ENV_NAME, 'must be an environment variable name') }),
  z.strictObject({ parameter: z.string().regex(/^\/?[A-Za-z0-9_.\-/]+$/, 'must be an SSM parameter name') }),
]);

/** The default timeout of a command the plan runs: one hour. */
export const DEFAULT_COMMAND_TIMEOUT_SECONDS = 3_600;

/**
 * One command. `argv` runs the program directly; `shell` runs one line with `/bin/sh -c` (pipes,
 * redirections) and must be asked for by using that field. `env` adds plain variables; `secretEnv`
 * names where each secret variable's value is read (never written to argv, disk or logs).
 */
export const commandSchema = z
  .strictObject({
    argv: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .meta({
        description: 'The program and its arguments, run directly (no shell); give this or shell.',
        examples: [['pg_dumpall', '--globals-only']],
      }),
    shell: z
      .string()
      .min(1)
      .optional()
      .meta({
        description: 'One line for /bin/sh -c (pipes, redirections); give this or argv.',
        examples: ['docker save app:latest | cat'],
      }),
    timeout: commandTimeout.prefault('1h').meta({
      description: 'How long the command may run before it is stopped.',
      'x-strongbox-type': 'duration (30s, 10m, 2h)',
    }),
    env: z
      .record(z.string().regex(ENV_NAME, 'must be an environment variable name'), z.string())
      .default({})
      .meta({
        description: 'Plain environment variables added for the command.',
        examples: [{ LANG: 'C.UTF-8' }],
      }),
    secretEnv: z
      .record(z.string().regex(ENV_NAME, 'must be an environment variable name'), secretRef)
      .default({})
      .meta({
        description:
          'Secret environment variables, each read from the agent’s environment ({ env: NAME }) or an SSM SecureString ({ parameter: /name }); never argv, disk or logs.',
        examples: [{ PGPASSWORD: { parameter: '/strongbox/app-db/password' } }],
      }),
  })
  .refine((command) => (command.argv === undefined) !== (command.shell === undefined), {
    message: 'give exactly one of argv (a list, run without a shell) or shell (one line for /bin/sh -c)',
  });

/** A command as the plan gives it, validated (timeout in seconds). */
export type CommandSpec = z.output<typeof commandSchema>;

/**
 * The command in words for messages and manifests: the argv joined, or the shell line. Plans hold no
 * secrets (those are in `secretEnv`), so this may be shown.
 * @example describeCommand({ argv: ['docker', 'save', 'app'], … }) // 'docker save app'
 */
export function describeCommand(command: Pick<CommandSpec, 'argv' | 'shell'>): string {
  return command.argv ? command.argv.join(' ') : `sh -c ${JSON.stringify(command.shell)}`;
}
