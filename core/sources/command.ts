/**
 * The command source: any command's stdout is the backup stream (`docker save`, `kubectl get … -o yaml`,
 * `etcdctl snapshot save /dev/stdout`), a restore command reads it back on stdin, an optional check
 * command tests a restored target (driver: agent/sources/command/).
 */
import { z } from 'zod';
import { commandSchema } from '../command';
import { defineSource } from './spec';

const plan = z.strictObject({
  kind: z.literal('command'),
  backup: commandSchema.describe(
    'Writes the backup to stdout; must exit 0 having written at least one byte.',
  ),
  restore: commandSchema.describe(
    'Reads a backup on stdin and must exit 0. It runs in the restore target, a new directory the agent creates (also in STRONGBOX_TARGET), so file-producing restores (tar -x) land there.',
  ),
  check: commandSchema
    .optional()
    .describe("Checks a restored target (run in it, 'STRONGBOX_TARGET' set); exit 0 passes. Drills run it."),
});

const details = z.object({
  kind: z.literal('command'),
  /** The backup command in words (argv joined or the shell line; plans hold no secrets). */
  command: z.string(),
  /** Bytes the command wrote to stdout. */
  streamBytes: z.number().int().nonnegative(),
  /** SHA-256 of those bytes, hex. */
  streamSha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const commandSource = defineSource({
  kind: 'command',
  title: "any command's stdout (docker save, kubectl get -o yaml, etcdctl snapshot), restored through stdin",
  targetNoun: 'directory',
  plan,
  details,
  capabilities: { tables: false, replace: false, sqlChecks: false, pointInTime: false },
});

export type CommandSourceConfig = z.output<typeof plan>;
export type CommandDetails = z.output<typeof details>;
