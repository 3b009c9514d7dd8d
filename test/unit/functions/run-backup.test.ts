import { PublishCommand } from '@aws-sdk/client-sns';
import { SendCommandCommand, SSMServiceException } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PlanError } from '#core/errors';
import { runClaimKey } from '#core/layout';
import { ALERT_ATTRIBUTE } from '#functions/lib/alerts';
import { createRunBackupHandler, type RunBackupServices, scheduledBackupId } from '#functions/run-backup';
import { type S3rverInstance, startS3rver } from '#test/support/s3rver';
import { writeBackup } from './support/backups';
import { captureOutput } from './support/output';
import { fixedClock, s3rverVault, testServices } from './support/services';

const out = captureOutput();
let s3: S3rverInstance;
beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(() => s3?.stop());

const SCHEDULED = '2024-12-06T02:00:00Z';

function setup() {
  const clock = fixedClock(new Date('2024-12-06T02:00:04Z'));
  const t = testServices({ vault: s3rverVault(s3), clock, service: 'run-backup' });
  t.ssmMock
    .on(SendCommandCommand)
    .resolves({ Command: { CommandId: '0b7f5a2c-1111-2222-3333-444455556666' } });
  t.snsMock.on(PublishCommand).resolves({ MessageId: 'm-1' });
  const handler = createRunBackupHandler(async () => t.services as RunBackupServices);
  return { ...t, handler };
}

