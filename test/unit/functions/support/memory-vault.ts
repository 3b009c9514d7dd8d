/**
 * An in-memory Vault for tests and benchmarks that need what s3rver cannot give: storage classes that
 * lifecycle moved (GLACIER, DEEP_ARCHIVE), archive retrievals, and 10,000 manifests without a disk.
 * It follows the Vault port's guarantees (list in key order, get of a missing key throws NotFoundError)
 * and refuses to read archived objects that were not retrieved, as S3 does (InvalidObjectState).
 */
import { Readable } from 'node:stream';
import { NotFoundError, VaultError } from '#core/errors';
import type { PutOptions, StoredObject, Vault } from '#core/ports';
import { needsRetrieval } from '#core/storage-classes';

interface Entry {
  body: Buffer;
  storageClass: string;
  lastModified: Date;
  tags: Record<string, string>;
  restore?: { ongoing: boolean; expiresAt?: Date };
}

/** A retrieval the vault was asked for. */
export interface RetrievalRequest {
  key: string;
  days: number;
  tier: string;
}

/** In-memory vault; `clock` stamps lastModified. */
export class MemoryVault implements Vault {
  readonly url = 'memory://vault';
  readonly objects = new Map<string, Entry>();
  readonly retrievals: RetrievalRequest[] = [];
  /** Counts of calls, for tests that assert what was (not) read. */
  readonly calls = { get: 0, list: 0, head: 0, put: 0, delete: 0 };

  constructor(private readonly clock: () => Date = () => new Date()) {}

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<{ sizeBytes: number }> {
    this.calls.put++;
    const parts: Buffer[] = [];
    for await (const part of body) parts.push(Buffer.isBuffer(part) ? part : Buffer.from(part));
    const buffer = Buffer.concat(parts);
    this.objects.set(key, {
      body: buffer,
      storageClass: options.storageClass ?? 'STANDARD',
      lastModified: this.clock(),
      tags: options.tags ?? {},
    });
    return { sizeBytes: buffer.length };
  }

  /** Stores an object directly, with the class and time a test wants. */
  set(
    key: string,
    body: string | Buffer,
    options: { storageClass?: string; lastModified?: Date } = {},
  ): void {
    this.objects.set(key, {
      body: Buffer.isBuffer(body) ? body : Buffer.from(body),
      storageClass: options.storageClass ?? 'STANDARD',
      lastModified: options.lastModified ?? this.clock(),
      tags: {},
    });
  }

  async get(key: string): Promise<Readable> {
    this.calls.get++;
    const entry = this.objects.get(key);
    if (!entry) throw new NotFoundError(`${this.url}/${key} does not exist`);
    if (needsRetrieval(entry.storageClass) && !(entry.restore && !entry.restore.ongoing)) {
      throw new VaultError(`${this.url}/${key} is in ${entry.storageClass}: retrieve it first`);
    }
    return Readable.from([entry.body]);
  }

  async head(key: string): Promise<StoredObject | undefined> {
    this.calls.head++;
    const entry = this.objects.get(key);
    return entry ? this.describe(key, entry) : undefined;
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    this.calls.list++;
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    for (const key of keys) {
      const entry = this.objects.get(key);
      if (entry) yield this.describe(key, entry);
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    this.calls.delete++;
    for (const key of keys) this.objects.delete(key);
  }

  /** Starts an archive retrieval, as S3 RestoreObject does. */
  async requestRestore(key: string, days: number, tier: string): Promise<void> {
    const entry = this.objects.get(key);
    if (!entry) throw new NotFoundError(`${this.url}/${key} does not exist`);
    this.retrievals.push({ key, days, tier });
    if (!entry.restore) entry.restore = { ongoing: true };
  }

  /** Finishes a retrieval started by `requestRestore` (what S3 does hours later). */
  completeRestore(key: string, expiresAt = new Date(this.clock().getTime() + 7 * 86_400_000)): void {
    const entry = this.objects.get(key);
    if (!entry?.restore) throw new Error(`no retrieval of ${key} was requested`);
    entry.restore = { ongoing: false, expiresAt };
  }

  /** The stored text of an object (tests). */
  text(key: string): string | undefined {
    return this.objects.get(key)?.body.toString('utf8');
  }

  private describe(key: string, entry: Entry): StoredObject {
    const object: StoredObject = {
      key,
      sizeBytes: entry.body.length,
      lastModified: entry.lastModified,
      storageClass: entry.storageClass,
    };
    if (entry.restore) object.restore = { ...entry.restore };
    return object;
  }
}
