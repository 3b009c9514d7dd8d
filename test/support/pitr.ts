/**
 * A point-in-time site for integration tests: a real cluster whose archive_command is the agent's own
 * one-file bundle (`wal-push`, run by PostgreSQL as the postgres user), a file vault and plan that user
 * can read and write, and a {@link Runtime} over the same plan for calling the use cases directly.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Runtime } from '#agent/runtime';
import { type Job, validatePlan } from '#core/plan';
import { type ClusterOptions, type PgServer, startPostgres } from '#test/support/postgres';
import { testRuntime } from '#test/support/runtime';
import { buildAgentBundle } from '../../scripts/lib/agent-bundle';

const sh = promisify(execFile);

/** A running site; `stop()` in `afterAll`. */
export interface PitrSite {
  pg: PgServer;
  runtime: Runtime;
  job: Job;
  /** The temp directory: plan.yaml, master.key, vault/, strongbox.mjs. */
  dir: string;
  /** How PostgreSQL runs the agent: `node <dir>/strongbox.mjs`. */
  agent: string;
  /**
   * Switches to a new segment and waits until the archiver has stored the one it closed.
   * @returns the name of that segment.
   */
  archiveEverything(timeoutSeconds?: number): Promise<string>;
  /** Runs SQL with psql on a restored copy running from `dataDir` (its socket is there). */
  psqlOn(dataDir: string, sql: string, database?: string): Promise<string>;
  /** Makes the tree owned by the postgres user (what PostgreSQL's wal-push writes into). */
  chownTree(path: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a cluster archiving into job `pitr` of a fresh file vault.
 * @example const site = await startPitrSite({ databases: ['app'] });
 */
export async function startPitrSite(
  options: { databases?: string[]; settings?: ClusterOptions['settings']; pushArgs?: string } = {},
): Promise<PitrSite> {
  const made = await testRuntime({
    jobs: [{ name: 'pitr', source: { kind: 'postgres-physical', port: 1 } }],
  });
  const { dir } = made;
  let pg: PgServer | undefined;
  try {
    await buildAgentBundle(join(import.meta.dirname, '..', '..'), join(dir, 'strongbox.mjs'));
    const agent = `${process.execPath} ${join(dir, 'strongbox.mjs')}`;
    const plan = join(dir, 'plan.yaml');
    const push = `${agent} wal-push --plan ${plan} --job pitr -q ${options.pushArgs ?? ''} %p`;
    pg = await startPostgres({
      databases: options.databases,
      settings: {
        wal_level: 'replica',
        archive_mode: 'on',
        archive_command: `'${push}'`,
        ...options.settings,
      },
    });
    const server = pg;
    const document = {
      version: 1,
      vault: made.runtime.plan.vault,
      key: made.runtime.plan.key,
      jobs: [{ name: 'pitr', source: { kind: 'postgres-physical', port: server.port } }],
    };
    await writeFile(plan, JSON.stringify(document));
    await mkdir(join(dir, 'vault'), { recursive: true });
    const chownTree = async (path: string) => {
      await sh('chown', ['-R', 'postgres:postgres', path]);
    };
    await chownTree(dir);
    const runtime: Runtime = {
      ...made.runtime,
      plan: validatePlan(document),
      planPath: plan,
      env: { STRONGBOX_COMMAND: agent },
    };
    const job = runtime.plan.jobs[0] as Job;
    return {
      pg: server,
      runtime,
      job,
      dir,
      agent,
      chownTree,
      archiveEverything: async (timeoutSeconds = 60) => {
        const closed = await server.psql('SELECT pg_walfile_name(pg_switch_wal())');
        const deadline = Date.now() + timeoutSeconds * 1000;
        while (Date.now() < deadline) {
          const last = await server.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
          if (last >= closed) return closed;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        const log = await readFile(join(server.dataDir, '..', 'server.log'), 'utf8').catch(() => '');
        throw new Error(
          `the archiver did not archive ${closed} in ${timeoutSeconds} s: ${await server.psql('SELECT * FROM pg_stat_archiver')}\n${log
            .split('\n')
            .filter((l) => /error|FATAL/.test(l))
            .slice(-8)
            .join('\n')}`,
        );
      },
      psqlOn: async (dataDir, sql, database = 'postgres') => {
        const port = (await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[3] as string;
        const { stdout } = await sh(join(server.binDir, 'psql'), [
          ...['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', dataDir, '-p', port, '-U', 'postgres'],
          ...['-d', database, '-c', sql],
        ]);
        return stdout.trim();
      },
      stop: async () => {
        await server.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await pg?.stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
