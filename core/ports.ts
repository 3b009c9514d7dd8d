/**
 * The ports the agent and the functions plug implementations into. Each has few verbs; the TSDoc of
 * each verb states what callers may rely on.
 */
import type { Readable, Writable } from 'node:stream';
import type { TargetCheck } from './agent-output';
import type { CompressionAlgorithm, KeyRef } from './manifest';
import type { SqlCheck } from './plan';
import type { RecoveryTarget } from './recovery';
import type { SourceConfigOf, SourceDetailsOf, SourceKind, SourceSpec } from './sources/index';

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
  /**
   * About how many bytes the stream will hold (the same object's size in the job's previous backup), so
   * a vault that writes in parts can choose parts big enough; a hint, never a limit.
   */
  expectedBytes?: number;
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
   * Every vault is create-only: a put to a key that exists is rejected with a VaultError and the object
   * stays as it was (S3: `If-None-Match: *` on PutObject and CompleteMultipartUpload; the file vault:
   * a hard link of its finished temp file, which fails when the key exists). Callers write fresh keys.
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
  /**
   * Removes writes below `prefix` that began (file vault: were last written) before `olderThan` and
   * never completed — a file vault's partial files, S3 incomplete multipart uploads — and resolves with
   * the keys they were for; with `dryRun` only lists them. Complete objects are never touched. Absent on
   * vaults that keep no state for unfinished writes.
   */
  removeAbandoned?(prefix: string, olderThan: Date, options?: { dryRun?: boolean }): Promise<string[]>;
  /**
   * The Object Lock configuration of the storage (S3: GetObjectLockConfiguration of the bucket), read
   * only. Absent on vaults that cannot lock objects (a file vault).
   * @throws VaultError when the server does not answer, or answers that it does not know Object Lock.
   */
  objectLock?(): Promise<ObjectLockState>;
}

/** What a vault says of its Object Lock (core/ports `Vault.objectLock`). */
export interface ObjectLockState {
  /** Whether Object Lock is enabled on the bucket. */
  enabled: boolean;
  /** The default retention's mode, when the bucket has one. */
  mode?: 'governance' | 'compliance';
  /** The default retention in days (years counted as 365 days), when the bucket has one. */
  days?: number;
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
  /**
   * Wraps an existing data key (the plaintext of one this or another provider made) under this
   * provider's master key, bound to `context`: how a copy in another vault gets its own wrapped key
   * without the data being decrypted. Never stores or logs the plaintext.
   * @throws KeyError when the master key cannot be used.
   */
  wrapDataKey(plaintext: Buffer, context: Record<string, string>): Promise<Omit<DataKey, 'plaintext'>>;
}

/**
 * Reads secrets a plan names by reference (SSM SecureString parameters). Values are never logged, put in
 * argv, errors or manifests.
 */
export interface SecretStore {
  /**
   * The value of the named secret.
   * @throws PlanError when it does not exist; SourceError when it cannot be read (access, network).
   */
  read(name: string, options?: { signal?: AbortSignal }): Promise<string>;
}

/** What a source driver is handed by its caller for one operation. */
export interface SourceContext {
  /** Environment variables, read once at the entry point (never from `process.env` below it). */
  env: Readonly<Record<string, string | undefined>>;
  /** Aborts the operation: tools are killed and partial targets removed. */
  signal?: AbortSignal;
  /** Where `passwordParameter`-style references are read. @default SSM Parameter Store of the region */
  secrets?: SecretStore;
  /** Writes one progress line; never data, never secrets. */
  log?: (line: string) => void;
}

/** One data object a source produces: a name of its own (`data`, `base.tar`) and the raw bytes. */
export interface SourceObject {
  /** Letters, digits, `.`, `_`, `-`; unique within the backup. The vault adds compression suffixes. */
  name: string;
  stream: Readable;
  /**
   * Set when `stream` is already compressed exactly as {@link BackupScope.compression} asked (the server
   * compressed it): the pipeline stores it without compressing again. `sourceBytes` gives the bytes
   * before compression, for the manifest; it is read once the stream has ended.
   */
  compressed?: { algorithm: CompressionAlgorithm; level: number; sourceBytes(): number };
}

/** What a source learned while producing a backup, for the manifest. */
export interface SourceResult<D> {
  details: D;
  /** Versions of the tools that produced the data: `{ pg_dump: '15.18' }`. */
  tools: Record<string, string>;
  /**
   * What the backup holds but not exactly as asked, one line each (`/var/log/app.log: file changed as
   * we read it`): the backup is complete and usable, and the run ends with a warning (exit 1).
   */
  warnings?: string[];
}

