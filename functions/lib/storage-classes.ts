/**
 * What the restore functions need to know of S3's archive storage classes: which ones must be retrieved
 * before their objects can be read, and how long a retrieval takes at most (the S3 documentation's
 * upper bounds, used as the `eta` of a restore request).
 *
 * Kept here, in one place, until core has its storage-class module: at that merge these two constants
 * are replaced by its ARCHIVE_CLASSES and RETRIEVAL_HOURS, and this file goes.
 */
import type { RetrievalTier } from '#adapters/vaults/s3';

/** Storage classes whose objects must be retrieved (RestoreObject) before they can be read. */
export const ARCHIVE_CLASSES = ['GLACIER', 'DEEP_ARCHIVE'] as const;

/**
 * Upper bounds of retrieval times in hours, by class and retrieval tier. A tier a class does not offer
 * (Expedited for Deep Archive) is absent.
 */
export const RETRIEVAL_HOURS: Readonly<Record<string, Partial<Record<RetrievalTier, number>>>> = {
  GLACIER: { Expedited: 5 / 60, Standard: 5, Bulk: 12 },
  DEEP_ARCHIVE: { Standard: 12, Bulk: 48 },
};
