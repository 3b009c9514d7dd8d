/**
 * What every source driver is handed (core/ports `SourceContext`), and how a source's password is found.
 */
import { SsmSecretStore } from '#adapters/aws/secrets';
import { PlanError } from '#core/errors';
import type { SourceContext } from '#core/ports';

export type { SourceContext };

/** The password fields a source config may carry (core/sources/common `passwordFields`). */
export interface PasswordConfig {
  passwordEnv?: string;
  passwordParameter?: string;
}

/**
 * The password a source connects with: from the environment variable named by `passwordEnv`, else the
 * secret named by `passwordParameter` (an SSM SecureString, through `ctx.secrets`), else undefined, so
 * libpq and node-postgres fall back to `.pgpass` (or `PGPASSFILE`) themselves. The password is never
 * logged or put in an error.
 * @example await resolvePassword({ passwordEnv: 'APP_DB_PASSWORD' }, { env: process.env })
 * @throws PlanError when the named variable is unset or the parameter does not exist; SourceError when
 *   the parameter cannot be read.
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
    const secrets = ctx.secrets ?? new SsmSecretStore({ env: ctx.env });
    try {
      return await secrets.read(config.passwordParameter, { signal: ctx.signal });
    } catch (error) {
      if (error instanceof PlanError) {
        throw new PlanError([`source.passwordParameter: ${error.issues.join('; ')}`], { cause: error });
      }
      throw error;
    }
  }
  return undefined;
}