/** A running backup of a source: its data objects and what the source learned while producing them. */
export interface SourceBackup<D = SourceDetailsOf<SourceKind>> {
  /**
   * The data objects, in the order the source produces them. The consumer stores each object's stream
   * while it asks for the next, so a source may produce objects one after another (the next is yielded
   * once the previous ended) or several at once. Most sources yield one object, `data`.
   */
  objects: AsyncIterable<SourceObject>;
  /**
   * Resolves when the source's tools exited cleanly, with the details the manifest records; rejects with
   * a SourceError when any tool exited non-zero or produced nothing. The object streams then error too.
   */
  done: Promise<SourceResult<D>>;
}

/**
 * The data of a backup as a restore reads it: each object's original bytes, every chunk authenticated
 * before it is passed on. A stream ends only when the object was read whole and its stored bytes match
 * the manifest (SHA-256 and size); otherwise it errors with an IntegrityError.
 */
export interface RestoreInput {
  /** The backup's objects by source name, in manifest order, with the bytes each holds. */
  readonly objects: readonly { name: string; sourceBytes: number }[];
  /** Opens one object by its source name. @throws NotFoundError when the backup has no such object. */
  open(name: string): Promise<Readable>;
  /** Opens the backup's only object (single-stream sources; version 1 backups). @throws IntegrityError when there are several. */
  only(): Promise<Readable>;
  /**
   * Reads one object into a tool's stdin (the pipe of a child the driver started, e.g. tar's) and
   * resolves once the object was read whole and passed the same checks as by `open`. The stored bytes
   * are authenticated and checksummed in the agent; a zstd object's decompressor then writes into that
   * pipe itself, so the plaintext does not pass through the agent. The caller must not write to `stdin`.
   * @throws NotFoundError when the backup has no such object; IntegrityError when it fails its checks.
   */
  openInto(name: string, stdin: Writable): Promise<void>;
}

/** What a driver's restore reports beyond success (in-place restores). */
export interface RestoreOutcome {
  /** Where what the restore overwrote or moved away was kept. */
  keptAs?: string;
  /** Lines for the operator (what was restored, what was kept). */
  notes?: string[];
}

/** Where and what a driver restores, and the context it runs in. */
export interface RestoreTarget<D = unknown> {
  /** A database name, a directory: created by the restore (or an empty directory), never overwritten. */
  target: string;
  /** Tables to restore (drivers with the `tables` capability), `schema.table` or `table`. */
  tables?: readonly string[];
  /** Absolute paths (globs allowed) to restore (drivers with the `paths` capability); all by default. */
  paths?: readonly string[];
  /**
   * Restore over the original locations instead of into `target` (drivers with the `inPlace`
   * capability): what is overwritten is kept beside, named by `stamp`; `delete` also moves away what
   * exists below the restored paths but is not in the backup.
   */
  inPlace?: { delete: boolean; stamp: string };
  /** The manifest's details of the backup being restored (what the source recorded beside the data). */
  details?: D;
  /**
   * Point-in-time recovery (drivers with the `pointInTime` capability): replay the job's WAL archive up
   * to `target`, fetching each file with `restoreCommand` (PostgreSQL's `%f %p` placeholders in it).
   */
  recovery?: {
    target: RecoveryTarget;
    restoreCommand: string;
    /**
     * The copy becomes the primary: from promotion on it archives its new timeline (its history file
     * first) with this command (`%p` in it). Absent: the copy does not archive at all.
     */
    archiveCommand?: string;
  };
  /** Start the restored copy and wait until it serves (drivers with the `pointInTime` capability). */
  start?: boolean;
  /**
   * New locations of a physical backup's tablespaces by their original location (`--tablespace-map
   * OLD=NEW`); the others go beside the target (drivers with the `pointInTime` capability).
   */
  tablespaceMap?: Readonly<Record<string, string>>;
  ctx: SourceContext;
}

export type { TargetCheck };

/** Where a whole-host recovery puts a job's data (SourceDriver `originalTarget`). */
export interface OriginalTarget {
  /** What it is, for the report: a database name, the paths, a server, a command. */
  target: string;
  /**
   * How it is restored: `target` into `target` as a new target (it must not exist); `replace` over the
   * live data (the `replace` capability: safety backup, restore beside, swap); `in-place` over the
   * original paths (the `inPlace` capability); `scratch` into a fresh scratch target, as any restore
   * (the restore command itself decides where the data goes).
   */
  via: 'target' | 'replace' | 'in-place' | 'scratch';
  /** What is there already, each named (`database 'app' exists on …`): empty on a fresh host. */
  occupied: string[];
}

/** One line of `strongbox doctor`. */
export interface DoctorCheck {
  ok: boolean;
  /** A failed check that does not fail the run (exit 1). */
  warning?: boolean;
  subject: string;
  detail: string;
}

