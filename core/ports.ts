/**
 * The ports the agent and the functions plug implementations into. Each has few verbs; the TSDoc of
 * each verb states what callers may rely on.
 */
import type { Readable } from 'node:stream';
import type { KeyRef, SourceDetails } from './manifest';

/** One stored object as a listing or a head request reports it. */
export interface StoredObject {
  /** Key relative to the vault root. */
  key: string;
  sizeBytes: number;
  lastModified: Date;
  /** S3 storage class (`STANDARD`, `GLACIER`, …); `STANDARD` for file vaults. */
  storageClass: string;
  /** Archive retrieval state for GLACIER/DEEP_ARCHIVE objects: absent when no retrieval was asked. */
  restore?: { ongoing: boolean; expiresAt?: Date };
}

/** Options of a put. */
export interface PutOptions {
  /** Object tags (at most 10), set atomically with the object where the backend supports it. */
  tags?: Record<string, string>;
  storageClass?: string;
  /** Object Lock retention for this object (S3 vaults with Object Lock). */
  lock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; retainUntil: Date };
  contentType?: string;
  /** Aborts the upload; the vault then leaves no object under the key. */
  signal?: AbortSignal;
}

/**
 * Where backups are stored. Implementations know primitives only; key layout and write ordering live
 * above them (agent/repository). Every implementation passes test/integration/vault-contract.
 */
export interface Vault {
  /** Human-readable location, e.g. `file:///mnt/nas/strongbox` or `s3://bucket/prefix`. */
  readonly url: string;
  /**
   * Stores the stream under `key`. The object becomes visible only when the whole stream was stored:
   * on error or abort nothing is left under the key (partial uploads are aborted, temp files removed).
   * An existing object under the same key is replaced (callers write fresh keys only).
   * Resolves with the bytes stored.
   */
  put(key: string, body: Readable, options?: PutOptions): Promise<{ sizeBytes: number }>;
  /** Reads an object. @throws NotFoundError when it does not exist. */
  get(key: string, options?: { signal?: AbortSignal }): Promise<Readable>;
  /** Head of an object, or undefined when it does not exist. */
  head(key: string): Promise<StoredObject | undefined>;
  /** Lists every object below a prefix once, in key order. */
  list(prefix: string): AsyncIterable<StoredObject>;
  /** Deletes objects; keys that do not exist are ignored. May be refused by Object Lock. */
  delete(keys: readonly string[]): Promise<void>;
}

/** A fresh data key: the plaintext (never stored) and its wrapped form (stored in the manifest). */
export interface DataKey {
  plaintext: Buffer;
  wrapped: string;
  key: KeyRef;
}

/**
 * Makes and unwraps per-backup data keys. The encryption context is authenticated: unwrapping with a
 * different context fails.
 */
export interface KeyProvider {
  /** A fresh 256-bit data key bound to `context`. */
  generateDataKey(context: Record<string, string>): Promise<DataKey>;
  /** The plaintext of a wrapped data key. @throws KeyError for a wrong key or context. */
  decryptDataKey(wrapped: string, key: KeyRef, context: Record<string, string>): Promise<Buffer>;
}

/** A running backup of a source: the data stream and what the source learned while producing it. */
export interface SourceBackup {
  /** The raw data (a pg_dump archive, a tar stream). */
  stream: Readable;
  /**
   * Resolves when the source's tools exited cleanly, with the details the manifest records;
   * rejects with a SourceError when any tool exited non-zero or produced nothing.
   */
  done: Promise<{ details: SourceDetails; tools: Record<string, string> }>;
}

/** The clock, so time-dependent code can be tested. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
