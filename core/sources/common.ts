/** Plan fields several source kinds share. */
import { z } from 'zod';

/**
 * Where a source's password comes from: an environment variable (`passwordEnv`) or an SSM SecureString
 * (`passwordParameter`); neither means the tool's own files (`.pgpass`). Never argv, logs or manifests.
 */
export const passwordFields = {
  /** Name of an environment variable that holds the password. */
  passwordEnv: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
    .optional(),
  /** Name of an SSM SecureString parameter that holds the password. */
  passwordParameter: z
    .string()
    .regex(/^\/?[A-Za-z0-9_.\-/]+$/)
    .optional(),
};