/** Replacing the live data in place (drivers with the `replace` capability). */
export interface ReplaceSupport<C, D = unknown> {
  /** The live target a replace restores over: the database a job backs up. */
  liveTarget(config: C): string;
  /**
   * Checks every precondition of the replace (the live target exists, the rights to restore beside it,
   * to swap and to end its sessions) before anything changes: the caller runs it before the safety
   * backup, so a refused replace leaves nothing to clean up and can be retried as it is.
   * @throws RestoreError naming each missing right.
   */
  preflight(config: C, options: { live: string; details?: D; ctx: SourceContext }): Promise<void>;
  /**
   * Swaps a restored copy in: `live` is kept under a new name, `beside` takes its name, in one step so
   * either both happen or neither. Nothing is dropped.
   * @throws RestoreError when either is missing or the swap fails; the live target then keeps its name
   *   and its data. A restored copy that is a database is left beside it under its name (it can be
   *   inspected or dropped); one that is a scratch file under the temp dir is removed.
   */
  swap(
    config: C,
    options: { live: string; beside: string; ctx: SourceContext; now?: Date },
  ): Promise<{ keptAs: string }>;
}

/** What a backup covers when not the whole source (SourceDriver `backup`). */
export interface BackupScope {
  /** Only these tables, exact `schema.table` names (drivers with the `liveTables` capability). */
  tables?: readonly string[];
  /**
   * How the job stores its objects. A driver whose server can compress the data as it sends it may yield
   * objects compressed exactly so ({@link SourceObject.compressed}); others ignore it.
   */
  compression?: { algorithm: CompressionAlgorithm; level?: number };
}

/**
 * Restoring chosen tables into the live data (drivers with the `liveTables` capability): the caller runs
 * `preflight`, takes a safety backup of the tables it returns, then `restore`.
 */
export interface LiveTablesSupport<C, D = unknown> {
  /** The live target the tables are restored into: the database a job backs up. */
  liveTarget(config: C): string;
  /**
   * Checks every precondition before anything changes (the tables are in the backup, the rights to drop,
   * create and own them, nothing outside them depends on them, free space).
   * @returns the exact tables the restore replaces (partitions included): what the safety backup holds.
   * @throws RestoreError naming each problem; PlanError for a malformed table name.
   */
  preflight(
    config: C,
    options: { tables: readonly string[]; details?: D; ctx: SourceContext },
  ): Promise<{ tables: string[] }>;
  /**
   * Replaces the tables in the live data with the backup's, in one transaction that also checks their
   * row counts: on any failure (a tool killed, a constraint, a count) the live tables are as they were.
   */
  restore(
    config: C,
    input: RestoreInput,
    options: { tables: readonly string[]; details?: D; ctx: SourceContext },
  ): Promise<void>;
}

/**
 * How one kind of source is backed up, restored, checked and diagnosed (agent/sources/<kind>/). What it
 * can do beyond that is declared in `spec.capabilities`; the optional members exist exactly when their
 * capability is declared. Every driver passes test/integration/source-contract.test.ts. Every method
 * rejects with the typed errors of core/errors.
 */
