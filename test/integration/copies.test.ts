/**
 * Copies across vaults (the 3-2-1 rule), for real: a files job backed up into a file vault and copied to
 * s3rver with another master key, and the other way round; restores and deep verifies from the copy;
 * a copy interrupted by injected faults (adapters/vaults/faulty) that leaves nothing complete-looking
 * and is finished by the next run; a corrupted object on the primary that is refused; safety backups
 * and tier filters; and each copy's retention applied by prune with the clock moved forward.
 */

import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateMasterKeyFile, keyFingerprint, readMasterKeyFile } from '#adapters/keys/local';
import { FaultyVault } from '#adapters/vaults/faulty';
import { runBackup } from '#agent/backup';
import { backupCommand } from '#agent/commands/backup';
import { copyCommand } from '#agent/commands/copy';
import { doctorCommand } from '#agent/commands/doctor';
import { drillCommand } from '#agent/commands/drill';
import { listCommand } from '#agent/commands/list';
import type { Outcome } from '#agent/commands/outcome';
import { pruneVaults } from '#agent/commands/prune';
import { restoreCommand } from '#agent/commands/restore';
import { verifyCommand } from '#agent/commands/verify';
import { copyJob, openCopyRuntime } from '#agent/copy';
import { openRuntime, type Runtime } from '#agent/runtime';
import { listBackups, readManifest } from '#core/catalog';
import { IntegrityError } from '#core/errors';
import { manifestKey, objectKey } from '#core/layout';
import { serializeManifest } from '#core/manifest';
import { findCopy, findJob } from '#core/plan';
import type { Clock, PutOptions, Vault } from '#core/ports';
import { strongbox } from '#test/support/cli';
import { S3RVER_CREDENTIALS, type S3rverInstance, startS3rver } from '#test/support/s3rver';

const env = {
  AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  AWS_REGION: 'us-east-1',
};
const DAY_MS = 86_400_000;

// biome-ignore lint/suspicious/noExplicitAny: the shape depends on the command; tests read it freely
const json = (outcome: Outcome): any => outcome.json;

let s3: S3rverInstance;
let dir: string;
let source: string;
let prefixNumber = 0;

beforeAll(async () => {
  // Create-only puts, as S3 enforces them (If-None-Match: *): a resumed copy must not write a key twice.
  s3 = await startS3rver('backups-test', { conditionalWrites: true });
  dir = await mkdtemp(join(tmpdir(), 'strongbox-copies-'));
  source = join(dir, 'srv', 'app');
  await mkdir(join(source, 'conf.d'), { recursive: true });
  await writeFile(join(source, 'app.yaml'), 'workers: 4\n');
  await writeFile(join(source, 'conf.d', 'a.conf'), 'x=1\n');
  // Incompressible and several chunks long, so a copy moves real multi-chunk ciphertext.
  await writeFile(join(source, 'model.bin'), randomBytes(700 * 1024));
  await generateMasterKeyFile(join(dir, 'primary.key'));
  await generateMasterKeyFile(join(dir, 'offsite.key'));
});

