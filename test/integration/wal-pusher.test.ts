/**
 * The resident WAL pusher (agent/wal-pusher) and the cheap wal-push foreground that asks it over its
 * socket (agent/wal-pusher-client), in one process with real files, a file vault and real encryption:
 * ready segments upload in the background, a call is answered "archived" only once its segment is
 * durably in the vault, a marker is written only after the vault confirmed, an outage fails the call
 * and leaves no marker, and a pusher that cannot answer for a caller makes it push itself.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultyVault } from '#adapters/vaults/faulty';
import { VaultWalArchive } from '#agent/wal-archive';
import { WalPusher, type WalPusherOptions } from '#agent/wal-pusher';
import { type FastPathProcess, parseFastWalPush, walPushFastPath } from '#agent/wal-pusher-client';
import { agentFile, callerFingerprint, pusherFiles, SPOOL_DIR } from '#agent/wal-pusher-protocol';
import type { Vault } from '#core/ports';
import { GatedVault } from '#test/support/gated-vault';
import { testRuntime } from '#test/support/runtime';

const MIB = 1024 * 1024;
const S = [
  '000000010000000000000003',
  '000000010000000000000004',
  '000000010000000000000005',
  '000000010000000000000006',
] as const;
const [S1, S2] = S;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A data directory with ready segments, a plan file, and a pusher over a chosen vault. */
async function site(names: readonly string[] = S) {
  const { runtime, dir, fileVault } = await testRuntime({
    jobs: [{ name: 'pitr', source: { kind: 'postgres-physical' } }],
  });
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'data');
  const pgWal = join(dataDir, 'pg_wal');
  await mkdir(join(pgWal, 'archive_status'), { recursive: true });
  const plan = join(dir, 'plan.yaml');
  await writeFile(plan, JSON.stringify(runtime.plan));
  for (const name of names) {
    await writeFile(join(pgWal, name), Buffer.concat([randomBytes(MIB / 2), Buffer.alloc(MIB / 2)]));
    await writeFile(join(pgWal, 'archive_status', `${name}.ready`), '');
  }
  const files = pusherFiles(join(dataDir, SPOOL_DIR, 'push-pitr'));
  await mkdir(files.spool, { recursive: true });
  const archiveOver = (vault: Vault) =>
    new VaultWalArchive(vault, runtime.keys, 'pitr', { compression: 'zstd' });
  const argv = ['node', '/nonexistent/strongbox.mjs'];
  const env = { HOME: '/nonexistent' };
  const stdout: string[] = [];
  const stderr: string[] = [];
  const proc = (extra: Partial<FastPathProcess> = {}): FastPathProcess => ({
    argv,
    execArgv: [],
    env,
    sea: false,
    stdout: (text) => stdout.push(text),
    stderr: (text) => stderr.push(text),
    ...extra,
  });
  /** `strongbox wal-push --plan … --job pitr pg_wal/<name>` through the fast path. */
  const walPush = (name: string, extra: Partial<FastPathProcess> = {}) => {
    const p = proc(extra);
    return walPushFastPath(
      { ...p, argv: [...argv, 'wal-push', '--plan', plan, '--job', 'pitr', join(pgWal, name)] },
      4,
    );
  };
  /** Starts a pusher in this process, serving its socket until the test ends. */
  const startPusher = async (vault: Vault, options: Partial<WalPusherOptions> = {}) => {
    const pusher = new WalPusher({
      archive: archiveOver(vault),
      files,
      job: 'pitr',
      parallel: 4,
      fingerprint: callerFingerprint(plan, 'pitr', env, agentFile(false, argv)),
      log: () => {},
      scanMs: 20,
      ...options,
    });
    const server: Server = await pusher.serve(files.socket);
    const running = pusher.run();
    cleanups.push(async () => {
      pusher.stop('test over');
      await running;
      await new Promise((resolve) => server.close(resolve));
    });
    return { pusher, running };
  };
  const archived = async () => {
    const found: string[] = [];
    for await (const entry of archiveOver(fileVault).list()) found.push(entry.name);
    return found;
  };
  const markers = async () => (await readdir(files.spool)).filter((n) => n.endsWith('.done')).sort();
  /** What PostgreSQL does after exit 0. */
  const acknowledge = (name: string) =>
    rename(join(pgWal, 'archive_status', `${name}.ready`), join(pgWal, 'archive_status', `${name}.done`));
  const until = async (check: () => Promise<boolean>, ms = 10_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return {
    dir,
    pgWal,
    files,
    fileVault,
    archiveOver,
    startPusher,
    walPush,
    archived,
    markers,
    acknowledge,
    until,
    stdout,
    stderr,
  };
}

