/**
 * Physical base backup of a PostgreSQL cluster: `pg_basebackup -D - -Ft -X fetch -c fast`, one tar on
 * stdout streamed straight into the pipeline (no local copy). `-X fetch` puts the WAL the backup needs to
 * reach consistency into the tar, so the backup restores on its own after the archived WAL around it has
 * expired. While the tar streams past, {@link TarWatch} reads backup_label and backup_manifest's
 * WAL-Ranges for the manifest; the system identifier and version come from a SQL connection.
 */
import { pipeline } from 'node:stream/promises';
import { spawnTool, toolVersion } from '#agent/pipeline/child';
import { settleAll } from '#agent/pipeline/flow';
import { SourceError } from '#core/errors';
import type { SourceBackup } from '#core/ports';
import type { PostgresPhysicalDetails, PostgresPhysicalSourceConfig } from '#core/sources/index';
import { parseLsn, segmentOf } from '#core/wal';
import { resolvePassword, type SourceContext } from '../context';
import { oneObject } from '../kit';
import { connectionArgs, connectPostgres, messageOf, toolEnv } from '../postgres/connect';
import { type TarFacts, TarWatch } from './tar-watch';
import { physicalTools } from './tools';

/** The name of a backup's one data object: the tar of the default tablespace with its WAL. */
export const BASE_OBJECT = 'base.tar';

/** What the server says about itself before the backup starts. */
interface ServerFacts {
  version: string;
  num: number;
  systemIdentifier: string;
  segmentBytes: number;
  tablespaces: number;
}

/** `PostgreSQL cluster on 10.0.0.5:5432 as replicator`, for messages. */
export function describeCluster(config: PostgresPhysicalSourceConfig): string {
  return `PostgreSQL cluster on ${config.host}:${config.port} as ${config.user}`;
}

/**
 * Starts a base backup (one object, `base.tar`). Connection problems and clusters it cannot back up
 * (tablespaces besides pg_default) throw here; `done` rejects with a SourceError when pg_basebackup
 * exits non-zero or the tar lacks its backup_label, manifest or WAL — the stream then errors too, so a
 * failed base backup never passes for a complete one.
 * Memory: the stream's buffers plus what {@link TarWatch} keeps (about 130 KiB).
 * @throws SourceError when the server cannot be reached or has several tablespaces.
 */
export async function backupPhysical(
  config: PostgresPhysicalSourceConfig,
  ctx: SourceContext,
): Promise<SourceBackup<PostgresPhysicalDetails>> {
  const password = await resolvePassword(config, ctx);
  const facts = await serverFacts(config, password, ctx);
  const where = describeCluster(config);
  if (facts.tablespaces > 0) {
    throw new SourceError(
      `${where} has ${facts.tablespaces} tablespace(s) besides pg_default and pg_global: pg_basebackup streams only a single tablespace to stdout, and one object per tablespace is not supported yet`,
    );
  }
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
      const failure =
        error instanceof SourceError
          ? error
          : new SourceError(`base backup of ${where} failed: ${messageOf(error)}`, { cause: error });
      watch.destroy(failure);
      throw failure;
    }
  })();
  done.catch(() => {});
  return { objects: oneObject(watch, BASE_OBJECT), done };
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
      tablespaces: string;
    }>(
      `SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS num,
              (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
              (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS seg,
              (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')) AS tablespaces`,
    );
    const row = rows[0];
    if (!row) throw new SourceError(`${describeCluster(config)} returned no facts`);
    return {
      version: row.version,
      num: Number(row.num),
      systemIdentifier: row.sysid,
      segmentBytes: Number(row.seg),
      tablespaces: Number(row.tablespaces),
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
