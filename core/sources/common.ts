/** Plan fields several source kinds share. */
import { z } from 'zod';

/**
 * Where a source's password comes from: an environment variable (`passwordEnv`) or an SSM SecureString
 * (`passwordParameter`); neither means the tool's own files (`.pgpass`). Never argv, logs or manifests.
 */
export const passwordFields = {
  passwordEnv: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
    .optional()
    .meta({
      description: 'Name of an environment variable that holds the password.',
      examples: ['PGPASSWORD'],
    }),
  passwordParameter: z
    .string()
    .regex(/^\/?[A-Za-z0-9_.\-/]+$/)
    .optional()
    .meta({
      description:
        'Name of an SSM SecureString parameter that holds the password (neither field: the tool’s own files, such as .pgpass).',
      examples: ['/strongbox/app-db/password'],
    }),
};
