/**
 * The registry of source kinds: the one place that lists them. The plan's `source:` union and the
 * manifest's `source:` union are built from it, and every caller that needs to know what a kind can do
 * asks `sourceSpec(kind).capabilities`. A new kind is one spec file here and one line below (its driver
 * goes in agent/sources/<kind>/ and one line of agent/sources/index.ts).
 */
import { z } from 'zod';
import { commandSource } from './command';
import { filesSource } from './files';
import { influxdbSource } from './influxdb';
import { postgresSource } from './postgres';
import { postgresPhysicalSource } from './postgres-physical';
import { redisSource } from './redis';
import type { SourceCapabilities, SourceSpec } from './spec';

export type { CommandDetails, CommandSourceConfig } from './command';
export type { FilesDetails, FilesSourceConfig } from './files';
export type { InfluxdbDetails, InfluxdbSourceConfig } from './influxdb';
export type { PostgresDetails, PostgresSourceConfig, TableCount } from './postgres';
export type { PostgresPhysicalDetails, PostgresPhysicalSourceConfig } from './postgres-physical';
export type { RedisDetails, RedisSourceConfig } from './redis';
export { NO_CAPABILITIES, type SourceCapabilities, type SourceSpec } from './spec';

/** Every source kind, in the order docs and messages list them. */
export const SOURCE_SPECS = [
  postgresSource,
  postgresPhysicalSource,
  filesSource,
  commandSource,
  redisSource,
  influxdbSource,
] as const;

type Specs = typeof SOURCE_SPECS;
// biome-ignore lint/suspicious/noExplicitAny: any spec, whatever its schemas
type AnySpec = SourceSpec<string, any, any>;
/** One member per spec, in order (a homomorphic mapping over the tuple keeps it a tuple). */
type Field<T extends readonly AnySpec[], F extends 'kind' | 'plan' | 'details'> = {
  -readonly [I in keyof T]: T[I][F];
};
/** The name of a source kind: `postgres`, `files`, … */
export type SourceKind = Specs[number]['kind'];

/** Source kind names, in registry order. */
export const SOURCE_KINDS = SOURCE_SPECS.map((spec) => spec.kind) as unknown as Field<Specs, 'kind'>;

/** The plan's `jobs[].source` schema: a union discriminated by `kind`, one member per registered kind. */
export const sourcePlanSchema = z.discriminatedUnion(
  'kind',
  SOURCE_SPECS.map((spec) => spec.plan) as unknown as Field<Specs, 'plan'>,
);

/** The manifest's `source` schema: what a backup of each kind records. */
export const sourceDetailsSchema = z.discriminatedUnion(
  'kind',
  SOURCE_SPECS.map((spec) => spec.details) as unknown as Field<Specs, 'details'>,
);

/** A job's source as the plan gives it, by kind. */
export type SourceConfig = z.output<typeof sourcePlanSchema>;
/** What the manifest records of a backup's source, by kind. */
export type SourceDetails = z.output<typeof sourceDetailsSchema>;
/** The source config of one kind. */
export type SourceConfigOf<K extends SourceKind> = Extract<SourceConfig, { kind: K }>;
/** The manifest details of one kind. */
export type SourceDetailsOf<K extends SourceKind> = Extract<SourceDetails, { kind: K }>;

/** Whether a string names a registered kind. */
export function isSourceKind(kind: string): kind is SourceKind {
  return (SOURCE_KINDS as readonly string[]).includes(kind);
}

/**
 * The spec of a kind.
 * @example sourceSpec('postgres').capabilities.tables // true
 * @throws RangeError for a kind that is not registered (plans and manifests are validated before).
 */
export function sourceSpec(kind: string): SourceSpec {
  const spec = SOURCE_SPECS.find((s) => s.kind === kind);
  if (!spec) throw new RangeError(`unknown source kind '${kind}' (known: ${SOURCE_KINDS.join(', ')})`);
  return spec as unknown as SourceSpec;
}

/** What a kind of source can do. */
export function capabilitiesOf(kind: string): SourceCapabilities {
  return sourceSpec(kind).capabilities;
}
