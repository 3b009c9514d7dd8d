/**
 * The registry of source drivers: one line per kind (its spec is registered in core/sources). Callers
 * take a driver from here and decide what to do from `driver.spec.capabilities`, never from the kind's
 * name. A kind registered in core without a driver here does not type-check.
 */
import { IntegrityError } from '#core/errors';
import type { SourceDriver } from '#core/ports';
import { SOURCE_SPECS, type SourceDetails, type SourceKind } from '#core/sources/index';
import { commandDriver } from './command/index';
import { filesDriver } from './files/index';
import { influxdbDriver } from './influxdb/index';
import { postgresDriver } from './postgres/index';
import { postgresPhysicalDriver } from './postgres-physical/index';
import { redisDriver } from './redis/index';

const DRIVERS: { readonly [K in SourceKind]: SourceDriver<K> } = {
  postgres: postgresDriver,
  files: filesDriver,
  'postgres-physical': postgresPhysicalDriver,
  command: commandDriver,
  redis: redisDriver,
  influxdb: influxdbDriver,
};

/**
 * The driver of a source (or a source kind).
 * @example const backup = await sourceDriver(job.source).backup(job.source, { env, signal })
 */
export function sourceDriver<K extends SourceKind>(source: { kind: K } | K): SourceDriver<K> {
  const kind = typeof source === 'string' ? source : source.kind;
  return DRIVERS[kind] as unknown as SourceDriver<K>;
}

/** Every registered driver, in registry order (docs, the contract suite, checks of the registry). */
export function allDrivers(): SourceDriver[] {
  return SOURCE_SPECS.map((spec) => DRIVERS[spec.kind] as unknown as SourceDriver);
}

/**
 * A manifest's details, checked to be of the job's kind before its driver reads them.
 * @throws IntegrityError when the backup is of another kind.
 */
export function detailsOf<K extends SourceKind>(
  details: SourceDetails,
  kind: K,
): Extract<SourceDetails, { kind: K }> {
  if (details.kind !== kind)
    throw new IntegrityError(`the manifest describes a ${details.kind} backup, not ${kind}`);
  return details as Extract<SourceDetails, { kind: K }>;
}
