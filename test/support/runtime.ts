/**
 * A Runtime over a file vault and a fresh local master key in a temp directory, for tests that call the
 * agent's use cases (runBackup, runRestore) directly rather than through the CLI. The directory is
 * removed after the test file (test/support/temp); a test may remove it sooner.
 */
import { join } from 'node:path';
import { generateMasterKeyFile, LocalKeyProvider } from '#adapters/keys/local';
import { FileVault } from '#adapters/vaults/file';
import type { Runtime } from '#agent/runtime';
import { STATE_DIR_ENV } from '#agent/state';
import { type Job, validatePlan } from '#core/plan';
import { systemClock, type Vault } from '#core/ports';
import { tempDir } from '#test/support/temp';

/** Options of {@link testRuntime}. */
export interface TestRuntimeOptions {
  /** Jobs of the plan, as YAML would give them (`{ name, source: { kind, … } }`). */
  jobs: Record<string, unknown>[];
  /** Wraps the file vault (a FaultyVault, a recording wrapper). */
  wrapVault?: (vault: FileVault) => Vault;
  signal?: AbortSignal;
}

/** A runtime, the directory it lives in and the file vault under its wrapper. */
export async function testRuntime(
  options: TestRuntimeOptions,
): Promise<{ runtime: Runtime; dir: string; fileVault: FileVault }> {
  const dir = await tempDir('strongbox-runtime-');
  const keyPath = join(dir, 'master.key');
  await generateMasterKeyFile(keyPath);
  const fileVault = new FileVault(`file://${dir}/vault`);
  const plan = validatePlan({
    version: 1,
    vault: { url: fileVault.url },
    key: { type: 'local', path: keyPath },
    jobs: options.jobs,
  });
  const runtime: Runtime = {
    plan,
    planPath: join(dir, 'plan.yaml'),
    vault: options.wrapVault ? options.wrapVault(fileVault) : fileVault,
    keys: new LocalKeyProvider(keyPath),
    secrets: { read: async (name) => Promise.reject(new Error(`no secret ${name} in tests`)) },
    // The agent's state (run records, locks, alert throttles) stays in the test's own directory.
    env: { [STATE_DIR_ENV]: join(dir, 'state') },
    clock: systemClock,
    host: 'test-host',
    log: () => {},
    signal: options.signal ?? new AbortController().signal,
  };
  return { runtime, dir, fileVault };
}

/**
 * A runtime whose plan has one job, `shop`, backing up database `shop` of a test cluster as `user`;
 * the lines it logs are collected. `dir` goes after the test file, or sooner through `cleanup`.
 */
export async function shopJobRuntime(
  server: { host: string; port: number; binDir: string },
  user: string,
  /** The test's list of directories to remove afterwards: this runtime's goes in. */
  cleanup?: string[],
): Promise<{ runtime: Runtime; job: Job; lines: string[]; dir: string }> {
  const { host, port, binDir } = server;
  const { runtime, dir } = await testRuntime({
    jobs: [{ name: 'shop', source: { kind: 'postgres', database: 'shop', host, port, user, binDir } }],
  });
  cleanup?.push(dir);
  const lines: string[] = [];
  const logged: Runtime = { ...runtime, log: (line) => lines.push(line) };
  return { runtime: logged, job: logged.plan.jobs[0] as Job, lines, dir };
}
