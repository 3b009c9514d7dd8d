/**
 * The manifest: the record of one backup, written last. A backup whose manifest is absent does not
 * exist. docs/format.md specifies versions 1 and 2; writers write version 2, readers read both (a
 * version 1 manifest holds exactly one data object) and reject versions they do not know.
 */
import { z } from 'zod';
import { isBackupId } from './backup-id';
import { IntegrityError } from './errors';
import { MANIFEST_NAME, OBJECT_NAME } from './layout';
import { SOURCE_KINDS, type SourceDetails, sourceDetailsSchema } from './sources/index';
import { TIERS } from './tiers';

export const MANIFEST_FORMAT = 'strongbox.manifest';
/** The version writers write. */
export const MANIFEST_VERSION = 2;
/** Versions readers accept. */
export const MANIFEST_VERSIONS = [1, 2] as const;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

export const COMPRESSIONS = ['zstd', 'gzip', 'none'] as const;
/** A compression algorithm of the plan and the manifest. */
export type CompressionAlgorithm = (typeof COMPRESSIONS)[number];

const objectSchema = z.object({
  /**
   * File name below the backup's prefix: the object's name as its source gave it, then the compression
   * and encryption suffixes (`data.zst.sbx`, `base.tar.zst.sbx`; see `storedObjectName`).
   */
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

export const keyRefSchema = z.discriminatedUnion('type', [
  /** A local master key, named by the first 16 hex digits of SHA-256 of the key. */
  z.object({ type: z.literal('local'), fingerprint: z.string().regex(/^[0-9a-f]{16}$/) }),
  /** An AWS KMS key (the ARN of the key that wrapped the data key). */
  z.object({ type: z.literal('kms'), keyId: z.string() }),
]);

/**
 * The fields of a manifest, in the order they are stored; versions differ only in `version` and in how
 * many data objects a backup may hold.
 */
function manifestFields<V extends number, O extends z.ZodType<z.output<typeof objectSchema>[]>>(
  version: V,
  objects: O,
) {
  return z.object({
    format: z.literal(MANIFEST_FORMAT),
    version: z.literal(version),
    job: z.string(),
    backupId: z.string().refine(isBackupId, 'is not a backup id'),
    host: z.string(),
    kind: z.enum(SOURCE_KINDS),
    tier: z.enum(TIERS),
    /**
     * Why the backup was taken, when not on schedule or on request: `safety` = taken by `restore
     * --replace` before it replaced the live data. Never what "latest" picks. Optional (v2).
     */
    purpose: z.enum(['safety']).optional(),
    startedAt: z.iso.datetime(),
    finishedAt: z.iso.datetime(),
    compression: z.object({ algorithm: z.enum(COMPRESSIONS), level: z.number().int().optional() }),
    encryption: z.object({
      scheme: z.literal('strongbox-stream-v1'),
      chunkBytes: z.number().int().positive(),
      key: keyRefSchema,
      /** The per-backup data key, wrapped by the master key (base64). */
      wrappedKey: z.string(),
      /** Authenticated context the data key is bound to: ids only, never secrets. */
      context: z.record(z.string(), z.string()),
    }),
    objects,
    /** Versions of the tools that made the backup: strongbox, pg_dump, tar, … */
    tools: z.record(z.string(), z.string()),
    source: sourceDetailsSchema,
    /**
     * Version 2, optional: what the backup holds but not exactly as asked (files that changed or vanished
     * while read), one line each. A backup with warnings is complete and restores.
     */
    warnings: z.array(z.string()).optional(),
  });
}

const v1Schema = manifestFields(
  1,
  z.array(objectSchema).length(1, 'a version 1 manifest has exactly one data object'),
);

/** Version 2: every data object of the backup, in the order the source produced them; names unique. */
const v2Schema = manifestFields(
  2,
  z
    .array(objectSchema)
    .min(1)
    .refine((objects) => new Set(objects.map((o) => o.name)).size === objects.length, 'object names repeat'),
);

/** A stored manifest of any version readers accept. */
export const manifestSchema = z
  .discriminatedUnion('version', [v1Schema, v2Schema])
  .refine((m) => m.kind === m.source.kind, {
    path: ['source', 'kind'],
    message: 'differs from the manifest kind',
  });

export type Manifest = z.output<typeof manifestSchema>;
export type ManifestObject = Manifest['objects'][number];
export type KeyRef = Manifest['encryption']['key'];
export type { SourceDetails };

/** Serialises a manifest as stored: stable, indented JSON. @throws when it is not a valid manifest. */
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
  const version = (data as { version?: unknown } | null)?.version;
  if (typeof version === 'number' && version > MANIFEST_VERSION) {
    throw new IntegrityError(
      `${where}: manifest version ${version} is newer than this agent reads (${MANIFEST_VERSIONS.join(', ')}): upgrade strongbox`,
    );
  }
  const result = manifestSchema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new IntegrityError(
      `${where}: not a strongbox manifest (${issue?.path.join('.') || 'top level'}: ${issue?.message})`,
    );
  }
  return result.data;
}

/** The encryption context a backup's data key is bound to. */
export function encryptionContext(job: string, backupId: string): Record<string, string> {
  return { 'strongbox:job': job, 'strongbox:backup': backupId };
}

/**
 * The encryption context of `strongbox doctor`'s key probe (a data key made and unwrapped, never
 * used). No backup has it: a backup id is never `doctor`. Host policies allow exactly this context.
 */
export const DOCTOR_KEY_CONTEXT: Readonly<Record<string, string>> = encryptionContext('doctor', 'doctor');

/** Suffix a stored object gets after its source name, by compression (`.sbx`: strongbox-stream-v1). */
export function storedObjectSuffix(algorithm: CompressionAlgorithm): string {
  return algorithm === 'none' ? '.sbx' : `.${algorithm === 'zstd' ? 'zst' : 'gz'}.sbx`;
}

/**
 * The stored name of an object a source calls `name`.
 * @example storedObjectName('base.tar', 'zstd') // 'base.tar.zst.sbx'
 */
export function storedObjectName(name: string, algorithm: CompressionAlgorithm): string {
  return `${name}${storedObjectSuffix(algorithm)}`;
}

/**
 * The name the source gave a stored object: its stored name without the compression and encryption
 * suffixes (version 1 backups hold one object, `data.zst.sbx`, whose source name is `data`).
 * @example sourceObjectName('base.tar.zst.sbx', 'zstd') // 'base.tar'
 */
export function sourceObjectName(storedName: string, algorithm: CompressionAlgorithm): string {
  const suffix = storedObjectSuffix(algorithm);
  return storedName.endsWith(suffix) ? storedName.slice(0, -suffix.length) : storedName;
}
