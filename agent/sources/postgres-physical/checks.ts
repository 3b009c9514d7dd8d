/**
 * The checks of a restored data directory against its manifest: the same major version, the same
 * system identifier (pg_controldata), and — while the copy has not been started (its backup_label is
 * still there) — every file against the backup's own backup_manifest and its WAL parsed
 * (`pg_verifybackup`). A copy that was started is checked to be running as a primary.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Finding } from '#core/checks';
import { describeError } from '#core/errors';
import type { TargetCheck } from '#core/ports';
import type { PostgresPhysicalDetails, PostgresPhysicalSourceConfig } from '#core/sources/index';
import { majorOf, RESTORE_LOG } from './restore';
import { physicalTools, runAs } from './tools';

/** Files a restore adds or changes, which pg_verifybackup must not count against the backup. */
const WRITTEN_BY_RESTORE = ['postgresql.auto.conf', 'recovery.signal', RESTORE_LOG];

/** The checks of a restored data directory. */
export async function checkPhysical(
  config: PostgresPhysicalSourceConfig,
  details: PostgresPhysicalDetails,
  dir: string,
): Promise<TargetCheck[]> {
  const checks: TargetCheck[] = [];
  const major = Math.floor(details.serverVersionNum / 10_000);
  const tools = physicalTools(config.binDir, await majorOf(details, dir));
  const found = await majorOf(undefined, dir);
  checks.push(
    result(
      'pg-version',
      found === major,
      `PG_VERSION ${found || 'missing'}, the backup's server is ${major}`,
    ),
  );
  const control = await runAs(config.osUser, tools.pgControldata, ['-D', dir]).catch(
    (error: unknown) => `failed: ${describeError(error)}`,
  );
  const systemIdentifier = /^Database system identifier:\s+(\d+)$/m.exec(control)?.[1];
  checks.push(
    result(
      'system-identifier',
      systemIdentifier === details.systemIdentifier,
      `system identifier ${systemIdentifier ?? `unreadable (${control.trim().split('\n').at(-1)})`}, the backup recorded ${details.systemIdentifier}`,
    ),
  );
  const untouched = await stat(join(dir, 'backup_label')).then(
    () => true,
    () => false,
  );
  if (untouched) {
    const verified = await runAs(config.osUser, tools.pgVerifybackup, [
      ...WRITTEN_BY_RESTORE.flatMap((name) => ['-i', name]),
      dir,
    ]).then(
      () => ({ ok: true, detail: 'every file and the WAL match the backup_manifest (pg_verifybackup)' }),
      (error: unknown) => ({ ok: false, detail: describeError(error) }),
    );
    checks.push(result('backup-manifest', verified.ok, verified.detail));
  } else {
    const state = /^Database cluster state:\s+(.+)$/m.exec(control)?.[1] ?? 'unknown';
    const pid = await readFile(join(dir, 'postmaster.pid'), 'utf8').catch(() => '');
    checks.push(
      result(
        'recovered',
        state === 'in production' && pid !== '',
        `the copy runs (${pid ? 'postmaster.pid present' : 'not running'}), cluster state ${state}`,
      ),
    );
  }
  return checks;
}

function result(check: string, passed: boolean, detail: string): TargetCheck {
  const findings: Finding[] = passed ? [] : [{ job: '', severity: 'critical', check, message: detail }];
  return { check, passed, detail, findings };
}
