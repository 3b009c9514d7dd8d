/**
 * What `strongbox doctor` checks for a physical job: the server reachable, the role allowed to take
 * base backups (REPLICATION), WAL archiving set up for point-in-time recovery (`wal_level`,
 * `archive_mode`, an `archive_command` that calls Strongbox, `archive_timeout`), the archiver not
 * failing (`pg_stat_archiver`), and pg_basebackup present and not older than the server.
 */
import { toolVersion } from '#agent/pipeline/child';
import type { DoctorCheck } from '#core/ports';
import type { PostgresPhysicalSourceConfig } from '#core/sources/index';
import { resolvePassword, type SourceContext } from '../context';
import { probe } from '../kit';
import { connectPostgres } from '../postgres/connect';
import { describeCluster, lacksReplication } from './backup';
import { physicalTools } from './tools';

interface ServerSettings {
  num: string;
  replication: boolean;
  wal_level: string;
  archive_mode: string;
  archive_command: string;
  archive_timeout: string;
  failed_count: string;
  last_failed_wal: string | null;
  last_failed_time: string | null;
  last_archived_time: string | null;
}

/** One line per check, in order. */
export async function doctorPhysical(
  config: PostgresPhysicalSourceConfig,
  ctx: SourceContext,
): Promise<DoctorCheck[]> {
  let settings: ServerSettings | undefined;
  const checks: DoctorCheck[] = [
    await probe(describeCluster(config), async () => {
      const password = await resolvePassword(config, ctx);
      const client = await connectPostgres(config, config.database, password, ctx);
      try {
        const { rows } = await client.query<ServerSettings>(
          `SELECT current_setting('server_version_num') AS num,
                  (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS replication,
                  current_setting('wal_level') AS wal_level, current_setting('archive_mode') AS archive_mode,
                  current_setting('archive_command') AS archive_command,
                  current_setting('archive_timeout') AS archive_timeout,
                  a.failed_count::text, a.last_failed_wal, a.last_failed_time::text, a.last_archived_time::text
             FROM pg_stat_archiver a`,
        );
        settings = rows[0];
        return `reachable, server_version_num ${settings?.num}`;
      } finally {
        await client.end().catch(() => {});
      }
    }),
  ];
  if (settings) {
    const s = settings;
    checks.push(
      line(
        'replication permission',
        s.replication,
        s.replication ? `role ${config.user} may take base backups (REPLICATION)` : lacksReplication(config),
      ),
      line('wal_level', s.wal_level !== 'minimal', `wal_level = ${s.wal_level} (replica or logical needed)`),
      line(
        'archive_mode',
        s.archive_mode === 'on' || s.archive_mode === 'always',
        `archive_mode = ${s.archive_mode} (on needed for point-in-time recovery)`,
      ),
      line(
        'archive_command',
        /strongbox\b.*\bwal-push\b/.test(s.archive_command),
        `archive_command = '${s.archive_command}' (should call strongbox wal-push … %p)`,
      ),
      line(
        'archive_timeout',
        s.archive_timeout !== '0',
        `archive_timeout = ${s.archive_timeout} (0 lets a quiet server leave WAL unarchived for ever; 60s is usual)`,
        true,
      ),
      line(
        'pg_stat_archiver',
        Number(s.failed_count) === 0 || (s.last_archived_time ?? '') > (s.last_failed_time ?? ''),
        Number(s.failed_count) === 0
          ? 'the archiver has not failed'
          : `the archiver failed ${s.failed_count} times, last on ${s.last_failed_wal} at ${s.last_failed_time}`,
      ),
    );
  }
  const tools = physicalTools(config.binDir, Math.floor(Number(settings?.num ?? 0) / 10_000));
  checks.push(
    await probe(
      'pg_basebackup',
      async () => `${tools.pgBasebackup} (${await toolVersion(tools.pgBasebackup)})`,
    ),
  );
  return checks;
}

function line(subject: string, ok: boolean, detail: string, warnOnly = false): DoctorCheck {
  return { ok, ...(warnOnly && !ok ? { warning: true } : {}), subject, detail };
}
