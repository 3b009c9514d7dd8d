/**
 * Physical base backup of a PostgreSQL cluster. On PostgreSQL 15+: BASE_BACKUP over the replication
 * protocol ({@link runBaseBackup}), one object per archive — `<oid>.tar` per user tablespace, `base.tar`,
 * then `backup_manifest` — each streamed as it arrives, and the manifest records each tablespace's oid,
 * name and location. When the job compresses with zstd the server compresses the archives as it sends
 * them (`COMPRESSION 'zstd'`), so no uncompressed byte passes through a zstd child of ours and the
 * pipeline stores them as they come (docs/adr/0009-physical-backup-cpu.md); {@link ZstdTarWatch}
 * decompresses a side copy to read the tar. Before 15 (no user tablespaces): `pg_basebackup -D - -Ft -X
 * fetch -c fast`, one tar on stdout with the manifest inside. Either way no local copy, and `WAL true` /
 * `-X fetch` puts the WAL the backup needs to reach consistency into base.tar, so the backup restores on
 * its own after the archived WAL around it has expired. While the tars stream past, {@link TarWatch}
 * reads backup_label and the WAL segments, the manifest's tail its WAL-Ranges; the system identifier,
 * version and tablespace names come from a SQL connection.
 */

import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { spawnTool, toolVersion } from '#agent/pipeline/child';
import { DEFAULT_ZSTD_LEVEL } from '#agent/pipeline/compress';
import { settleAll } from '#agent/pipeline/flow';
import { SourceError } from '#core/errors';
import type { BackupScope, SourceBackup, SourceObject } from '#core/ports';
import type { PostgresPhysicalDetails, PostgresPhysicalSourceConfig } from '#core/sources/index';
import { parseLsn, segmentOf } from '#core/wal';
import { resolvePassword, type SourceContext } from '../context';
import { oneObject } from '../kit';
import { connectionArgs, connectPostgres, messageOf, toolEnv } from '../postgres/connect';
import { quoteIdent } from '../postgres/names';
import { runBaseBackup } from './replication';
import { MANIFEST_TAIL_BYTES, type TarFacts, TarWatch } from './tar-watch';
import { physicalTools } from './tools';
import { ZstdTarWatch } from './zstd-tar-watch';

/** The name of a backup's main data object: the tar of the default tablespace with its WAL. */
export const BASE_OBJECT = 'base.tar';
/** The backup manifest of a backup with tablespaces (without, it is inside base.tar). */
export const MANIFEST_OBJECT = 'backup_manifest';

/** The object holding one user tablespace: `<oid>.tar`, as pg_basebackup -Ft names it. */
export function tablespaceObject(oid: number): string {
  return `${oid}.tar`;
}

/** A user tablespace of the cluster (not pg_default or pg_global). */
export interface TablespaceFact {
  oid: number;
  name: string;
  location: string;
}

/** What the server says about itself before the backup starts. */
interface ServerFacts {
  version: string;
  num: number;
  systemIdentifier: string;
  segmentBytes: number;
  tablespaces: TablespaceFact[];
  /** Whether the role may take base backups (REPLICATION, or a superuser). */
  replication: boolean;
}

/** `PostgreSQL cluster on 10.0.0.5:5432 as replicator`, for messages. */
export function describeCluster(config: PostgresPhysicalSourceConfig): string {
  return `PostgreSQL cluster on ${config.host}:${config.port} as ${config.user}`;
}

/**
 * What to say when the backup role may not take base backups: the missing attribute and the fix (the
 * backup refuses with it before anything is stored; doctor reports it).
 * @example lacksReplication({ user: 'strongbox', … }) // 'role strongbox lacks the REPLICATION attribute …'
 */
export function lacksReplication(config: PostgresPhysicalSourceConfig): string {
  return `role ${config.user} lacks the REPLICATION attribute a base backup needs: as a superuser run ALTER ROLE ${quoteIdent(config.user)} REPLICATION (pg_hba.conf must also allow it a 'replication' connection)`;
}