afterAll(async () => {
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A vault block (YAML flow mapping) on s3rver under a fresh prefix. */
function s3Vault(extra = ''): string {
  prefixNumber += 1;
  return `{ url: "s3://${s3.bucket}/copies-${prefixNumber}", endpoint: "${s3.endpoint}", forcePathStyle: true, checksums: when-required${extra} }`;
}

/** Writes a plan in its own directory (sharing the key files) and returns its path. */
async function writePlan(name: string, vault: string, copies: string): Promise<string> {
  const planDir = join(dir, name);
  await mkdir(planDir, { recursive: true });
  const path = join(planDir, 'plan.yaml');
  await writeFile(
    path,
    `version: 1
vault: ${vault}
key: { type: local, path: ../primary.key }
retention: { daily: 7d, weekly: 5w, monthly: 12mo, yearly: 7y }
jobs:
  - name: app
    source: { kind: files, paths: ["${source}"] }
copies:
${copies.replace(/\n$/, '')}
`,
  );
  return path;
}

/** A vault that records the key (and options) of every put, then passes it on. */
function recordingPuts(vault: Vault, keys: string[], options: (PutOptions | undefined)[] = []): Vault {
  return {
    url: vault.url,
    put: (key, body, putOptions) => {
      keys.push(key);
      options.push(putOptions);
      return vault.put(key, body, putOptions);
    },
    get: (key, getOptions) => vault.get(key, getOptions),
    head: (key) => vault.head(key),
    list: (prefix) => vault.list(prefix),
    delete: (keys_) => vault.delete(keys_),
  };
}

function clockAt(offsetDays: number): Clock {
  const base = Date.now();
  return { now: () => new Date(base + offsetDays * DAY_MS) };
}

async function restoredFiles(target: string): Promise<string[]> {
  const found = await readdir(target, { recursive: true });
  return found.map(String).sort();
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  return (await readFile(a)).equals(await readFile(b));
}

describe('file vault → s3rver with another key', () => {
  let plan: string;
  let runtime: Runtime;

  beforeAll(async () => {
    plan = await writePlan(
      'file-to-s3',
      `{ url: "file://${join(dir, 'file-to-s3', 'vault')}" }`,
      `  - name: offsite
    vault: ${s3Vault(', storageClass: STANDARD_IA')}
    key: { type: local, path: ../offsite.key }
`,
    );
    runtime = await openRuntime(plan, env);
  });

  it('verify names the backups a copy lacks, copy fills it, and a second run copies nothing', async () => {
    const backup = await backupCommand(runtime, {});
    expect(backup.exitCode).toBe(0);
    const before = await verifyCommand(runtime, { copies: true });
    expect(json(before).findings).toContainEqual(
      expect.objectContaining({ check: 'copy-missing', job: 'app', severity: 'warning' }),
    );

    const copied = await copyCommand(runtime, {});
    expect(copied.exitCode).toBe(0);
    expect(json(copied).copies[0].backups).toEqual([
      expect.objectContaining({ action: 'copied', copy: 'offsite' }),
    ]);
    const again = await copyCommand(runtime, { to: 'offsite' });
    expect(json(again).copies[0].backups).toEqual([expect.objectContaining({ action: 'present' })]);

    const after = await verifyCommand(runtime, { copies: true });
    expect(json(after).findings.filter((f: { check: string }) => f.check.startsWith('copy-'))).toEqual([]);
  });

  it("the copy's manifest holds the data key wrapped by the copy's key, and the same stored bytes", async () => {
    const offsite = await openCopyRuntime(runtime, 'offsite');
    const [listing] = await listBackups(offsite.vault, 'app');
    expect(listing?.complete).toBe(true);
    const id = listing?.backupId as string;
    const original = await readManifest(runtime.vault, 'app', id);
    const copy = await readManifest(offsite.vault, 'app', id);
    const offsiteFingerprint = keyFingerprint(await readMasterKeyFile(join(dir, 'offsite.key')));
    expect(copy.encryption.key).toEqual({ type: 'local', fingerprint: offsiteFingerprint });
    expect(copy.encryption.key).not.toEqual(original.encryption.key);
    expect(copy.encryption.wrappedKey).not.toBe(original.encryption.wrappedKey);
    expect(copy.objects.map((o) => o.sha256)).toEqual(original.objects.map((o) => o.sha256));
    // The primary's key cannot open the copy: it really is wrapped for the other key.
    await expect(
      runtime.keys.decryptDataKey(copy.encryption.wrappedKey, copy.encryption.key, copy.encryption.context),
    ).rejects.toThrow(/master key/);
    // Storage class and tags of the copy's tier.
    const stored = await offsite.vault.head(objectKey('app', id, copy.objects[0]?.name as string));
    expect(stored?.storageClass).toBe('STANDARD_IA');
    expect(copy.objects[0]?.storageClass).toBe('STANDARD_IA');
    expect((await offsite.vault.head(manifestKey('app', id)))?.storageClass).toBe('STANDARD');
  });

  it('list, verify --deep and restore --from the copy work with the copy alone', async () => {
    const copy = await strongbox(['copy', '--plan', plan, '--to', 'offsite', '--json'], env);
    expect(copy.code).toBe(0);
    expect(copy.json.copies[0].backups).toEqual([expect.objectContaining({ action: 'present' })]);

    const list = await strongbox(['list', '--plan', plan, '--from', 'offsite', '--json'], env);
    expect(list.code).toBe(0);
    expect(list.json.backups).toEqual([expect.objectContaining({ job: 'app', complete: true })]);

    const deep = await strongbox(['verify', '--plan', plan, '--from', 'offsite', '--deep', '--json'], env);
    expect(deep.json.jobs[0].deep).toEqual(expect.objectContaining({ sourceBytes: expect.any(Number) }));
    expect(deep.code).toBe(0);

    // The primary vault is gone: the restore reads only the copy.
    await rm(join(dir, 'file-to-s3', 'vault'), { recursive: true, force: true });
    const target = join(dir, 'file-to-s3', 'restored');
    const restored = await strongbox(
      ['restore', '--plan', plan, '--from', 'offsite', '--job', 'app', '--target', target, '--json'],
      env,
    );
    expect(restored.lastError).not.toMatch(/error/);
    expect(restored.code).toBe(0);
    const inside = join(target, source.slice(1));
    expect(await restoredFiles(inside)).toEqual(['app.yaml', 'conf.d', 'conf.d/a.conf', 'model.bin']);
    expect(await sameBytes(join(inside, 'model.bin'), join(source, 'model.bin'))).toBe(true);
  });

  it('an unknown copy and --from with --replace are refused with one error line', async () => {
    const unknown = await strongbox(['list', '--plan', plan, '--from', 'nas'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.lastError).toMatch(
      /^strongbox: error: .*copy 'nas' is not in the plan \(copies: offsite\)/,
    );
    const replace = await strongbox(
      ['restore', '--plan', plan, '--from', 'offsite', '--job', 'app', '--replace', '--confirm', 'app'],
      env,
    );
    expect(replace.code).toBe(2);
    expect(replace.lastError).toMatch(/--from and --replace/);
  });
});

describe('s3rver → file vault with another key', () => {
  it('copies a backup of an S3 primary to a NAS directory that does not exist yet, and restores it', async () => {
    const nas = join(dir, 's3-to-file', 'nas', 'not-yet');
    const plan = await writePlan(
      's3-to-file',
      s3Vault(),
      `  - name: nas
    vault: { url: "file://${nas}" }
    key: { type: local, path: ../offsite.key }
`,
    );
    const runtime = await openRuntime(plan, env);
    const backup = await backupCommand(runtime, { copy: true });
    expect(backup.exitCode).toBe(0);
    expect(json(backup).copies[0].backups).toEqual([
      expect.objectContaining({ action: 'copied', copy: 'nas' }),
    ]);
    const copyRuntime = await openCopyRuntime(runtime, 'nas');
    const restored = await restoreCommand(copyRuntime, {
      job: 'app',
      target: join(dir, 's3-to-file', 'restored'),
    });
    expect(restored.exitCode).toBe(0);
    const inside = join(dir, 's3-to-file', 'restored', source.slice(1));
    expect(await sameBytes(join(inside, 'model.bin'), join(source, 'model.bin'))).toBe(true);

    const doctor = json(await doctorCommand(runtime, {}));
    expect(doctor.checks).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ subject: 'copy nas: key (local)', ok: true }),
        expect.objectContaining({ subject: `copy nas: vault file://${nas}`, ok: true }),
      ]),
    );

    const drill = await drillCommand(copyRuntime, {});
    expect(drill.exitCode).toBe(0);
    expect(json(drill).findings).toEqual([]);
  });

  it('backup --copy in a plan without copies is refused before anything is backed up', async () => {
    const plan = await writePlan('no-copies', `{ url: "file://${join(dir, 'no-copies', 'vault')}" }`, '  []');
    const runtime = await openRuntime(plan, env);
    await expect(backupCommand(runtime, { copy: true })).rejects.toThrow(/the plan names no copy/);
    expect(await listBackups(runtime.vault, 'app')).toEqual([]);
  });
});

