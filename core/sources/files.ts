/** The files source: a GNU tar stream (pax, xattrs, ACLs, sparse) of configured paths (driver: agent/sources/files/). */
import { z } from 'zod';
import { defineSource } from './spec';

const plan = z.strictObject({
  kind: z.literal('files'),
  paths: z
    .array(z.string().startsWith('/', 'must be an absolute path'))
    .min(1)
    .meta({
      description:
        'Absolute paths to archive; globs expand per path segment, and one that matches nothing fails the backup.',
      examples: [['/etc/nginx', '/srv/media']],
    }),
  exclude: z
    .array(z.string())
    .default([])
    .meta({ description: 'GNU tar --exclude patterns.', examples: [['*.tmp', '/srv/media/cache']] }),
  unreadable: z
    .enum(['error', 'warning'])
    .default('error')
    .describe(
      "A file the agent may not read (permission denied): error fails the backup, warning leaves the file out and names it in the backup's warnings (exit 1).",
    ),
});

const details = z.object({
  kind: z.literal('files'),
  paths: z.array(z.string()),
  excluded: z.array(z.string()),
  fileCount: z.number().int().nonnegative(),
  /** Bytes of regular file content in the archive. */
  fileBytes: z.number().int().nonnegative(),
});

export const filesSource = defineSource({
  kind: 'files',
  title: 'file trees (configs, media, models, volumes) as a tar stream',
  targetNoun: 'directory',
  plan,
  details,
  capabilities: {
    tables: false,
    replace: false,
    sqlChecks: false,
    pointInTime: false,
    paths: true,
    inPlace: true,
  },
});

export type FilesSourceConfig = z.output<typeof plan>;
export type FilesDetails = z.output<typeof details>;