export interface SourceDriver<K extends SourceKind = SourceKind> {
  readonly spec: SourceSpec & { readonly kind: K };
  /**
   * Starts a backup: the data objects and a promise of the manifest's details (see SourceBackup). With
   * `scope.tables` (drivers with the `liveTables` capability) only those tables, exact `schema.table`
   * names: the safety backup taken before restoring them into the live data.
   */
  backup(
    config: SourceConfigOf<K>,
    ctx: SourceContext,
    scope?: BackupScope,
  ): Promise<SourceBackup<SourceDetailsOf<K>>>;
  /**
   * Restores a backup into a new target. On any failure the target it created is removed again (a target
   * that existed before is never touched) and the original error — the input's own, e.g. an
   * IntegrityError — is rethrown. Resolves once all is written.
   */
  restore(
    config: SourceConfigOf<K>,
    input: RestoreInput,
    options: RestoreTarget<SourceDetailsOf<K>>,
    // biome-ignore lint/suspicious/noConfusingVoidType: drivers without an outcome are `async () => {}`
  ): Promise<RestoreOutcome | void>;
  /** The checks of a restored target against the manifest's details (drills run them too). */
  check(
    config: SourceConfigOf<K>,
    details: SourceDetailsOf<K>,
    options: RestoreTarget,
  ): Promise<TargetCheck[]>;
  /**
   * `verify --deep`: reads every object of a backup to its end (so each is authenticated whole) and
   * checks its content against the manifest's details (postgres: the archive's table of contents lists
   * the manifest's tables). Optional: without it, `verify --deep` reads the objects through only.
   */
  inspect?(
    config: SourceConfigOf<K>,
    details: SourceDetailsOf<K>,
    input: RestoreInput,
    ctx: SourceContext,
  ): Promise<TargetCheck[]>;
  /**
   * Finds the targets killed restores of this source left (marked while being restored into, their
   * process gone) and, unless `dryRun`, removes them; one line per target found, saying what was done.
   * Never touches a target without the mark. Optional: sources whose restores leave nothing to find.
   */
  leftovers?(config: SourceConfigOf<K>, ctx: SourceContext, options: { dryRun?: boolean }): Promise<string[]>;
  /** What a backup, restore and drill of this source need on this host, checked one line at a time. */
  doctor(config: SourceConfigOf<K>, ctx: SourceContext): Promise<DoctorCheck[]>;
  /** Whether a target exists (a directory that exists counts, even when empty). */
  targetExists(config: SourceConfigOf<K>, target: string, ctx: SourceContext): Promise<boolean>;
  /** Removes a scratch target the caller created (drop the database, delete the directory). */
  discard(config: SourceConfigOf<K>, target: string, ctx: SourceContext): Promise<void>;
  /** A fresh target name: `<database>_<label>_<stamp>`, or a directory below `tempDir`. */
  scratchTarget(config: SourceConfigOf<K>, label: string, now: Date, tempDir: string): string;
  /**
   * Where this job's data lived on its host, and what is there now: what `restore --all --host`
   * restores into, onto a fresh host (postgres: the job's database; redis: the plan's server; files: the
   * original paths; influxdb: the original database names; command: its restore command).
   * @throws RestoreError naming what is missing when the plan does not say where (postgres-physical
   * without a data directory in the plan).
   */
  originalTarget(
    config: SourceConfigOf<K>,
    details: SourceDetailsOf<K>,
    ctx: SourceContext,
  ): Promise<OriginalTarget>;
  /** Present when `spec.capabilities.replace`. */
  readonly replace?: ReplaceSupport<SourceConfigOf<K>, SourceDetailsOf<K>>;
  /** Present when `spec.capabilities.liveTables`. */
  readonly liveTables?: LiveTablesSupport<SourceConfigOf<K>, SourceDetailsOf<K>>;
  /**
   * Where a started point-in-time copy's recovery ended (read before it is discarded); present when
   * `spec.capabilities.pointInTime`. Drills report it beside the measured RTO.
   */
  recoveryPoint?(config: SourceConfigOf<K>, target: string, ctx: SourceContext): Promise<RecoveryPoint>;
  /** Runs the plan's `drill.checks`; present when `spec.capabilities.sqlChecks`. */
  sqlChecks?(
    config: SourceConfigOf<K>,
    target: string,
    checks: readonly SqlCheck[],
    ctx: SourceContext,
  ): Promise<TargetCheck[]>;
}

/** The point a recovery actually reached. */
export interface RecoveryPoint {
  /** The WAL location recovery ended at (where the new timeline branched off). */
  lsn?: string;
  /** The commit time of the last transaction replayed, ISO 8601, when the server reported one. */
  time?: string;
  /** The timeline the promoted copy runs on. */
  timeline?: number;
}

/** One file of a WAL archive, as listed. */
export interface WalEntry {
  /** The file name PostgreSQL gave it: a segment (`000000010000000000000003`), `00000002.history`, … */
  name: string;
  /** Timeline, from the name. */
  timeline: number;
  /** Bytes as stored. */
  storedBytes: number;
  archivedAt: Date;
}

/**
 * A job's continuous archive of PostgreSQL WAL (`wal/<job>/<timeline>/…`), beside its backups, fed by
 * `archive_command` and read by `restore_command`. Implementations encrypt and checksum each file.
 */
export interface WalArchive {
  /**
   * Archives one file (`body` opens its content; it may be called more than once). Resolves only when
   * the file is durably stored: the caller may then tell PostgreSQL it is archived. Idempotent by
   * content: the same name with the same content already archived resolves `exists`; the same name with
   * different content rejects with an IntegrityError and changes nothing — never an overwrite.
   */
  push(name: string, body: () => Readable, options?: { signal?: AbortSignal }): Promise<'stored' | 'exists'>;
  /**
   * The content of an archived file, authenticated; the stream errors rather than end on a mismatch.
   * @throws NotFoundError when the file is not archived (recovery then ends where it should).
   */
  fetch(name: string, options?: { signal?: AbortSignal }): Promise<Readable>;
  /** Archived files in WAL order (timeline, then segment), each once; from `from` (a file name) on. */
  list(options?: { from?: string }): AsyncIterable<WalEntry>;
}

/** The clock, so time-dependent code can be tested. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
