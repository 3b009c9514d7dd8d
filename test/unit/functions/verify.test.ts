import { Readable } from 'node:stream';
import { PublishCommand } from '@aws-sdk/client-sns';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PlanError, VaultError } from '#core/errors';
import { objectKey, walKey } from '#core/layout';
import type { Vault } from '#core/ports';
import { tierOf } from '#core/tiers';
import { createVerifyHandler, type VerifyServices } from '#functions/verify';
import { type S3rverInstance, startS3rver } from '#test/support/s3rver';
import { SYNTHETIC_OBJECT, seedBackup, writeBackup } from './support/backups';
import { MemoryVault } from './support/memory-vault';
import { captureOutput } from './support/output';
import { fixedClock, publishedAlerts, s3rverVault, testServices } from './support/services';

const out = captureOutput();
const DAY = 86_400_000;
let s3: S3rverInstance;
beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(() => s3?.stop());

function setup(vault: Vault & { requestRestore?: unknown }, now: Date) {
  const t = testServices({
    vault: vault as VerifyServices['vault'],
    clock: fixedClock(now),
    service: 'verify',
  });
  t.snsMock.on(PublishCommand).resolves({ MessageId: 'm-1' });
  const handler = createVerifyHandler(async () => t.services as VerifyServices);
  const alerts = () => publishedAlerts(t.snsMock);
  return { ...t, handler, alerts };
}

/** A week of daily backups per job in s3rver, the newest finished 2 hours before `now`. */
async function week(vault: Vault, now: Date, jobs = ['app-db', 'web-files']) {
  for (const job of jobs) {
    for (let i = 7; i >= 0; i--) {
      await writeBackup(vault, {
        job,
        startedAt: new Date(now.getTime() - i * DAY - 2 * 3600_000 - 60_000),
        tier: i === 7 ? 'yearly' : 'daily',
        storedBytes: 4096,
        sourceBytes: 100_000,
      });
    }
  }
}

describe('verify against s3rver', () => {
  const now = new Date(Math.floor(Date.now() / 1000) * 1000);
  beforeEach(async () => {
    const vault = s3rverVault(s3);
    const keys: string[] = [];
    for await (const o of vault.list('')) keys.push(o.key);
    await vault.delete(keys);
  });

  it('finds nothing in healthy backups: metrics per job, checksums read, no alert', async () => {
    // Prepare
    const vault = s3rverVault(s3);
    await week(vault, now);
    const { handler, alerts } = setup(vault, now);
    // Act
    const result = await handler({});
    // Assess
    expect(result.counts).toEqual({ critical: 0, warning: 0, info: 0 });
    expect(result.alerted).toBe(false);
    expect(alerts()).toEqual([]);
    expect(result.jobs.map((j) => [j.job, j.retained, j.checksummedBytes])).toEqual([
      ['app-db', 8, 4096],
      ['web-files', 8, 4096],
    ]);
    expect(out.metric('BackupAgeSeconds', 'app-db')).toEqual([2 * 3600]);
    expect(out.metric('LastBackupBytes', 'web-files')).toEqual([4096]);
    expect(out.metric('Findings', 'app-db')).toEqual([0]);
    expect(out.emf().every((line) => JSON.stringify(line.dimensions) === '[["Job"]]')).toBe(true);
  });

  it('alerts once, worst first, when a stored object was changed and a job has no backup', async () => {
    const vault = s3rverVault(s3);
    await week(vault, now, ['app-db']);
    const keys: string[] = [];
    for await (const o of vault.list('backups/app-db/')) keys.push(o.key);
    const dataKey = keys.filter((k) => k.endsWith(SYNTHETIC_OBJECT)).at(-1) ?? '';
    await vault.put(dataKey, Readable.from([Buffer.alloc(4096, 7)]));
    const { handler, alerts } = setup(vault, now);

    const result = await handler({});

    expect(result.counts.critical).toBe(2);
    const [sent, ...more] = alerts();
    expect(more).toEqual([]);
    expect(sent?.subject).toBe('[Strongbox CRITICAL] Verification: 2 critical in 2 of 2 jobs');
    expect(sent?.alert.findings.map((f) => [f.severity, f.job, f.check])).toEqual([
      ['critical', 'app-db', 'object-checksum'],
      ['critical', 'web-files', 'no-backup'],
    ]);
    expect(sent?.text).toContain(`CRITICAL app-db  object-checksum: ${dataKey} does not match its manifest`);
    expect(sent?.text).toContain(
      'web-files: no complete backup; 0 retained, 0 expired, 0 incomplete; 1 finding',
    );
    expect(out.metric('Findings', 'app-db')).toEqual([1]);
  });

  it('warns when the newest backup is older than the warning limit (25 h)', async () => {
    const vault = s3rverVault(s3);
    await week(vault, now, ['app-db']);
    const { handler, alerts } = setup(vault, new Date(now.getTime() + 24 * 3600_000));
    const result = await handler({ jobs: ['app-db'] });
    expect(result.findings).toEqual([
      expect.objectContaining({
        severity: 'warning',
        check: 'backup-age',
        message: expect.stringMatching(/^newest backup is 1d 2h old \(warning at 1d 1h\)$/),
      }),
    ]);
    expect(alerts()[0]?.subject).toBe('[Strongbox WARNING] Verification: 1 warning in 1 of 1 job');
  });

  it('publishes the backup age without reading data or alerting in the hourly metrics-only run', async () => {
    const vault = s3rverVault(s3);
    await week(vault, now, ['app-db']);
    const { handler, alerts } = setup(vault, new Date(now.getTime() + 24 * 3600_000));
    const result = await handler({ metricsOnly: true });
    // web-files has no backup and app-db is past its warning age: both found, neither alerted.
    expect(result.counts.critical).toBe(1);
    expect(result.alerted).toBe(false);
    expect(alerts()).toEqual([]);
    expect(result.jobs.map((j) => j.checksummedBytes)).toEqual([0, 0]);
    expect(out.metric('BackupAgeSeconds', 'app-db')).toEqual([26 * 3600]);
  });

  it('reads no data when the checksum budget is used up, and says so without alerting', async () => {
    const vault = s3rverVault(s3);
    await week(vault, now, ['app-db']);
    const { handler, alerts } = setup(vault, now);
    const result = await handler({ jobs: ['app-db'], checksumBudgetBytes: 1000 });
    expect(result.findings).toEqual([
      expect.objectContaining({ severity: 'info', check: 'checksum-skipped' }),
    ]);
    expect(result.jobs[0]?.checksummedBytes).toBe(0);
    expect(alerts()).toEqual([]);
  });
});

