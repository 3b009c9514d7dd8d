/**
 * Physical backups that fail, on a real cluster, run by the agent's own bundle as an operator runs it and
 * as a non-superuser backup role (LOGIN REPLICATION) as real sites do:
 * - the base backup's stream cut midway (the walsender terminated with pg_terminate_backend once bytes
 *   flowed) exits non-zero and leaves no manifest and no object under a final name; the next backup
 *   succeeds;
 * - a role without REPLICATION is refused before anything is stored, with an error that names the
 *   missing attribute and the fix, and doctor says the same.
 * Tablespaces add no privilege of their own: the server process reads their files for BASE_BACKUP
 * whichever role asked, so a role cannot lack access to one (test/integration/pitr-tablespaces).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sourceDriver } from '#agent/sources/index';
import type { PostgresPhysicalSourceConfig } from '#core/sources/index';
import { type PitrSite, startPitrSite } from '#test/support/pitr';

let site: PitrSite;
const BACKUP_ROLE = 'strongbox_backup';
const PLAIN_ROLE = 'app_reader';

beforeAll(async () => {
  site = await startPitrSite({ databases: ['bench'] });
  await site.pg.psql(`CREATE ROLE ${BACKUP_ROLE} LOGIN REPLICATION; CREATE ROLE ${PLAIN_ROLE} LOGIN`);
  // Enough data that the backup streams for a while (about 75 MiB).
  const { pg } = site;
  await run(join(pg.binDir, 'pgbench'), [
    ...['-h', pg.socketDir, '-p', String(pg.port), '-U', 'postgres', '-i', '-q', '-s', '5', 'bench'],
  ]);
}, 180_000);

afterAll(async () => {
  await site?.stop();
});

/** A plan like the site's whose job connects as `user`. */
async function planAs(user: string): Promise<string> {
  const document = JSON.parse(await readFile(join(site.dir, 'plan.yaml'), 'utf8'));
  document.jobs[0].source.user = user;
  const path = join(site.dir, `plan-${user}.json`);
  await writeFile(path, JSON.stringify(document));
  return path;
}

/** `strongbox backup` of job pitr with the site's bundle; the child, and its exit code and stderr. */
function backup(plan: string): { child: ChildProcess; result: Promise<{ code: number; stderr: string }> } {
  const [node, bundle] = site.agent.split(' ') as [string, string];
  const child = spawn(node, [bundle, 'backup', '--plan', plan, '--job', 'pitr', '-q'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (data: Buffer) => {
    stderr += data.toString();
  });
  const result = new Promise<{ code: number; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code: code ?? -1, stderr })),
  );
  return { child, result };
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited ${code}`))));
  });
}

/** Every file under the job's backups, relative to the vault, partial files included. */
async function backupFiles(): Promise<string[]> {
  const vault = join(site.dir, 'vault');
  const entries = await readdir(join(vault, 'backups'), { recursive: true, withFileTypes: true }).catch(
    () => [],
  );
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(vault, join(e.parentPath, e.name)))
    .sort();
}

async function until(what: string, test: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('a physical backup whose stream is cut midway', () => {
  it('exits non-zero, stores nothing complete or under a final name, and the next backup succeeds', async () => {
    const plan = await planAs(BACKUP_ROLE);
    const before = await backupFiles();
    const { child, result } = backup(plan);
    // Freeze the agent as soon as its walsender streams: the server fills the socket and blocks.
    const walsender = `SELECT pid FROM pg_stat_activity WHERE backend_type = 'walsender' AND usename = '${BACKUP_ROLE}'`;
    await until('the walsender', async () => (await site.pg.psql(walsender)) !== '');
    child.kill('SIGSTOP');
    try {
      await until(
        'bytes streamed',
        async () =>
          Number(
            (await site.pg.psql(
              'SELECT coalesce(max(backup_streamed), 0) FROM pg_stat_progress_basebackup',
            )) || 0,
          ) > 0,
      );
      expect(await site.pg.psql(`SELECT pg_terminate_backend(pid) FROM (${walsender}) w`)).toBe('t');
    } finally {
      child.kill('SIGCONT');
    }
    const cut = await result;

    expect(cut.code).not.toBe(0);
    // A reported failure (after cleaning up), not a crash of the agent.
    expect(cut.stderr).not.toMatch(/Unhandled|node:events/);
    // The server's FATAL reaches the agent only when its socket had room for it: with the agent stopped
    // mid-stream the buffers may be full of data, and the agent then sees the connection end.
    expect(cut.stderr.trim().split('\n').at(-1)).toMatch(
      /^strongbox: .*BASE_BACKUP failed: (terminating connection due to administrator command|Connection terminated unexpectedly)/,
    );
    const left = (await backupFiles()).filter((f) => !before.includes(f));
    expect(left.filter((f) => f.endsWith('manifest.json'))).toEqual([]);
    expect(left.filter((f) => !/\/\.[^/]+\.partial-[0-9a-f]{16}$/.test(f))).toEqual([]);

    const next = await backup(plan).result;
    expect(next.stderr).toBe('');
    expect(next.code).toBe(0);
    const manifests = (await backupFiles()).filter((f) => f.endsWith('manifest.json'));
    expect(manifests).toHaveLength(before.filter((f) => f.endsWith('manifest.json')).length + 1);
  });
});

describe('a backup role without REPLICATION', () => {
  it('is refused before anything is stored, naming the attribute and the fix', async () => {
    const before = await backupFiles();
    const refused = await backup(await planAs(PLAIN_ROLE)).result;

    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(
      `role ${PLAIN_ROLE} lacks the REPLICATION attribute a base backup needs: as a superuser run ALTER ROLE "${PLAIN_ROLE}" REPLICATION`,
    );
    expect(await backupFiles()).toEqual(before);
  });

  it('is what doctor reports', async () => {
    const config: PostgresPhysicalSourceConfig = {
      ...(site.job.source as PostgresPhysicalSourceConfig),
      user: PLAIN_ROLE,
    };
    const checks = await sourceDriver(config).doctor(config, { env: {} });
    expect(checks.find((c) => c.subject === 'replication permission')).toMatchObject({
      ok: false,
      detail: expect.stringContaining(`ALTER ROLE "${PLAIN_ROLE}" REPLICATION`),
    });

    const allowed = await sourceDriver(config).doctor({ ...config, user: BACKUP_ROLE }, { env: {} });
    expect(allowed.find((c) => c.subject === 'replication permission')?.ok).toBe(true);
  });
});