describe('a backup of several data objects', () => {
  it('is copied whole: every object, each checked, and it reads back from the copy', async () => {
    const plan = await writePlan(
      'multi',
      `{ url: "file://${join(dir, 'multi', 'vault')}" }`,
      `  - name: nas
    vault: { url: "file://${join(dir, 'multi', 'nas')}" }
    key: { type: local, path: ../offsite.key }
`,
    );
    const runtime = await openRuntime(plan, env);
    const { backupId } = await runBackup(runtime, findJob(runtime.plan, 'app'));
    // A second data object (a copy of the first, encrypted under the same data key) and a manifest
    // naming both: the shape of a multi-object backup, whatever source made it.
    const manifest = await readManifest(runtime.vault, 'app', backupId);
    const first = manifest.objects[0] as (typeof manifest.objects)[number];
    const extra = { ...first, name: `second.${first.name}` };
    await runtime.vault.put(
      objectKey('app', backupId, extra.name),
      await runtime.vault.get(objectKey('app', backupId, first.name)),
    );
    // Vaults are create-only: the manifest is replaced as an operator would, delete then put.
    await runtime.vault.delete([manifestKey('app', backupId)]);
    await runtime.vault.put(
      manifestKey('app', backupId),
      Readable.from([serializeManifest({ ...manifest, objects: [first, extra] })]),
    );

    expect(json(await copyCommand(runtime, {})).copies[0].backups).toEqual([
      expect.objectContaining({ backupId, action: 'copied', objects: 2 }),
    ]);
    const nas = await openCopyRuntime(runtime, 'nas');
    const [listing] = await listBackups(nas.vault, 'app');
    expect(listing?.objects.map((o) => o.key.split('/').at(-1)).sort()).toEqual(
      [first.name, extra.name, 'manifest.json'].sort(),
    );
    const deep = json(await verifyCommand(nas, { deep: true }));
    expect(deep.jobs[0].deep).toEqual(
      expect.objectContaining({
        backupId,
        sourceBytes: 2 * first.sourceBytes,
        storedBytes: 2 * first.storedBytes,
      }),
    );
    expect(deep.findings.filter((f: { severity: string }) => f.severity === 'critical')).toEqual([]);
  });
});

