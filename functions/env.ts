/**
 * The one place in functions/ that knows the environment's shape. Handlers call `readFunctionEnv`
 * with `process.env` at their entry (once per cold start) and pass the result down; nothing below the
 * entry reads `process.env`.
 */
import { FUNCTION_ENV } from '#core/deployment';
import { PlanError } from '#core/errors';

/** A name of core/deployment `FUNCTION_ENV`. */
export type EnvName = keyof typeof FUNCTION_ENV;

/** The environment values a handler asked for, all present. */
export type FunctionEnv<K extends EnvName> = { readonly [P in K]: string };

/**
 * Reads the named variables of core/deployment `FUNCTION_ENV`.
 * @example const env = readFunctionEnv(process.env, ['planBucket', 'planKey'])
 * @throws PlanError naming every variable that is missing or empty (the stack sets them all).
 */
export function readFunctionEnv<K extends EnvName>(
  env: Readonly<Record<string, string | undefined>>,
  names: readonly K[],
): FunctionEnv<K> {
  const values: Partial<Record<K, string>> = {};
  const missing: string[] = [];
  for (const name of names) {
    const value = env[FUNCTION_ENV[name]]?.trim();
    if (value) values[name] = value;
    else missing.push(`${FUNCTION_ENV[name]}: not set (the Strongbox stack sets it on this function)`);
  }
  if (missing.length > 0) throw new PlanError(missing);
  return values as FunctionEnv<K>;
}
