/**
 * The agent with a files job, end to end through the CLI, plus retention (prune) and age checks (verify)
 * driven by a clock moved forward, on a real file vault.
 */
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '#agent/backup';
import { pruneCommand } from '#agent/commands/prune';
import { verifyCommand } from '#agent/commands/verify';
import { openRuntime } from '#agent/runtime';
import { listBackups, readManifest } from '#core/catalog';
import { findJob } from '#core/plan';
import { strongbox } from '#test/support/cli';

let dir: string;
let plan: string;
let source: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-files-'));
  source = join(dir, 'etc', 'app');
  await mkdir(join(source, 'conf.d'), { recursive: true });
  await writeFile(join(source, 'app.yaml'), 'workers: 4\n');
  await writeFile(join(source, 'secret.key'), 'k'.repeat(100));
  await chmod(join(source, 'secret.key'), 0o600);
  await writeFile(join(source, 'run.sh'), '#!/bin/sh\n');
  await chmod(join(source, 'run.sh'), 0o755);
  await writeFile(join(source, 'conf.d', 'shared.conf'), 'x=1\n');
  await chmod(join(source, 'conf.d', 'shared.conf'), 0o640);
  await writeFile(join(source, 'scratch.tmp'), 'not wanted\n');
  await symlink('conf.d/shared.conf', join(source, 'current.conf'));
  await utimes(join(source, 'app.yaml'), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'));
  plan = join(dir, 'plan.yaml');
  await writeFile(
    plan,
    `version: 1
vault: { url: "file://${join(dir, 'vault')}" }
key: { type: local, path: master.key }
retention: { daily: 7d, weekly: 5w, monthly: 12mo, yearly: 7y }
jobs:
  - name: config
    source: { kind: files, paths: ["${source}"], exclude: ["*.tmp"] }
    limits: { warnAge: 25h, criticalAge: 30h }
`,
  );
  expect((await strongbox(['keygen', join(dir, 'master.key')])).code).toBe(0);
});

afterAll(() => rm(dir, { recursive: true, force: true }));

describe('files job through the CLI', () => {
  it('round-trips modes, symlinks, mtimes and excludes', async () => {
    const backup = await strongbox(['backup', '--plan', plan, '--job', 'config', '--json']);
    expect(backup.code, backup.stderr).toBe(0);
    const manifest = await readManifest((await openRuntime(plan, {})).vault, 'config', backup.json.backupId);
    expect(manifest.compression).toEqual({ algorithm: 'zstd', level: 1 });
    const target = join(dir, 'restored');
    const restore = await strongbox([
      'restore',
      '--plan',
      plan,
      '--job',
      'config',
      '--target',
      target,
      '--json',
    ]);
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.json.findings).toEqual([]);

    const copy = join(target, source);
    expect((await lstat(join(copy, 'secret.key'))).mode & 0o777).toBe(0o600);
    expect((await lstat(join(copy, 'run.sh'))).mode & 0o777).toBe(0o755);
    expect((await lstat(join(copy, 'conf.d', 'shared.conf'))).mode & 0o777).toBe(0o640);
    expect(await readlink(join(copy, 'current.conf'))).toBe('conf.d/shared.conf');
    expect((await lstat(join(copy, 'app.yaml'))).mtime.toISOString()).toBe('2020-01-02T03:04:05.000Z');
    expect(await readFile(join(copy, 'secret.key'), 'utf8')).toBe('k'.repeat(100));
    await expect(lstat(join(copy, 'scratch.tmp'))).rejects.toThrow(/ENOENT/);
  });

  it('refuses a --backup-id that already exists and leaves that backup as it was', async () => {
    const first = await strongbox(['backup', '--plan', plan, '--job', 'config', '--json']);
    expect(first.code, first.stderr).toBe(0);
    const vault = (await openRuntime(plan, {})).vault;
    const before = await readManifest(vault, 'config', first.json.backupId);

    const again = await strongbox([
      'backup',
      '--plan',
      plan,
      '--job',
      'config',
      '--backup-id',
      first.json.backupId,
    ]);

    expect(again.code).toBe(2);
    expect(again.lastError).toMatch(new RegExp(`backup ${first.json.backupId} of job config already exists`));
    expect(await readManifest(vault, 'config', first.json.backupId)).toEqual(before);
    // Leave the vault as the later tests expect it.
    const keys: string[] = [];
    for await (const object of vault.list(`backups/config/${first.json.backupId}/`)) keys.push(object.key);
    await vault.delete(keys);
  });

  it('refuses to restore over a non-empty directory and leaves it as it was', async () => {
    const restore = await strongbox(['restore', '--plan', plan, '--job', 'config', '--target', source]);
    expect(restore.code).toBe(2);
    expect(await readFile(join(source, 'app.yaml'), 'utf8')).toBe('workers: 4\n');
  });

  it('rejects --replace for a files job with the reason', async () => {
    const restore = await strongbox([
      'restore',
      '--plan',
      plan,
      '--job',
      'config',
      '--replace',
      '--confirm',
      'config',
    ]);
    expect(restore.code).toBe(2);
    expect(restore.lastError).toMatch(/files jobs cannot be replaced in place/);
  });
});

