/**
 * The manifest: the record of one backup, written last. A backup whose manifest is absent does not
 * exist. Version 1 of the format is specified in docs/format.md; readers reject versions they do not know.
 */
import { z } from 'zod';
import { isBackupId } from './backup-id';
import { IntegrityError } from './errors';
import { MANIFEST_NAME, OBJECT_NAME } from './layout';
import { TIERS } from './tiers';

export const MANIFEST_FORMAT = 'strongbox.manifest';
export const MANIFEST_VERSION = 1;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

const objectSchema = z.object({
  /** File name below the backup's prefix, e.g. `data.sbx`. */
  name: z
    .string()
    .refine((name) => OBJECT_NAME.test(name) && name !== MANIFEST_NAME, 'is not an object name'),
  /** Bytes as stored (compressed and encrypted). */
  storedBytes: z.number().int().nonnegative(),
  /** SHA-256 of the stored bytes. */
  sha256: sha256Hex,
  /** Bytes the source produced, before compression and encryption. */
  sourceBytes: z.number().int().nonnegative(),
  /** Storage class the object was uploaded with (S3); lifecycle may have moved it since. */
  storageClass: z.string().optional(),
});

const keyRefSchema = z.discriminatedUnion('type', [
  /** A local master key, named by the first 16 hex digits of SHA-256 of the key. */
  z.object({ type: z.literal('local'), fingerprint: z.string().regex(/^[0-9a-f]{16}$/) }),
  /** An AWS KMS key (the ARN of the key that wrapped the data key). */
  z.object({ type: z.literal('kms'), keyId: z.string() }),
]);

const tableSchema = z.object({ schema: z.string(), name: z.string(), rows: z.number().int().nonnegative() });

const postgresDetails = z.object({
  kind: z.literal('postgres'),
  database: z.string(),
  serverVersion: z.string(),
  /** pg_database_size at backup time. */
  databaseBytes: z.number().int().nonnegative(),
  /** Exact row counts in the dump's snapshot (empty when rowCounts is off). */
  tables: z.array(tableSchema),
  /** pg_dump --exclude-table patterns that applied. */
  excludedTables: z.array(z.string()),
});

const filesDetails = z.object({
  kind: z.literal('files'),
  paths: z.array(z.string()),
  excluded: z.array(z.string()),
  fileCount: z.number().int().nonnegative(),
  /** Bytes of regular file content in the archive. */
  fileBytes: z.number().int().nonnegative(),
});

export const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.literal(MANIFEST_VERSION),
  job: z.string(),
  backupId: z.string().refine(isBackupId, 'is not a backup id'),
  host: z.string(),
  kind: z.enum(['postgres', 'files']),
  tier: z.enum(TIERS),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  compression: z.object({ algorithm: z.enum(['zstd', 'gzip', 'none']), level: z.number().int().optional() }),
  encryption: z.object({
    scheme: z.literal('strongbox-stream-v1'),
    chunkBytes: z.number().int().positive(),
    key: keyRefSchema,
    /** The per-backup data key, wrapped by the master key (base64). */
    wrappedKey: z.string(),
    /** Authenticated context the data key is bound to: ids only, never secrets. */
    context: z.record(z.string(), z.string()),
  }),
  objects: z.array(objectSchema).min(1),
  /** Versions of the tools that made the backup: strongbox, pg_dump, tar, … */
  tools: z.record(z.string(), z.string()),
  source: z.discriminatedUnion('kind', [postgresDetails, filesDetails]),
});

export type Manifest = z.output<typeof manifestSchema>;
export type ManifestObject = Manifest['objects'][number];
export type KeyRef = Manifest['encryption']['key'];
export type SourceDetails = Manifest['source'];
export type TableCount = z.output<typeof tableSchema>;

/** Serialises a manifest as stored: stable, indented JSON. */
export function serializeManifest(manifest: Manifest): string {
  return `${JSON.stringify(manifestSchema.parse(manifest), null, 2)}\n`;
}

/**
 * Parses a stored manifest. `where` names it in errors (its key).
 * @throws IntegrityError when it is not JSON, of another format or version, or misses fields.
 */
export function parseManifest(text: string, where: string): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new IntegrityError(`${where}: manifest is not valid JSON`, { cause: error });
  }
  const result = manifestSchema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new IntegrityError(
      `${where}: not a strongbox manifest v${MANIFEST_VERSION} (${issue?.path.join('.')}: ${issue?.message})`,
    );
  }
  return result.data;
}

/** The encryption context a backup's data key is bound to. */
export function encryptionContext(job: string, backupId: string): Record<string, string> {
  return { 'strongbox:job': job, 'strongbox:backup': backupId };
}