/**
 * Starts a base backup: on PostgreSQL 15+ one object per tablespace, `base.tar` and `backup_manifest`
 * (the archives server-compressed when `scope.compression` is zstd); before 15 one object, `base.tar`,
 * with the manifest inside. Connection problems throw here; `done` rejects with a SourceError when
 * pg_basebackup or BASE_BACKUP fails or the tar lacks its backup_label, manifest or WAL — the stream then
 * errors too, so a failed base backup never passes for a complete one.
 * Memory: the stream's buffers plus what {@link TarWatch} keeps (about 130 KiB) per archive, and the
 * pipes of a `zstd -d` child when the server compresses.
 * @throws SourceError when the server cannot be reached, the role lacks REPLICATION
 *   ({@link lacksReplication}), or the server has tablespaces and is older than 15.
 */
export async function backupPhysical(
  config: PostgresPhysicalSourceConfig,
  ctx: SourceContext,
  scope: BackupScope = {},
): Promise<SourceBackup<PostgresPhysicalDetails>> {
  const password = await resolvePassword(config, ctx);
  const facts = await serverFacts(config, password, ctx);
  const where = describeCluster(config);
  if (!facts.replication) throw new SourceError(`cannot back up ${where}: ${lacksReplication(config)}`);
  if (facts.num >= 150_000) {
    const compression = scope.compression;
    const zstdLevel =
      compression?.algorithm === 'zstd' ? (compression.level ?? DEFAULT_ZSTD_LEVEL) : undefined;
    return backupOverProtocol(config, password, facts, ctx, zstdLevel);
  }
  if (facts.tablespaces.length > 0)
    throw new SourceError(
      `${where} has ${facts.tablespaces.length} tablespace(s) besides pg_default and pg_global (${facts.tablespaces.map((t) => t.name).join(', ')}): one object per tablespace needs PostgreSQL 15 or later (the server is ${facts.version})`,
    );
  const tools = physicalTools(config.binDir, Math.floor(facts.num / 10_000));
  const version = (await toolVersion(tools.pgBasebackup)).replace(/^pg_basebackup \(PostgreSQL\)\s*/, '');
  const controller = new AbortController();
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, controller.signal]) : controller.signal;
  const basebackup = spawnBasebackup(tools.pgBasebackup, config, password, ctx, signal);
  // The object's stream ends only once pg_basebackup exited 0: a clean end means a complete base backup.
  const watch = new TarWatch(() => basebackup.done);
  const output = basebackup.stdout
    ? pipeline(basebackup.stdout, watch)
    : Promise.reject(new SourceError('pg_basebackup has no stdout'));
  const done = (async () => {
    try {
      await settleAll([basebackup.done, output], controller);
      return { details: detailsOf(facts, watch.facts, where), tools: { pg_basebackup: version } };
    } catch (error) {
      const failure = asSourceError(error, where);
      watch.destroy(failure);
      throw failure;
    }
  })();
  done.catch(() => {});
  return { objects: oneObject(watch, BASE_OBJECT), done };
}

/**
 * The backup over BASE_BACKUP: the archives in the order the server sends them (the tablespaces,
 * base.tar, backup_manifest), each yielded as it starts. With `zstdLevel` the server sends
 * `base.tar.zst` and `<oid>.tar.zst`: each becomes object `base.tar` / `<oid>.tar` marked compressed,
 * read through a {@link ZstdTarWatch}; the manifest always comes uncompressed. The manifest's stream
 * ends only once the server confirmed the backup, so a clean end of the last object means a complete one.
 */
