/**
 * The S3 storage classes Strongbox knows, and what each means for a backup: how cold it is, how long S3
 * charges for an object once it is there, whether it must be retrieved before it can be read and how
 * long that takes. The one place these facts are spelled: retention (the lifecycle ladder), the
 * storage-class check, the restore function and the plan schema read them from here.
 * Figures from the Amazon S3 user guide (storage classes, minimum storage duration, archive retrieval).
 */

/** Glacier retrieval tiers, fastest first. */
export const RETRIEVAL_TIERS = ['Expedited', 'Standard', 'Bulk'] as const;
export type RetrievalTier = (typeof RETRIEVAL_TIERS)[number];

/** What Strongbox knows of one storage class. */
export interface StorageClassFacts {
  /** Coldness: a restore from a colder class takes longer; classes read at once share 0 and 1. */
  readonly rank: number;
  /** Minimum storage duration S3 charges for (an object deleted or moved earlier still pays it). */
  readonly minimumDays: number;
  /** Whether an object must be retrieved (RestoreObject) before it can be read. */
  readonly needsRetrieval: boolean;
  /** Upper bounds of a retrieval, in hours, by tier (the tiers the class offers). */
  readonly retrievalHours?: Readonly<Partial<Record<RetrievalTier, number>>>;
}

/** Every storage class Strongbox knows, warmest first. */
export const STORAGE_CLASSES = {
  STANDARD: { rank: 0, minimumDays: 0, needsRetrieval: false },
  /** No minimum duration; objects under 128 KiB stay in the frequent tier. */
  INTELLIGENT_TIERING: { rank: 0, minimumDays: 0, needsRetrieval: false },
  STANDARD_IA: { rank: 1, minimumDays: 30, needsRetrieval: false },
  ONEZONE_IA: { rank: 1, minimumDays: 30, needsRetrieval: false },
  /** Glacier Instant Retrieval: read at once, like Standard-IA, with a 90-day minimum. */
  GLACIER_IR: { rank: 1, minimumDays: 90, needsRetrieval: false },
  /** Glacier Flexible Retrieval. */
  GLACIER: {
    rank: 2,
    minimumDays: 90,
    needsRetrieval: true,
    retrievalHours: { Expedited: 5 / 60, Standard: 5, Bulk: 12 },
  },
  DEEP_ARCHIVE: {
    rank: 3,
    minimumDays: 180,
    needsRetrieval: true,
    retrievalHours: { Standard: 12, Bulk: 48 },
  },
} as const satisfies Record<string, StorageClassFacts>;

/** A storage class Strongbox knows. */
export type StorageClass = keyof typeof STORAGE_CLASSES;

/** A class whose objects must be retrieved before they can be read. */
export type ArchiveClass = {
  [C in StorageClass]: (typeof STORAGE_CLASSES)[C]['needsRetrieval'] extends true ? C : never;
}[StorageClass];

/** The classes data objects may be uploaded in (the plan's `vault.storageClass`); lifecycle moves them later. */
export const UPLOAD_CLASSES = [
  'STANDARD',
  'STANDARD_IA',
  'INTELLIGENT_TIERING',
] as const satisfies readonly StorageClass[];

/** Objects smaller than this are never moved by lifecycle rules (the vault's minimum transition size). */
export const LIFECYCLE_MIN_OBJECT_BYTES = 128 * 1024;

const entries = Object.entries(STORAGE_CLASSES) as [StorageClass, StorageClassFacts][];

/** Storage classes whose objects must be retrieved before they can be read: GLACIER, DEEP_ARCHIVE. */
export const ARCHIVE_CLASSES: readonly ArchiveClass[] = entries
  .filter(([, facts]) => facts.needsRetrieval)
  .map(([name]) => name as ArchiveClass);

/**
 * Upper bounds of retrieval times (hours) by archive class and tier; a tier a class does not offer is
 * absent (Deep Archive has no Expedited).
 * @example RETRIEVAL_HOURS.DEEP_ARCHIVE?.Bulk // 48
 */
export const RETRIEVAL_HOURS: Readonly<Record<string, Partial<Record<RetrievalTier, number>>>> =
  Object.fromEntries(
    entries.flatMap(([name, facts]) => (facts.retrievalHours ? [[name, { ...facts.retrievalHours }]] : [])),
  );

/**
 * The facts of a storage class by its S3 name, or undefined for one Strongbox does not know.
 * @example storageClassFacts('GLACIER')?.needsRetrieval // true
 */
export function storageClassFacts(name: string): StorageClassFacts | undefined {
  return Object.hasOwn(STORAGE_CLASSES, name) ? STORAGE_CLASSES[name as StorageClass] : undefined;
}

/**
 * Coldness of a storage class (0 for Standard, 3 for Deep Archive); unknown classes count as warm.
 * @example coldnessOf('DEEP_ARCHIVE') > coldnessOf('STANDARD_IA') // true
 */
export function coldnessOf(name: string): number {
  return storageClassFacts(name)?.rank ?? 0;
}

/**
 * Whether an object in this class must be retrieved before it can be read.
 * @example needsRetrieval('GLACIER_IR') // false
 */
export function needsRetrieval(name: string): boolean {
  return storageClassFacts(name)?.needsRetrieval ?? false;
}