describe('an interrupted copy', () => {
  let runtime: Runtime;
  let backupId: string;

  beforeAll(async () => {
    const plan = await writePlan(
      'interrupted',
      `{ url: "file://${join(dir, 'interrupted', 'vault')}" }`,
      `  - name: offsite
    vault: ${s3Vault()}
    key: { type: local, path: ../offsite.key }
`,
    );
    runtime = await openRuntime(plan, env);
    backupId = (await runBackup(runtime, findJob(runtime.plan, 'app'))).backupId;
  });

  it('whose upload breaks midway leaves nothing on the copy', async () => {
    const target = await openCopyRuntime(runtime, 'offsite');
    const faulty = new FaultyVault(target.vault, {
      put: [{ when: (key) => key.endsWith('.sbx'), fail: 'cut', afterBytes: 100 * 1024 }],
    });
    const copy = findCopy(runtime.plan, 'offsite');
    const result = await copyJob(runtime, { ...target, vault: faulty }, copy, findJob(runtime.plan, 'app'));
    expect(faulty.injected.length).toBeGreaterThan(0);
    expect(result.failures).toEqual([expect.objectContaining({ backupId })]);
    expect(await listBackups(target.vault, 'app')).toEqual([]);
  });

  it.each([
    [
      'the manifest is stored but its answer is lost',
      { when: (key: string) => key.endsWith('manifest.json'), fail: 'after' as const },
    ],
    [
      'the vault misreports the bytes of a data object',
      {
        when: (key: string) => key.endsWith('.sbx'),
        fail: 'misreport' as const,
        reportBytes: (n: number) => n - 1,
      },
    ],
  ])('where %s leaves no backup on the copy', async (_what, fault) => {
    const target = await openCopyRuntime(runtime, 'offsite');
    const faulty = new FaultyVault(target.vault, { put: [fault] });
    const copy = findCopy(runtime.plan, 'offsite');
    const result = await copyJob(runtime, { ...target, vault: faulty }, copy, findJob(runtime.plan, 'app'));
    expect(faulty.injected.length).toBeGreaterThan(0);
    expect(result.failures).toEqual([expect.objectContaining({ backupId })]);
    expect(await listBackups(target.vault, 'app')).toEqual([]);
  });

  it('whose manifest put fails and whose cleanup is refused leaves data without a manifest, not a backup; the next run finishes it', async () => {
    const target = await openCopyRuntime(runtime, 'offsite');
    const faulty = new FaultyVault(target.vault, {
      put: [{ when: (key) => key.endsWith('manifest.json'), fail: 'before' }],
      delete: [{}],
    });
    const copy = findCopy(runtime.plan, 'offsite');
    const job = findJob(runtime.plan, 'app');
    const failed = await copyJob(runtime, { ...target, vault: faulty }, copy, job);
    expect(failed.failures).toHaveLength(1);
    const left = await listBackups(target.vault, 'app');
    expect(left).toEqual([expect.objectContaining({ backupId, complete: false })]);
    expect(left[0]?.objects.length).toBeGreaterThan(0);
    const listed = await listCommand(target, {});
    expect(json(listed).backups).toEqual([expect.objectContaining({ backupId, complete: false })]);

    const puts: string[] = [];
    const finished = await copyJob(
      runtime,
      { ...target, vault: recordingPuts(target.vault, puts) },
      copy,
      job,
    );
    expect(finished.failures).toEqual([]);
    expect(finished.backups).toEqual([expect.objectContaining({ backupId, action: 'copied' })]);
    // Resumed: the data object the interrupted run left is intact, so only the manifest is written.
    expect(puts.map((p) => p.split('/').at(-1))).toEqual(['manifest.json']);
    const deep = await verifyCommand(target, { deep: true, backupId });
    expect(json(deep).jobs[0].deep.backupId).toBe(backupId);
    expect(json(deep).findings.filter((f: { severity: string }) => f.severity === 'critical')).toEqual([]);
  });
  it('replaces a leftover object that is not what the manifest names, with the tags of its tier', async () => {
    const target = await openCopyRuntime(runtime, 'offsite');
    const job = findJob(runtime.plan, 'app');
    const second = await runBackup(runtime, job);
    const manifest = await readManifest(runtime.vault, 'app', second.backupId);
    const key = objectKey('app', second.backupId, manifest.objects[0]?.name as string);
    await target.vault.put(key, Readable.from([Buffer.from('cut short by a crash')]));

    const puts: string[] = [];
    const options: (PutOptions | undefined)[] = [];
    const result = await copyJob(
      runtime,
      { ...target, vault: recordingPuts(target.vault, puts, options) },
      findCopy(runtime.plan, 'offsite'),
      job,
    );
    expect(result.failures).toEqual([]);
    expect(result.backups).toEqual(
      expect.arrayContaining([expect.objectContaining({ backupId: second.backupId, action: 'copied' })]),
    );
    // The data objects carry the tier and job tags lifecycle rules filter on; the manifest only the job.
    expect(puts.map((p, n) => [p.split('/').at(-1), options[n]?.tags, options[n]?.storageClass])).toEqual([
      [manifest.objects[0]?.name, { 'strongbox:tier': manifest.tier, 'strongbox:job': 'app' }, 'STANDARD'],
      ['manifest.json', { 'strongbox:job': 'app' }, 'STANDARD'],
    ]);
    // Two backups may start in one second: their ids then sort by random suffix, so name the one to read.
    const deep = await verifyCommand(target, { deep: true, backupId: second.backupId });
    expect(json(deep).jobs[0].deep.backupId).toBe(second.backupId);
    expect(json(deep).findings.filter((f: { severity: string }) => f.severity === 'critical')).toEqual([]);
  });
});