describe('an interrupted backup', () => {
  it('stops every stage, removes what it wrote and leaves nothing that looks complete', async () => {
    const controller = new AbortController();
    const runtime = await openRuntime(plan, {}, { signal: controller.signal });
    const before = await listBackups(runtime.vault, 'config');
    const put = runtime.vault.put.bind(runtime.vault);
    // Interrupt as soon as the data object starts arriving in the vault, as SIGTERM would.
    runtime.vault.put = (key, body, options) => {
      body.once('data', () => controller.abort(new Error('interrupted by SIGTERM')));
      return put(key, body, options);
    };

    await expect(runBackup(runtime, findJob(runtime.plan, 'config'))).rejects.toThrow();

    expect(await listBackups(runtime.vault, 'config')).toEqual(before);
    const leftovers = (await readdir(join(dir, 'vault'), { recursive: true })).filter((f) =>
      f.includes('partial'),
    );
    expect(leftovers).toEqual([]);
  });
});

describe('retention and age, with the clock moved forward', () => {
  it('verify warns, then goes critical as the newest backup ages', async () => {
    const at = (hours: number) => ({ now: () => new Date(Date.now() + hours * 3_600_000) });
    const fresh = await verifyCommand(await openRuntime(plan, {}, { clock: at(1) }), { jobs: ['config'] });
    expect(fresh.exitCode).toBe(0);
    const late = await verifyCommand(await openRuntime(plan, {}, { clock: at(26) }), { jobs: ['config'] });
    expect(late.exitCode).toBe(1);
    expect(late.text).toMatch(/WARNING {2}config: newest backup is 1d \d+h old \(warning at 1d 1h\)/);
    const critical = await verifyCommand(await openRuntime(plan, {}, { clock: at(31) }), {
      jobs: ['config'],
    });
    expect(critical.exitCode).toBe(2);
  });

  it('prune deletes expired daily backups, keeps the newest, and leaves a dry run alone', async () => {
    // Three more daily backups a day apart, as the clock sees it; the first (yearly) one stays for 7 years.
    const days = [1, 2, 3];
    for (const day of days) {
      const runtime = await openRuntime(
        plan,
        {},
        { clock: { now: () => new Date(Date.now() + day * 86_400_000) } },
      );
      await runBackup(runtime, findJob(runtime.plan, 'config'), { tier: 'daily' });
    }
    const later = await openRuntime(
      plan,
      {},
      { clock: { now: () => new Date(Date.now() + 12 * 86_400_000) } },
    );
    const before = await listBackups(later.vault, 'config');
    expect(before).toHaveLength(4);

    const dry = await pruneCommand(later, { dryRun: true });
    expect(dry.text).toContain('would delete 2 backups');
    expect(await listBackups(later.vault, 'config')).toHaveLength(4);

    await pruneCommand(later, {});
    const after = await listBackups(later.vault, 'config');
    expect(after.map((b) => b.backupId)).toEqual([before[0]?.backupId, before[3]?.backupId]);
  });
});

describe('part sizes from the previous backup', () => {
  it('tells the vault how large each object was in the previous backup, to size its parts', async () => {
    const runtime = await openRuntime(plan, {});
    const job = findJob(runtime.plan, 'config');
    const first = await runBackup(runtime, job);
    const seen: [string, number | undefined][] = [];
    const put = runtime.vault.put.bind(runtime.vault);
    runtime.vault.put = (key, body, options) => {
      seen.push([key.slice(key.lastIndexOf('/') + 1), options?.expectedBytes]);
      return put(key, body, options);
    };
    const second = await runBackup(runtime, job);
    const previous = (await listBackups(runtime.vault, 'config')).find((b) => b.backupId === first.backupId);
    const data = previous?.objects.find((o) => !o.key.endsWith('manifest.json'));
    expect(data?.sizeBytes).toBe(first.storedBytes);
    expect(seen).toEqual([
      [data?.key.slice(data.key.lastIndexOf('/') + 1), first.storedBytes],
      ['manifest.json', undefined],
    ]);
    expect(second.backupId).not.toBe(first.backupId);
  });
});