describe('the resident WAL pusher', () => {
  it('uploads the ready segments in the background and acknowledges each call at once, in order', async () => {
    const { fileVault, startPusher, walPush, archived, acknowledge, until, markers, stdout } = await site();
    const gated = new GatedVault(fileVault);
    await startPusher(gated);
    await until(async () => (await markers()).length === S.length);

    for (const name of S) {
      expect(await walPush(name)).toBe(0);
      await acknowledge(name);
    }

    expect(await archived()).toEqual([...S]);
    expect(gated.maxInFlight).toBe(4);
    // Each segment went up once: a scan never starts a second upload of one that just finished.
    expect(Math.max(...gated.puts.values())).toBe(1);
    expect(stdout.join('')).toMatch(/already archived with the same content/);
    // Markers of segments PostgreSQL is done with are forgotten.
    await until(async () => (await markers()).length === 0);
  });

  it('does not answer a call before the vault confirmed its segment, and writes no marker before', async () => {
    const { fileVault, startPusher, walPush, markers, archived } = await site([S1]);
    const gated = new GatedVault(fileVault);
    const release = gated.hold(S1);
    await startPusher(gated);

    let settled = false;
    const call = walPush(S1).finally(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const before = { settled, markers: await markers(), inFlight: gated.inFlight };
    release();

    expect(before).toEqual({ settled: false, markers: [], inFlight: 1 });
    expect(await call).toBe(0);
    expect(await archived()).toEqual([S1]);
    expect(await markers()).toEqual([`${S1}.done`]);
  });

  it('does not acknowledge a segment the vault no longer has: it uploads it again', async () => {
    const { fileVault, archiveOver, startPusher, walPush, markers, archived, until, stdout } = await site();
    await startPusher(fileVault);
    await until(async () => (await markers()).length === S.length);
    await fileVault.delete([archiveOver(fileVault).keyOf(S2)]);

    expect(await walPush(S2)).toBe(0);

    expect(stdout.join('')).toMatch(new RegExp(`archived .*${S2}`));
    expect(await archived()).toEqual([...S]);
  });

  it('fails calls during a vault outage, leaves no marker, and archives everything once the vault is back', async () => {
    const { fileVault, startPusher, walPush, markers, archived, acknowledge, stderr } = await site();
    const outage = { down: true };
    const flaky = new FaultyVault(fileVault, { put: [{ when: () => outage.down, fail: 'before' }] });
    await startPusher(flaky);
    await new Promise((resolve) => setTimeout(resolve, 300));

    expect(await walPush(S1)).toBe(2);
    expect(stderr.join('')).toMatch(/strongbox: error: wal-push pitr: /);
    expect(await markers()).toEqual([]);
    expect(await archived()).toEqual([]);

    outage.down = false;
    for (const name of S) {
      expect(await walPush(name)).toBe(0);
      await acknowledge(name);
    }
    expect(await archived()).toEqual([...S]);
  });

  it('makes a caller with another plan, environment or agent push itself, and stops', async () => {
    const { fileVault, startPusher, walPush, stderr } = await site([S1]);
    const { running } = await startPusher(fileVault);

    expect(await walPush(S1, { env: { HOME: '/elsewhere' } })).toBeUndefined();

    expect(await running).toMatch(/changed since this pusher started/);
    expect(stderr.join('')).toMatch(/the WAL pusher cannot answer .*: pushing .* in this call/);
  });

  it('stops when idle, and when its data directory is gone', async () => {
    const idle = await site([]);
    const quiet = await idle.startPusher(idle.fileVault, { idleMs: 200 });
    expect(await quiet.running).toMatch(/nothing to do/);

    const gone = await site([S1]);
    const { running } = await gone.startPusher(gone.fileVault);
    await rm(join(gone.dir, 'data'), { recursive: true, force: true });
    expect(await running).toMatch(/data directory is gone/);
  });
});

describe('the wal-push fast path', () => {
  it.each([
    [['wal-push', '--plan', 'p', '--job', 'j', 'pg_wal/x'], true],
    [['wal-push', '-p', 'p', '-j', 'j', '-q', '--json', '--parallel', '8', 'pg_wal/x'], true],
    [['wal-push', '--plan', 'p', '--job', 'j', '--parallel', '1', 'pg_wal/x'], false],
    [['wal-push', '--plan=p', '--job', 'j', 'pg_wal/x'], false],
    [['wal-push', '--plan', 'p', 'pg_wal/x'], false],
    [['wal-push', '--plan', 'p', '--job', 'j', 'a', 'b'], false],
    [['wal-fetch', '--plan', 'p', '--job', 'j', 'x', 'y'], false],
    [['wal-push', '--help'], false],
  ])('%j is answered by the pusher: %s', (args, answered) => {
    expect(parseFastWalPush(args, 4) !== undefined).toBe(answered);
  });
});