describe('what is not copied', () => {
  it('a corrupted object on the primary is refused, not copied, and the run fails naming it', async () => {
    const plan = await writePlan(
      'corrupt',
      `{ url: "file://${join(dir, 'corrupt', 'vault')}" }`,
      `  - name: nas
    vault: { url: "file://${join(dir, 'corrupt', 'nas')}" }
`,
    );
    const runtime = await openRuntime(plan, env);
    const { backupId } = await runBackup(runtime, findJob(runtime.plan, 'app'));
    const manifest = await readManifest(runtime.vault, 'app', backupId);
    const path = join(
      dir,
      'corrupt',
      'vault',
      objectKey('app', backupId, manifest.objects[0]?.name as string),
    );
    const handle = await open(path, 'r+');
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, 5000);
    byte[0] = (byte[0] as number) ^ 0x01;
    await handle.write(byte, 0, 1, 5000);
    await handle.close();

    const outcome = await copyCommand(runtime, {});
    expect(outcome.exitCode).toBe(2);
    expect(outcome.failure).toBeDefined();
    expect(outcome.text).toMatch(/does not match its manifest/);
    const target = await openCopyRuntime(runtime, 'nas');
    expect(await listBackups(target.vault, 'app')).toEqual([]);
    const failures = json(outcome).copies[0].failed;
    expect(failures).toEqual([
      expect.objectContaining({ backupId, error: expect.objectContaining({ kind: 'integrity' }) }),
    ]);
    expect(IntegrityError).toBeDefined();
  });

  it('safety backups and tiers outside a copy filter stay on the primary unless a backup is asked for by id', async () => {
    const plan = await writePlan(
      'filters',
      `{ url: "file://${join(dir, 'filters', 'vault')}" }`,
      `  - name: offsite
    vault: { url: "file://${join(dir, 'filters', 'offsite')}" }
    tiers: [weekly, monthly, yearly]
`,
    );
    const runtime = await openRuntime(plan, env);
    const job = findJob(runtime.plan, 'app');
    const yearly = await runBackup(runtime, job, { tier: 'yearly' });
    const daily = await runBackup(runtime, job, { tier: 'daily' });
    const safety = await runBackup(runtime, job, { tier: 'daily', purpose: 'safety' });
    const outcome = await copyCommand(runtime, {});
    const [report] = json(outcome).copies;
    expect(report.backups.map((b: { backupId: string }) => b.backupId)).toEqual([yearly.backupId]);
    expect(report.skipped).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ backupId: daily.backupId, reason: expect.stringMatching(/daily/) }),
        expect.objectContaining({ backupId: safety.backupId, reason: expect.stringMatching(/safety/) }),
      ]),
    );
    // The filtered copy is not "missing" its daily or safety backups.
    const verified = await verifyCommand(runtime, { copies: true });
    expect(json(verified).findings.filter((f: { check: string }) => f.check === 'copy-missing')).toEqual([]);

    const asked = await copyCommand(runtime, { jobs: ['app'], backupId: safety.backupId });
    expect(json(asked).copies[0].backups).toEqual([
      expect.objectContaining({ backupId: safety.backupId, action: 'copied' }),
    ]);
  });
});

