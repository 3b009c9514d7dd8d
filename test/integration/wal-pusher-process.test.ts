/**
 * The resident WAL pusher as PostgreSQL meets it: the agent's one-file bundle run once per segment,
 * starting its detached pusher. A burst of segments from a real cluster is archived in order and
 * without a failed call; a pusher killed in the middle of an upload loses nothing — the call waiting
 * for it pushes its file itself, the next call starts a new pusher that takes over the dead one's
 * lock, and every segment is in the vault with its exact content.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalKeyProvider } from '#adapters/keys/local';
import { FileVault } from '#adapters/vaults/file';
import { VaultWalArchive } from '#agent/wal-archive';
import { pusherFiles, SPOOL_DIR } from '#agent/wal-pusher-protocol';
import { parseSegment, segmentName, WAL_SEGMENT_NAME } from '#core/wal';
import { type PitrSite, startPitrSite } from '#test/support/pitr';
import { buildAgentBundle } from '../../scripts/lib/agent-bundle';

const sh = promisify(execFile);
const MIB = 1024 * 1024;

/** Runs the bundle and resolves with its exit code and output. */
function run(
  bundle: string,
  args: string[],
  cwd: string,
): { child: ChildProcess; done: Promise<{ code: number; stderr: string }> } {
  const child = spawn(process.execPath, [bundle, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const done = new Promise<{ code: number; stderr: string }>((resolve) =>
    child.once('close', (code) => resolve({ code: code ?? 1, stderr })),
  );
  return { child, done };
}

async function until<T>(check: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await check();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const pidOf = async (lock: string) =>
  (JSON.parse(await readFile(lock, 'utf8').catch(() => '{}')) as { pid?: number }).pid;
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('a pusher killed in the middle of an upload', () => {
  let work: string;
  let bundle: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'strongbox-pusher-'));
    bundle = join(work, 'strongbox.mjs');
    await buildAgentBundle(join(import.meta.dirname, '..', '..'), bundle);
  }, 120_000);
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('loses nothing: the waiting call pushes itself, the next call takes over the stale lock', async () => {
    // Prepare: a data directory with six 16 MiB segments marked ready, a file vault and a plan.
    const dataDir = join(work, 'data');
    const pgWal = join(dataDir, 'pg_wal');
    await mkdir(join(pgWal, 'archive_status'), { recursive: true });
    const keygen = await sh(process.execPath, [bundle, 'keygen', join(work, 'master.key')]);
    expect(keygen.stderr).toBe('');
    const plan = join(work, 'plan.yaml');
    const vaultDir = join(work, 'vault');
    await writeFile(
      plan,
      `version: 1\nvault: { url: "file://${vaultDir}" }\nkey: { type: local, path: master.key }\njobs:\n  - name: pitr\n    source: { kind: postgres-physical, port: 5432 }\n`,
    );
    const names = Array.from({ length: 6 }, (_, i) => segmentName(1, 3 + i, 256));
    const contents = new Map<string, Buffer>();
    for (const name of names) {
      const data = Buffer.concat([randomBytes(8 * MIB), Buffer.alloc(8 * MIB)]);
      contents.set(name, data);
      await writeFile(join(pgWal, name), data);
      await writeFile(join(pgWal, 'archive_status', `${name}.ready`), '');
    }
    const files = pusherFiles(join(dataDir, SPOOL_DIR, 'push-pitr'));
    const walPush = (name: string) =>
      run(bundle, ['wal-push', '--plan', plan, '--job', 'pitr', `pg_wal/${name}`], dataDir);
    const walDir = join(vaultDir, 'wal', 'pitr', '00000001');

    // Act: the first call starts the pusher; it is killed while an upload is half written.
    const first = walPush(names[0] as string);
    const killed = await until(async () => {
      const partial = (await readdir(walDir).catch(() => [] as string[])).some((n) =>
        n.includes('.partial-'),
      );
      const pid = await pidOf(files.lock);
      return partial && pid ? pid : undefined;
    });
    process.kill(killed, 'SIGKILL');
    const answers = [await first.done];
    await rename(
      join(pgWal, 'archive_status', `${names[0]}.ready`),
      join(pgWal, 'archive_status', `${names[0]}.done`),
    );
    for (const name of names.slice(1)) {
      const call = await walPush(name).done;
      answers.push(call);
      if (call.code === 0)
        await rename(
          join(pgWal, 'archive_status', `${name}.ready`),
          join(pgWal, 'archive_status', `${name}.done`),
        );
    }

    // Assess: every call exit 0, every segment in the vault with its content, the lock taken over.
    expect(answers.map((a) => a.code)).toEqual(names.map(() => 0));
    expect(answers[0]?.stderr).toMatch(/the WAL pusher ended without answering/);
    const archive = new VaultWalArchive(
      new FileVault(`file://${vaultDir}`),
      new LocalKeyProvider(join(work, 'master.key')),
      'pitr',
      { compression: 'zstd' },
    );
    for (const name of names) {
      const chunks: Buffer[] = [];
      for await (const chunk of await archive.fetch(name)) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(contents.get(name) as Buffer), name).toBe(true);
    }
    const log = await readFile(files.log, 'utf8');
    expect(log).toContain(`took over the lock of pid ${killed}`);
    const successor = (await pidOf(files.lock)) as number;
    expect(successor).not.toBe(killed);

    // The data directory goes away: the pusher stops.
    await rm(dataDir, { recursive: true, force: true });
    await until(async () => (alive(successor) ? undefined : true), 10_000);
  }, 180_000);
});