describe('verify with archive classes, WAL and failures', () => {
  const now = new Date('2025-03-12T05:00:00Z');

  it('reports a WAL gap and an object archived earlier than its lifecycle', async () => {
    const vault = new MemoryVault(() => now);
    const retention = { daily: 7, weekly: 35, monthly: 365, yearly: 2555 } as const;
    let previous: Date | undefined;
    for (let i = 40; i >= 0; i--) {
      const startedAt = new Date(now.getTime() - i * DAY - 3 * 3600_000);
      const tier = tierOf(startedAt, previous, 'UTC');
      previous = startedAt;
      const m = seedBackup(vault, { job: 'app-db', startedAt, tier });
      const key = objectKey('app-db', m.backupId, SYNTHETIC_OBJECT);
      if (i >= retention[tier]) vault.objects.delete(key);
      const entry = vault.objects.get(key);
      if (i === 40 && entry) entry.storageClass = 'DEEP_ARCHIVE';
    }
    for (const segment of [
      '000000010000000000000010',
      '000000010000000000000011',
      '000000010000000000000014',
    ]) {
      vault.set(walKey('app-db', '00000001', segment), 'wal');
    }
    const { handler, alerts } = setup(vault, now);
    const result = await handler({ jobs: ['app-db'] });
    expect(result.findings.map((f) => [f.severity, f.check])).toEqual([
      ['critical', 'wal-gap'],
      ['warning', 'storage-class'],
    ]);
    expect(alerts()[0]?.text).toContain(
      'WAL gap on timeline 1: 2 segments missing (000000010000000000000012 … 000000010000000000000013)',
    );
  });

  it('reports a job whose catalog cannot be read as critical and still verifies the others', async () => {
    const vault = new MemoryVault(() => now);
    seedBackup(vault, { job: 'web-files', startedAt: new Date(now.getTime() - 3 * 3600_000) });
    const list = vault.list.bind(vault);
    vault.list = (prefix: string) => {
      if (prefix.includes('app-db'))
        throw new VaultError('list s3://backups-test/backups/app-db/ failed: AccessDenied');
      return list(prefix);
    };
    const { handler, alerts } = setup(vault, now);
    const result = await handler({});
    expect(result.findings).toEqual([
      expect.objectContaining({
        severity: 'critical',
        job: 'app-db',
        check: 'vault-read',
        message:
          'could not read the catalog of this job from the vault: list s3://backups-test/backups/app-db/ failed: AccessDenied',
      }),
    ]);
    expect(result.jobs.find((j) => j.job === 'web-files')?.retained).toBe(1);
    expect(alerts()).toHaveLength(1);
  });

  it.each([
    [{ jobs: [] }, 'verify input: jobs: Too small'],
    [{ jobs: ['nope'] }, "job 'nope' is not in the plan"],
    [{ job: 'app-db' }, "verify input: unknown field 'job'"],
    [{ checksumBudgetBytes: -1 }, 'verify input: checksumBudgetBytes:'],
    ['all', 'verify input: expected object, got string "all"'],
  ])('refuses %j with a clear error and reads nothing', async (input, message) => {
    const vault = new MemoryVault(() => now);
    const { handler, snsMock } = setup(vault, now);
    const error = await handler(input).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toContain(message);
    expect(vault.calls.list + vault.calls.get).toBe(0);
    expect(snsMock.calls()).toHaveLength(0);
  });
});