describe("each copy's retention, with the clock moved forward", () => {
  it('prune applies the primary retention to the primary and each copy its own', async () => {
    const plan = await writePlan(
      'retention',
      `{ url: "file://${join(dir, 'retention', 'vault')}" }`,
      `  - name: nas
    vault: { url: "file://${join(dir, 'retention', 'nas')}" }
    retention: { daily: 2d }
  - name: offsite
    vault: ${s3Vault()}
    key: { type: local, path: ../offsite.key }
    tiers: [weekly, monthly, yearly]
    retention: { yearly: 10y }
`,
    );
    const at = async (days: number) => openRuntime(plan, env, { clock: clockAt(days) });
    const job = (rt: Runtime) => findJob(rt.plan, 'app');
    const ids: string[] = [];
    for (const [day, tier] of [
      [0, 'yearly'],
      [1, 'daily'],
      [2, 'daily'],
      [3, 'daily'],
    ] as const) {
      const rt = await at(day);
      ids.push((await runBackup(rt, job(rt), { tier })).backupId);
      expect((await copyCommand(rt, {})).exitCode).toBe(0);
    }
    const later = await at(4);
    const ids4 = async (name: string) =>
      (await listBackups((await openCopyRuntime(later, name)).vault, 'app')).map((b) => b.backupId);
    // On the nas at day 3 the day-1 daily (2 days old) was already past the copy's 2 days: not copied then,
    // but it was copied on day 1 and 2; on offsite only the yearly.
    expect(await ids4('nas')).toEqual(ids);
    expect(await ids4('offsite')).toEqual([ids[0]]);

    const dry = await pruneVaults(later, { dryRun: true });
    expect(json(dry).copies.map((c: { copy: string }) => c.copy)).toEqual(['nas', 'offsite']);
    const pruned = await pruneVaults(later, {});
    const deleted = (decisions: { backupId: string; action: string }[]) =>
      decisions.filter((d) => d.action === 'delete').map((d) => d.backupId);
    // Primary: dailies kept 7 days. nas: dailies 2 days or older go (day 1 and 2), the yearly stays.
    expect(deleted(json(pruned).decisions)).toEqual([]);
    expect(deleted(json(pruned).copies[0].decisions).sort()).toEqual([ids[1], ids[2]]);
    expect(deleted(json(pruned).copies[1].decisions)).toEqual([]);
    expect(await ids4('nas')).toEqual([ids[0], ids[3]]);
    expect((await listBackups(later.vault, 'app')).map((b) => b.backupId)).toEqual(ids);

    // --from prunes only that copy; a year and a day later the offsite keeps its yearly (10y there).
    const yearLater = await at(366 + 4);
    const offsite = await pruneVaults(yearLater, { from: 'offsite' });
    expect(deleted(json(offsite).decisions)).toEqual([]);
    expect(json(offsite).copies).toBeUndefined();
  });
});