async function backupOverProtocol(
  config: PostgresPhysicalSourceConfig,
  password: string | undefined,
  facts: ServerFacts,
  ctx: SourceContext,
  zstdLevel: number | undefined,
): Promise<SourceBackup<PostgresPhysicalDetails>> {
  const where = describeCluster(config);
  const client = await connectPostgres(config, config.database, password, ctx, { replication: true });
  const run = runBaseBackup(client, zstdLevel);
  const streamed: Promise<void>[] = [];
  // Awaited in `done` once the server answered; until then (and if it failed) marked as handled.
  const track = (piped: Promise<void>) => {
    piped.catch(() => {});
    streamed.push(piped);
  };
  const watches: { facts: TarFacts; destroy(error?: Error): void }[] = [];
  const names = new Set<string>();
  let base: { facts: TarFacts } | undefined;
  const manifest = new TailKeeper(MANIFEST_TAIL_BYTES, () => run.done.then(() => {}));
  /** Whether the manifest's stream was handed out: destroying it before would emit an error nobody hears. */
  let manifestSent = false;
  const suffix = zstdLevel === undefined ? '' : '.zst';
  const objects = async function* (): AsyncGenerator<SourceObject> {
    for await (const archive of run.archives) {
      if (archive.name === MANIFEST_OBJECT) {
        manifestSent = true;
        track(pipeline(archive.stream, manifest));
        yield { name: MANIFEST_OBJECT, stream: manifest };
        continue;
      }
      const name = archive.name.endsWith(suffix)
        ? archive.name.slice(0, archive.name.length - suffix.length)
        : '';
      const oid = /^(\d+)\.tar$/.exec(name)?.[1];
      if (name !== BASE_OBJECT && !oid) {
        archive.stream.destroy();
        throw new SourceError(`BASE_BACKUP of ${where} sent an archive named '${archive.name}'`);
      }
      names.add(name);
      if (zstdLevel === undefined) {
        const watch = new TarWatch();
        watches.push(watch);
        if (name === BASE_OBJECT) base = watch;
        track(pipeline(archive.stream, watch));
        yield { name, stream: watch };
      } else {
        const watch = new ZstdTarWatch(undefined, ctx.signal);
        watches.push(watch);
        if (name === BASE_OBJECT) base = watch;
        track(pipeline(archive.stream, watch));
        const sourceBytes = () => watch.tarBytes;
        yield { name, stream: watch, compressed: { algorithm: 'zstd', level: zstdLevel, sourceBytes } };
      }
    }
  };
  const done = (async () => {
    try {
      const result = await run.done;
      await Promise.all(streamed);
      if (!base) throw new SourceError(`BASE_BACKUP of ${where} sent no base.tar`);
      const missing = result.tablespaces.filter((t) => !names.has(tablespaceObject(t.oid)));
      if (missing.length > 0)
        throw new SourceError(
          `BASE_BACKUP of ${where} sent no archive for tablespace(s) ${missing.map((t) => `${t.oid} (${t.location})`).join(', ')}`,
        );
      const tablespaces = result.tablespaces.map((sent) => {
        const fact = facts.tablespaces.find((t) => t.oid === sent.oid);
        if (!fact)
          throw new SourceError(
            `tablespace ${sent.oid} (${sent.location}) of ${where} was created during the backup: back up again`,
          );
        return { oid: sent.oid, name: fact.name, location: sent.location };
      });
      const tar: TarFacts = {
        ...base.facts,
        manifestTail: manifest.tail(),
        fileCount: watches.reduce((n, w) => n + w.facts.fileCount, 0),
        fileBytes: watches.reduce((n, w) => n + w.facts.fileBytes, 0),
      };
      return {
        details: { ...detailsOf(facts, tar, where), ...(tablespaces.length > 0 ? { tablespaces } : {}) },
        tools: { postgres: facts.version },
      };
    } catch (error) {
      const failure = asSourceError(error, where);
      for (const watch of watches) watch.destroy(failure);
      if (manifestSent) manifest.destroy(failure);
      throw failure;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  done.catch(() => {});
  return { objects: objects(), done };
}

function asSourceError(error: unknown, where: string): SourceError {
  return error instanceof SourceError
    ? error
    : new SourceError(`base backup of ${where} failed: ${messageOf(error)}`, { cause: error });
}

/**
 * A pass-through Transform that keeps the last `limit` bytes of what passes (the backup manifest's
 * WAL-Ranges are at its end) and ends only when `verdict` resolves.
 */
class TailKeeper extends Transform {
  #kept: Buffer[] = [];
  #bytes = 0;
  constructor(
    readonly limit: number,
    readonly verdict: () => Promise<void>,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#kept.push(chunk);
    this.#bytes += chunk.length;
    while (this.#bytes - (this.#kept[0]?.length ?? 0) >= this.limit)
      this.#bytes -= this.#kept.shift()?.length ?? 0;
    callback(null, chunk);
  }
  override _flush(callback: TransformCallback): void {
    this.verdict().then(
      () => callback(),
      (error: unknown) => callback(error as Error),
    );
  }
  tail(): string {
    return Buffer.concat(this.#kept).toString('utf8').slice(-this.limit);
  }
}

function spawnBasebackup(
  command: string,
  config: PostgresPhysicalSourceConfig,
  password: string | undefined,
  ctx: SourceContext,
  signal: AbortSignal,
) {
  return spawnTool(
    command,
    ['-D', '-', '-Ft', '-X', 'fetch', '-c', 'fast', '-l', 'strongbox', ...connectionArgs(config)],
    { env: toolEnv(ctx.env, password), signal },
  );
}

async function serverFacts(
  config: PostgresPhysicalSourceConfig,
  password: string | undefined,
  ctx: SourceContext,
): Promise<ServerFacts> {
  const client = await connectPostgres(config, config.database, password, ctx);
  try {
    const { rows } = await client.query<{
      version: string;
      num: string;
      sysid: string;
      seg: string;
      tablespaces: TablespaceFact[] | null;
      replication: boolean | null;
    }>(
      `SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS num,
              (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
              (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS seg,
              (SELECT json_agg(json_build_object('oid', oid::bigint, 'name', spcname,
                                                 'location', pg_tablespace_location(oid)) ORDER BY oid)
                 FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')) AS tablespaces,
              (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS replication`,
    );
    const row = rows[0];
    if (!row) throw new SourceError(`${describeCluster(config)} returned no facts`);
    return {
      version: row.version,
      num: Number(row.num),
      systemIdentifier: row.sysid,
      segmentBytes: Number(row.seg),
      tablespaces: row.tablespaces ?? [],
      replication: row.replication === true,
    };
  } catch (error) {
    if (error instanceof SourceError) throw error;
    throw new SourceError(`cannot read the facts of ${describeCluster(config)}: ${messageOf(error)}`, {
      cause: error,
    });
  } finally {
    await client.end().catch(() => {});
  }
}

/** The manifest's details from the server's facts and what the tar said. */
export function detailsOf(server: ServerFacts, tar: TarFacts, where: string): PostgresPhysicalDetails {
  const label = tar.backupLabel;
  if (!label) throw new SourceError(`the base backup of ${where} has no backup_label`);
  const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/m.exec(label);
  const timeline = /^START TIMELINE: (\d+)$/m.exec(label);
  const startTime = /^START TIME: (.+)$/m.exec(label);
  if (!start || !timeline || !startTime)
    throw new SourceError(`the backup_label of ${where} lacks its START WAL LOCATION, TIMELINE or TIME`);
  const ranges = [
    ...(tar.manifestTail ?? '').matchAll(
      /\{\s*"Timeline":\s*(\d+),\s*"Start-LSN":\s*"([0-9A-F/]+)",\s*"End-LSN":\s*"([0-9A-F/]+)"\s*\}/g,
    ),
  ];
  const last = ranges.at(-1);
  if (!last) throw new SourceError(`the backup_manifest of ${where} has no WAL-Ranges`);
  const stopLsn = last[3] as string;
  const stopTimeline = Number(last[1]);
  // The end LSN points just past the last record: the segment holding its last byte is the last needed.
  const lastWalSegment = segmentOf(stopTimeline, Math.max(parseLsn(stopLsn) - 1, 0), server.segmentBytes);
  const firstWalSegment = start[2] as string;
  const inside = new Set(tar.walSegments);
  if (!inside.has(firstWalSegment) || !inside.has(lastWalSegment)) {
    throw new SourceError(
      `the base backup of ${where} lacks the WAL it needs (${firstWalSegment} … ${lastWalSegment}); it holds ${tar.walSegments.join(', ') || 'none'}`,
    );
  }
  return {
    kind: 'postgres-physical',
    serverVersion: server.version,
    serverVersionNum: server.num,
    systemIdentifier: server.systemIdentifier,
    timeline: Number(timeline[1]),
    startLsn: start[1] as string,
    stopLsn,
    firstWalSegment,
    lastWalSegment,
    walSegmentBytes: server.segmentBytes,
    backupLabel: label,
    backupStartedAt: labelTime(startTime[1] as string),
    fileCount: tar.fileCount,
    fileBytes: tar.fileBytes,
  };
}

/** `2026-12-01 22:29:38 UTC` (backup_label's START TIME) as ISO 8601; the text itself if it is another zone. */
function labelTime(text: string): string {
  const match = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) (UTC|GMT)$/.exec(text.trim());
  return match ? `${match[1]}T${match[2]}Z` : text.trim();
}