describe('run-backup', () => {
  beforeEach(async () => {
    // A fresh bucket prefix per test: jobs' backups from other tests must not change tiers.
    await s3rverVault(s3).delete(
      await (async () => {
        const keys: string[] = [];
        for await (const o of s3rverVault(s3).list('')) keys.push(o.key);
        return keys;
      })(),
    );
  });

  it('commands the job host with a deterministic backup id, the tier and the plan limits', async () => {
    // Prepare
    const { handler, ssmMock, s3: claims } = setup();
    await writeBackup(s3rverVault(s3), {
      job: 'app-db',
      startedAt: new Date('2024-12-05T02:00:00Z'),
      tier: 'yearly',
    });
    // Act
    const result = await handler({ job: 'app-db', scheduledTime: SCHEDULED });
    // Assess
    const backupId = scheduledBackupId('app-db', new Date(SCHEDULED));
    expect(backupId).toMatch(/^20241206T020000Z-[0-9a-f]{6}$/);
    expect(result).toEqual({
      status: 'started',
      job: 'app-db',
      backupId,
      tier: 'daily',
      commandId: '0b7f5a2c-1111-2222-3333-444455556666',
    });
    expect(ssmMock.commandCalls(SendCommandCommand).map((c) => c.args[0].input)).toEqual([
      {
        DocumentName: 'Strongbox-Agent-ABC123',
        Parameters: {
          action: ['backup'],
          job: ['app-db'],
          backupId: [backupId],
          tier: ['daily'],
          executionTimeout: ['7200'],
        },
        InstanceIds: ['i-0123456789abcdef0'],
        MaxConcurrency: '1',
        MaxErrors: '0',
        TimeoutSeconds: 7200,
        Comment: `strongbox backup app-db ${backupId}`,
        CloudWatchOutputConfig: {
          CloudWatchLogGroupName: '/strongbox/commands',
          CloudWatchOutputEnabled: true,
        },
      },
    ]);
    expect(JSON.parse(claims.claims.get(runClaimKey('app-db', backupId)) ?? '{}')).toMatchObject({
      job: 'app-db',
      backupId,
      tier: 'daily',
      scheduledTime: '2024-12-06T02:00:00.000Z',
    });
  });

  it('gives the first backup of a month the monthly tier, and the first ever the yearly one', async () => {
    const { handler } = setup();
    expect(await handler({ job: 'app-db', scheduledTime: SCHEDULED })).toMatchObject({ tier: 'yearly' });
    await writeBackup(s3rverVault(s3), { job: 'app-db', startedAt: new Date('2024-11-30T02:00:00Z') });
    expect(await handler({ job: 'app-db', scheduledTime: '2024-12-01T02:00:00Z' })).toMatchObject({
      tier: 'monthly',
    });
  });

  it('targets tagged hosts with their concurrency and error limits', async () => {
    const { handler, ssmMock } = setup();
    await handler({ job: 'web-files', scheduledTime: SCHEDULED });
    const input = ssmMock.commandCalls(SendCommandCommand)[0]?.args[0].input;
    expect(input?.Targets).toEqual([
      { Key: 'tag:Role', Values: ['web'] },
      { Key: 'tag:Env', Values: ['prod'] },
    ]);
    expect(input?.InstanceIds).toBeUndefined();
    expect([input?.MaxConcurrency, input?.MaxErrors, input?.TimeoutSeconds]).toEqual(['50%', '1', 21_600]);
  });

  it('starts nothing when the same scheduled time is invoked again (Scheduler retry)', async () => {
    const { handler, ssmMock } = setup();
    const first = await handler({ job: 'app-db', scheduledTime: SCHEDULED });
    const again = await handler({ job: 'app-db', scheduledTime: SCHEDULED });
    const next = await handler({ job: 'app-db', scheduledTime: '2024-12-07T02:00:00Z' });
    expect(first.status).toBe('started');
    expect(again).toMatchObject({ status: 'duplicate', backupId: first.backupId });
    expect(next.status).toBe('started');
    expect(next.backupId).not.toBe(first.backupId);
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(2);
  });

  it('starts nothing when the backup of that time is already complete', async () => {
    const { handler, ssmMock, s3: claims } = setup();
    const backupId = scheduledBackupId('app-db', new Date(SCHEDULED));
    await writeBackup(s3rverVault(s3), {
      job: 'app-db',
      startedAt: new Date(SCHEDULED),
      suffix: backupId.slice(-6),
    });
    expect(await handler({ job: 'app-db', scheduledTime: SCHEDULED })).toMatchObject({
      status: 'duplicate',
      backupId,
    });
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(0);
    expect(claims.claims.size).toBe(0);
  });

  it('releases the claim and fails on a retryable SSM error, so that the retry starts the backup', async () => {
    const { handler, ssmMock, s3: claims } = setup();
    let calls = 0;
    ssmMock.on(SendCommandCommand).callsFake(() => {
      calls++;
      if (calls > 1) return { Command: { CommandId: '0b7f5a2c-1111-2222-3333-444455556666' } };
      throw new SSMServiceException({
        name: 'InternalServerError',
        $fault: 'server',
        $metadata: { httpStatusCode: 500 },
      });
    });
    await expect(handler({ job: 'app-db', scheduledTime: SCHEDULED })).rejects.toThrow();
    expect(claims.claims.size).toBe(0);
    expect(await handler({ job: 'app-db', scheduledTime: SCHEDULED })).toMatchObject({ status: 'started' });
  });

  it('alerts once and keeps the claim when SSM refuses the command', async () => {
    const { handler, ssmMock, snsMock } = setup();
    ssmMock.on(SendCommandCommand).rejects(
      new SSMServiceException({
        name: 'InvalidInstanceId',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
        message: 'Instances [[i-0123456789abcdef0]] not in a valid state for account 111122223333',
      }),
    );
    const result = await handler({ job: 'app-db', scheduledTime: SCHEDULED });
    expect(result).toMatchObject({
      status: 'not-started',
      reason: expect.stringContaining('InvalidInstanceId'),
    });
    const publish = snsMock.commandCalls(PublishCommand)[0]?.args[0].input;
    expect(publish?.Subject).toBe('[Strongbox CRITICAL] Backup not started: app-db on db-primary');
    expect(publish?.Message).toContain('Systems Manager refused the command: InvalidInstanceId');
    expect(JSON.parse(publish?.MessageAttributes?.[ALERT_ATTRIBUTE]?.StringValue ?? '{}')).toMatchObject({
      severity: 'critical',
      job: 'app-db',
    });
    expect(await handler({ job: 'app-db', scheduledTime: SCHEDULED })).toMatchObject({ status: 'duplicate' });
    expect(snsMock.commandCalls(PublishCommand)).toHaveLength(1);
  });

  it.each([
    [null, 'run-backup input: expected object, got null'],
    [{}, 'run-backup input: job: required'],
    [{ job: 'App DB' }, 'run-backup input: job: must be a job name'],
    [
      { job: 'app-db', scheduledTime: 'yesterday' },
      'run-backup input: scheduledTime: must be an ISO 8601 time',
    ],
    [{ job: 'app-db', jobs: ['x'] }, "run-backup input: unknown field 'jobs'"],
    [{ job: 'nope' }, "job 'nope' is not in the plan (jobs: app-db, web-files)"],
  ])('refuses %j with a clear error and starts nothing', async (event, message) => {
    const { handler, ssmMock, snsMock, s3: claims } = setup();
    const error = await handler(event).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toContain(message);
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(0);
    expect(snsMock.commandCalls(PublishCommand)).toHaveLength(0);
    expect(claims.claims.size).toBe(0);
    expect(
      out.logs().some((l) => l.level === 'ERROR' && String(l.message).includes('run-backup failed')),
    ).toBe(true);
  });
});