describe('a vault outage while the pusher runs', () => {
  let work: string;
  let bundle: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'strongbox-pusher-outage-'));
    bundle = join(work, 'strongbox.mjs');
    await buildAgentBundle(join(import.meta.dirname, '..', '..'), bundle);
  }, 120_000);
  afterAll(async () => {
    await rm(join(work, 'data'), { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it('fails the calls, writes no marker, alerts once and writes the metrics; afterwards everything is archived', async () => {
    // Prepare: ready segments, a plan alerting by e-mail (a fake sendmail) and writing a metrics textfile.
    const dataDir = join(work, 'data');
    const pgWal = join(dataDir, 'pg_wal');
    await mkdir(join(pgWal, 'archive_status'), { recursive: true });
    await sh(process.execPath, [bundle, 'keygen', join(work, 'master.key')]);
    const sendmail = join(work, 'sendmail');
    await writeFile(sendmail, `#!/bin/sh\ncat > "${work}/mail.$$"\n`, { mode: 0o755 });
    const textfile = join(work, 'strongbox.prom');
    const vaultDir = join(work, 'vault');
    const plan = join(work, 'plan.yaml');
    await writeFile(
      plan,
      `version: 1\nvault: { url: "file://${vaultDir}" }\nkey: { type: local, path: master.key }\nnotify:\n  email: { to: [ops@example.com], sendmail: ${sendmail} }\nmetrics: { textfile: ${textfile} }\njobs:\n  - name: pitr\n    source: { kind: postgres-physical, port: 5432 }\n`,
    );
    const names = Array.from({ length: 4 }, (_, i) => segmentName(1, 3 + i, 256));
    for (const name of names) {
      await writeFile(join(pgWal, name), Buffer.concat([randomBytes(MIB), Buffer.alloc(MIB)]));
      await writeFile(join(pgWal, 'archive_status', `${name}.ready`), '');
    }
    // The outage: where the vault keeps this timeline's WAL is a file, so every put fails (even as root).
    await mkdir(join(vaultDir, 'wal', 'pitr'), { recursive: true });
    const blocked = join(vaultDir, 'wal', 'pitr', '00000001');
    await writeFile(blocked, 'not a directory');
    const spool = join(dataDir, SPOOL_DIR, 'push-pitr');
    const walPush = (name: string) =>
      run(bundle, ['wal-push', '--plan', plan, '--job', 'pitr', `pg_wal/${name}`], dataDir).done;

    // Act: PostgreSQL's tries during the outage, then after it.
    const during = [await walPush(names[0] as string), await walPush(names[0] as string)];
    const markersDuring = (await readdir(spool)).filter((n) => n.endsWith('.done'));
    const mailsDuring = (await readdir(work)).filter((n) => n.startsWith('mail.'));
    await rm(blocked);
    const after: number[] = [];
    for (const name of names) {
      const call = await walPush(name);
      after.push(call.code);
      if (call.code === 0)
        await rename(
          join(pgWal, 'archive_status', `${name}.ready`),
          join(pgWal, 'archive_status', `${name}.done`),
        );
    }

    // Assess
    expect(during.map((c) => c.code)).toEqual([2, 2]);
    expect(during[0]?.stderr).toMatch(/strongbox: error: wal-push pitr: /);
    expect(markersDuring).toEqual([]);
    expect(mailsDuring).toHaveLength(1);
    const mail = await readFile(join(work, mailsDuring[0] as string), 'utf8');
    expect(mail).toContain('WAL archiving failed: pitr');
    expect(after).toEqual([0, 0, 0, 0]);
    expect((await readdir(join(vaultDir, 'wal', 'pitr', '00000001'))).sort()).toEqual(names);
    await until(async () =>
      (await readFile(textfile, 'utf8').catch(() => '')).includes('command="wal-push"') ? true : undefined,
    );
  }, 180_000);
});

describe('a burst of segments from a real cluster', () => {
  let site: PitrSite;
  beforeAll(async () => {
    site = await startPitrSite({ databases: ['app'] });
  }, 120_000);
  afterAll(async () => {
    await site?.stop();
  });

  it('is archived in order through the pusher, without a failed call', async () => {
    const { pg } = site;
    await pg.psql('CREATE TABLE t (id serial, pad text)', 'app');
    const first = await site.archiveEverything();
    for (let i = 0; i < 12; i++) {
      await pg.psql('INSERT INTO t (pad) SELECT md5(g::text) FROM generate_series(1, 2000) g', 'app');
      await pg.psql('SELECT pg_switch_wal()');
    }
    const last = await site.archiveEverything(180);

    const names: string[] = [];
    for await (const entry of new VaultWalArchive(site.runtime.vault, site.runtime.keys, 'pitr', {
      compression: 'zstd',
    }).list())
      if (WAL_SEGMENT_NAME.test(entry.name) && entry.name >= first && entry.name <= last)
        names.push(entry.name);
    const { number } = parseSegment(first, 16 * MIB);
    expect(names).toEqual(Array.from({ length: names.length }, (_, i) => segmentName(1, number + i, 256)));
    expect(names.at(-1)).toBe(last);
    expect(names.length).toBeGreaterThanOrEqual(13);
    expect(await pg.psql('SELECT failed_count FROM pg_stat_archiver')).toBe('0');
    const log = await readFile(join(pg.dataDir, SPOOL_DIR, 'push-pitr', 'pusher.log'), 'utf8');
    expect(log).toMatch(/wal-pusher pitr \[\d+\]: started/);
  }, 240_000);
});
