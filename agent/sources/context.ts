/**
 * What every source driver is handed by its caller: the environment (read once at the entry point), an
 * abort signal for the whole operation, and AWS clients where a source needs one.
 */
import type { SSMClient } from '@aws-sdk/client-ssm';
import { PlanError, SourceError } from '#core/errors';

/** The context of one source operation. */
export interface SourceContext {
  /** Environment variables, passed down from the entry point (never read from `process.env` here). */
  env: Record<string, string | undefined>;
  /** Aborts the operation: tools are killed and partial targets removed. */
  signal?: AbortSignal;
  /** SSM client for `passwordParameter`. @default a client for the environment's region */
  ssm?: SSMClient;
}

/** The password fields a source config may carry. */
export interface PasswordConfig {
  passwordEnv?: string;
  passwordParameter?: string;
}

/**
 * The password a source connects with: from the environment variable named by `passwordEnv`, else the SSM
 * SecureString named by `passwordParameter` (decrypted), else undefined, so libpq and node-postgres fall
 * back to `.pgpass` (or `PGPASSFILE`) themselves. The password is never logged or put in an error.
 * @example await resolvePassword({ passwordEnv: 'APP_DB_PASSWORD' }, { env: process.env })
 * @throws PlanError when the named variable is unset; SourceError when the parameter cannot be read.
 */
export async function resolvePassword(
  config: PasswordConfig,
  ctx: SourceContext,
): Promise<string | undefined> {
  if (config.passwordEnv !== undefined) {
    const value = ctx.env[config.passwordEnv];
    if (value === undefined || value === '') {
      throw new PlanError([
        `source.passwordEnv: environment variable ${config.passwordEnv} is not set on this host`,
      ]);
    }
    return value;
  }
  if (config.passwordParameter !== undefined) {
    // Loaded only when a password lives in SSM: most hosts never load the SSM client.
    const { GetParameterCommand, SSMClient } = await import('@aws-sdk/client-ssm');
    const ssm = ctx.ssm ?? new SSMClient(ctx.env.AWS_REGION ? { region: ctx.env.AWS_REGION } : {});
    try {
      const output = await ssm.send(
        new GetParameterCommand({ Name: config.passwordParameter, WithDecryption: true }),
        { abortSignal: ctx.signal },
      );
      const value = output.Parameter?.Value;
      if (value === undefined || value === '') {
        throw new SourceError(`SSM parameter ${config.passwordParameter} has no value`);
      }
      return value;
    } catch (error) {
      if (error instanceof SourceError) throw error;
      if (error instanceof Error && error.name === 'ParameterNotFound') {
        throw new PlanError(
          [`source.passwordParameter: SSM parameter ${config.passwordParameter} does not exist`],
          {
            cause: error,
          },
        );
      }
      const name = error instanceof Error ? error.name : 'error';
      throw new SourceError(
        `cannot read the password from SSM parameter ${config.passwordParameter} (${name})`,
        {
          cause: error,
        },
      );
    }
  }
  return undefined;
}
