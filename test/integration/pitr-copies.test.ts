/**
 * A copy of a point-in-time job is a second place to recover from, for real: the base backup and the WAL
 * archive are copied to a file vault with its own master key, the primary vault then disappears, and a
 * restore `--from` the copy recovers to a point in time — its restore_command fetches from the copy.
 * A WAL file that does not authenticate on the primary is refused and named, never copied.
 */
import { open, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateMasterKeyFile } from '#adapters/keys/local';
import { runBackup } from '#agent/backup';
import { copyCommand } from '#agent/commands/copy';
import { verifyCommand } from '#agent/commands/verify';
import { openCopyRuntime } from '#agent/copy';
import { runRestore } from '#agent/restore';
import type { Runtime } from '#agent/runtime';
import { sourceDriver } from '#agent/sources/index';
import { walArchiveOf } from '#agent/wal';
import { listWal } from '#core/catalog';
import { walKey } from '#core/layout';
import { validatePlan } from '#core/plan';
import { parseRecoveryTarget } from '#core/recovery';
import { type PitrSite, startPitrSite } from '#test/support/pitr';

let site: PitrSite;
let runtime: Runtime;
const target = join('/tmp', `strongbox-pitr-copies-${process.pid}`);

// biome-ignore lint/suspicious/noExplicitAny: the shape depends on the command; tests read it freely
const json = (outcome: { json: unknown }): any => outcome.json;

beforeAll(async () => {
  site = await startPitrSite({ databases: ['app'] });
  await generateMasterKeyFile(join(site.dir, 'offsite.key'));
  const document = JSON.parse(await readFile(site.runtime.planPath, 'utf8'));
  document.copies = [
    {
      name: 'offsite',
      vault: { url: `file://${join(site.dir, 'offsite')}` },
      key: { type: 'local', path: join(site.dir, 'offsite.key') },
    },
  ];
  await writeFile(site.runtime.planPath, JSON.stringify(document));
  await site.chownTree(site.dir);
  runtime = { ...site.runtime, plan: validatePlan(document) };
}, 120_000);

afterAll(async () => {
  await sourceDriver(site.job.source)
    .discard(site.job.source, target, { env: {} })
    .catch(() => {});
  await site?.stop();
});

async function contents(archive: ReturnType<typeof walArchiveOf>['archive'], name: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await archive.fetch(name)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const now = 'SELECT to_char(clock_timestamp() AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')';

describe('a copy of a point-in-time job', () => {
  it('holds the WAL archive too: with the primary vault gone, a restore --from the copy reaches a point in time', async () => {
    const { pg, job } = site;
    await pg.psql("CREATE TABLE t (phase text); INSERT INTO t VALUES ('base')", 'app');
    await runBackup(runtime, job);
    await pg.psql("INSERT INTO t VALUES ('a')", 'app');
    await site.archiveEverything();
    const between = await pg.psql(now);
    await pg.psql("INSERT INTO t VALUES ('b')", 'app');
    const last = await site.archiveEverything();

    const copied = await copyCommand(runtime, { to: 'offsite' });
    expect(copied.exitCode).toBe(0);
    const wal = json(copied).copies[0].wal;
    expect(wal.copied).toBeGreaterThan(1);
    expect(wal.failed).toEqual([]);
    expect(copied.text).toMatch(/WAL pitr → offsite: copied \d+ files/);

    const offsite = await openCopyRuntime(runtime, 'offsite');
    const onCopy = (await listWal(offsite.vault, 'pitr')).map((f) => f.name);
    expect(onCopy).toContain(last);
    // The copy's own key opens it; the bytes are the primary's.
    expect(
      (await contents(walArchiveOf(offsite, 'pitr').archive, last)).equals(
        await contents(walArchiveOf(runtime, 'pitr').archive, last),
      ),
    ).toBe(true);
    const verified = await verifyCommand(offsite, { jobs: ['pitr'], copies: false });
    expect(json(verified).findings.filter((f: { check: string }) => f.check === 'wal-gap')).toEqual([]);

    await site.chownTree(site.dir);
    const primaryVault = join(site.dir, 'vault');
    await rename(primaryVault, `${primaryVault}-gone`);
    try {
      const restored = await runRestore(offsite, job, {
        target,
        recoverTo: parseRecoveryTarget(`time:${between}`),
        start: true,
      });
      expect(restored.checks.filter((c) => !c.passed)).toEqual([]);
      expect(await site.psqlOn(target, 'SELECT phase FROM t ORDER BY phase', 'app')).toBe('a\nbase');
      expect(await readFile(join(target, 'postgresql.auto.conf'), 'utf8')).toMatch(
        /restore_command = '.* wal-fetch --plan .* --job pitr --from offsite -q %f %p'/,
      );
    } finally {
      await rename(`${primaryVault}-gone`, primaryVault);
    }
  }, 300_000);

  it('copies no WAL file twice, and refuses one that does not authenticate on the primary, naming it', async () => {
    await site.pg.psql("INSERT INTO t VALUES ('c')", 'app');
    const bad = await site.archiveEverything();
    const file = join(site.dir, 'vault', walKey('pitr', bad.slice(0, 8), bad));
    const handle = await open(file, 'r+');
    try {
      const { size } = await handle.stat();
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, size - 40);
      byte[0] = (byte[0] as number) ^ 0xff;
      await handle.write(byte, 0, 1, size - 40);
    } finally {
      await handle.close();
    }

    const copied = await copyCommand(runtime, { to: 'offsite' });

    expect(copied.exitCode).toBe(2);
    const wal = json(copied).copies[0].wal;
    expect(wal.present).toBeGreaterThan(1);
    expect(wal.failed.map((f: { name: string }) => f.name)).toEqual([bad]);
    expect(copied.text).toContain(`FAILED  offsite pitr WAL ${bad}`);
    const offsite = await openCopyRuntime(runtime, 'offsite');
    expect((await listWal(offsite.vault, 'pitr')).map((f) => f.name)).not.toContain(bad);
  }, 120_000);
});
