/**
 * What a kind of source is, declared once and purely: its plan schema (the `source:` mapping of a job),
 * the schema of what its backups record in the manifest (`source:` of the manifest), and its
 * capabilities. Callers decide from capabilities — never from the kind's name — whether a restore may
 * select tables, replace in place, run SQL checks or recover to a point in time (pgBackRest's storage
 * `feature` flags are the model). The driver that does the I/O lives in agent/sources/<kind>/.
 */
import type { z } from 'zod';

/** What a kind of source can do beyond backup, restore into a new target, and drill checks. */
export interface SourceCapabilities {
  /** `restore --tables`: restore chosen tables only (a logical dump). */
  readonly tables: boolean;
  /** `restore --replace`: restore beside the live data, check it, swap it in, keep the old data. */
  readonly replace: boolean;
  /** The plan's `drill.checks`: SQL queries with expected results, run on a restored target. */
  readonly sqlChecks: boolean;
  /** Point-in-time recovery: a physical base backup plus a continuous WAL archive (`wal/<job>/…`). */
  readonly pointInTime: boolean;
  /** `restore --path`: restore chosen files or directories of the backup only. @default false */
  readonly paths?: boolean;
  /**
   * `restore --in-place`: restore over the original locations, keeping what it overwrites beside.
   * @default false
   */
  readonly inPlace?: boolean;
  /**
   * `restore --tables … --into-live`: restore chosen tables into the job's own (live) database in one
   * transaction, after a safety backup of exactly those tables. @default false
   */
  readonly liveTables?: boolean;
}

/** The declaration of one kind of source. */
export interface SourceSpec<
  K extends string = string,
  P extends z.ZodType<{ kind: K }> = z.ZodType<{ kind: K }>,
  D extends z.ZodType<{ kind: K }> = z.ZodType<{ kind: K }>,
> {
  readonly kind: K;
  /** One line for help and docs: `PostgreSQL database, logical dump (pg_dump -Fc)`. */
  readonly title: string;
  /** What a restore writes into, in words: `database`, `directory`. */
  readonly targetNoun: string;
  /** The job's `source:` mapping in the plan; a strict object whose `kind` is the literal kind. */
  readonly plan: P;
  /** The manifest's `source:` details of a backup of this kind; `kind` is the literal kind. */
  readonly details: D;
  readonly capabilities: SourceCapabilities;
}

/** Capabilities of a source that does none of the optional things. */
export const NO_CAPABILITIES: SourceCapabilities = {
  tables: false,
  replace: false,
  sqlChecks: false,
  pointInTime: false,
};

/**
 * Declares a source kind (the identity function, typed, so each spec keeps its literal types).
 * @example export const filesSource = defineSource({ kind: 'files', title: …, plan, details, capabilities })
 */
export function defineSource<
  K extends string,
  P extends z.ZodType<{ kind: K }>,
  D extends z.ZodType<{ kind: K }>,
>(spec: SourceSpec<K, P, D>): SourceSpec<K, P, D> {
  return spec;
}
