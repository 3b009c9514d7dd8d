import { PublishCommand, SNSServiceException } from '@aws-sdk/client-sns';
import { SendCommandCommand, SSMServiceException } from '@aws-sdk/client-ssm';
import { beforeEach, describe, expect, it } from 'vitest';
import { PlanError } from '#core/errors';
import { objectKey, restoreRequestKey, restoreRequestPrefix, restoreStartedKey } from '#core/layout';
import type { PendingRestore } from '#functions/lib/restore-requests';
import { createRestoreContinueHandler, type RestoreContinueServices } from '#functions/restore-continue';
import { createRestoreRequestHandler, type RestoreRequestServices } from '#functions/restore-request';
import { COMMAND_ID, restoreCompletedEvent } from './events';
import { SYNTHETIC_OBJECT, seedBackup } from './support/backups';
import { MemoryVault } from './support/memory-vault';
import { captureOutput } from './support/output';
import { fixedClock, publishedAlerts, testServices } from './support/services';

captureOutput();
const DAY = 86_400_000;
const NOW = new Date('2024-12-06T09:00:00Z');

let vault: MemoryVault;
let backupId: string;
let key: string;
beforeEach(() => {
  vault = new MemoryVault(() => NOW);
  const m = seedBackup(vault, {
    job: 'app-db',
    startedAt: new Date(NOW.getTime() - 120 * DAY),
    tier: 'monthly',
    storageClass: 'GLACIER',
  });
  backupId = m.backupId;
  key = objectKey('app-db', backupId, SYNTHETIC_OBJECT);
});

/** restore-request and restore-continue over one vault, SSM and SNS, as a deployment has them. */
function setup() {
  const t = testServices({ vault, clock: fixedClock(NOW), service: 'restore-continue' });
  t.ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: COMMAND_ID } });
  t.snsMock.on(PublishCommand).resolves({ MessageId: 'm-1' });
  const request = createRestoreRequestHandler(async () => t.services as RestoreRequestServices);
  const handler = createRestoreContinueHandler(async () => t.services as RestoreContinueServices);
  const sent = () => t.ssmMock.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
  const alerts = () => publishedAlerts(t.snsMock);
  return { ...t, request, handler, sent, alerts };
}

/** A request restore-request kept, retrieved since: its key and its record. */
async function retrievedRequest(t: ReturnType<typeof setup>) {
  const response = await t.request({ job: 'app-db', backupId, into: 'app_jan' });
  if (response.status !== 'retrieving') throw new Error(`not retrieving: ${JSON.stringify(response)}`);
  vault.completeRestore(key);
  const requestKey = restoreRequestKey('app-db', backupId, response.requestId);
  return { requestKey, record: JSON.parse(vault.text(requestKey) ?? '') as PendingRestore };
}

describe('restore-continue', () => {
  it('continues a kept request once S3 reports its objects retrieved — exactly once for repeated events', async () => {
    // Prepare
    const t = setup();
    const { record } = await retrievedRequest(t);
    // Act: S3 says the retrieval is done — twice (events may repeat)
    const continued = await t.handler(restoreCompletedEvent(key));
    const again = await t.handler(restoreCompletedEvent(key));
    // Assess
    expect(continued).toEqual({
      status: 'continued',
      job: 'app-db',
      backupId,
      commandIds: [COMMAND_ID],
      remaining: 0,
      refused: [],
    });
    expect(again).toMatchObject({ status: 'ignored' });
    expect(t.sent()).toEqual([
      expect.objectContaining({
        Parameters: {
          action: ['restore'],
          job: ['app-db'],
          backupId: [backupId],
          options: ['{"target":"app_jan"}'],
          executionTimeout: ['7200'],
        },
        InstanceIds: ['i-0123456789abcdef0'],
      }),
    ]);
    expect(t.alerts().map((a) => a.subject)).toEqual([
      `[Strongbox INFO] Restore continues: app-db ${backupId}`,
    ]);
    expect(vault.text(restoreStartedKey('app-db', backupId, record.requestId))).toContain('continuedAt');
  });

  it('waits while another object of the backup is still being retrieved', async () => {
    const t = setup();
    const second = objectKey('app-db', backupId, 'extra.sbx');
    vault.set(second, 'x', { storageClass: 'GLACIER' });
    const manifestKey = `backups/app-db/${backupId}/manifest.json`;
    const manifest = JSON.parse(vault.text(manifestKey) ?? '{}');
    manifest.objects.push({ ...manifest.objects[0], name: 'extra.sbx', storedBytes: 1 });
    vault.set(manifestKey, JSON.stringify(manifest));
    await t.request({ job: 'app-db', latest: true });
    vault.completeRestore(key);
    expect(await t.handler(restoreCompletedEvent(key))).toMatchObject({ status: 'waiting', remaining: 1 });
    vault.completeRestore(second);
    expect(await t.handler(restoreCompletedEvent(second))).toMatchObject({ status: 'continued' });
    expect(t.sent()).toHaveLength(1);
  });

  it('alerts when Systems Manager refuses the command, and does not try again on the next event', async () => {
    const t = setup();
    await retrievedRequest(t);
    t.ssmMock.on(SendCommandCommand).rejects(
      new SSMServiceException({
        name: 'InvalidInstanceId',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
        message: 'Instances [[i-0123456789abcdef0]] not in a valid state',
      }),
    );
    expect(await t.handler(restoreCompletedEvent(key))).toMatchObject({
      status: 'continued',
      commandIds: [],
    });
    expect(await t.handler(restoreCompletedEvent(key))).toMatchObject({ status: 'ignored' });
    expect(t.alerts().map((a) => a.alert)).toEqual([
      expect.objectContaining({
        severity: 'critical',
        title: 'Restore could not continue: app-db',
        details: [expect.stringContaining('InvalidInstanceId: Instances [[i-0123456789abcdef0]]')],
      }),
    ]);
  });

  it('releases its claim on a retryable SSM error, so the retried event continues the request', async () => {
    const t = setup();
    await retrievedRequest(t);
    t.ssmMock
      .on(SendCommandCommand)
      .rejectsOnce(
        new SSMServiceException({
          name: 'ThrottlingException',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
          message: 'Rate exceeded',
        }),
      )
      .resolves({ Command: { CommandId: COMMAND_ID } });
    await expect(t.handler(restoreCompletedEvent(key))).rejects.toThrow('Rate exceeded');
    expect(await t.handler(restoreCompletedEvent(key))).toMatchObject({ commandIds: [COMMAND_ID] });
  });

  type Corrupt = (record: PendingRestore) => unknown;
  it.each<[string, Corrupt | string, string]>([
    ['is not JSON', '{"requestId": "2024', 'not JSON'],
    ['lacks its objects', ({ objects: _objects, ...rest }) => rest, 'objects: required'],
    [
      'names another job',
      (r) => ({ ...r, job: 'web-files' }),
      "job: 'web-files', but it is stored under app-db",
    ],
    [
      'lists an object of another backup',
      (r) => ({ ...r, objects: [objectKey('app-db', '20240101T020000Z-abcdef', SYNTHETIC_OBJECT)] }),
      `objects[0]: backups/app-db/20240101T020000Z-abcdef/${SYNTHETIC_OBJECT} is not an object of backup app-db/`,
    ],
    [
      'targets no host',
      (r) => ({ ...r, target: { name: 'db-primary', maxConcurrency: 1, maxErrors: 0 } }),
      'target: names neither instanceIds nor tags',
    ],
    [
      'passes an option the agent does not take',
      (r) => ({ ...r, options: { ...r.options, dropFirst: true } }),
      "options: unknown field 'dropFirst'",
    ],
    ['names another request id', (r) => ({ ...r, requestId: 'someone-else' }), 'requestId: someone-else'],
  ])('reports a pending record that %s once, and commands nothing', async (_what, corrupt, problem) => {
    // Prepare
    const t = setup();
    const { requestKey, record } = await retrievedRequest(t);
    vault.set(requestKey, typeof corrupt === 'string' ? corrupt : JSON.stringify(corrupt(record)));
    // Act: every object's event of the backup arrives
    const first = await t.handler(restoreCompletedEvent(key));
    const second = await t.handler(restoreCompletedEvent(key));
    // Assess
    expect(first).toMatchObject({ status: 'continued', commandIds: [], refused: [requestKey] });
    expect(second).toMatchObject({ status: 'ignored' });
    expect(t.sent()).toEqual([]);
    const alerts = t.alerts();
    expect(alerts).toHaveLength(1);
    expect(alerts[0]?.alert).toMatchObject({
      severity: 'critical',
      title: `Restore cannot continue: app-db ${backupId}`,
      job: 'app-db',
      backupId,
    });
    expect(alerts[0]?.alert.details.join('\n')).toContain(requestKey);
    expect(alerts[0]?.alert.details.join('\n')).toContain(problem);
    expect(vault.text(restoreStartedKey('app-db', backupId, record.requestId))).toContain('refusedAt');
  });

  it('reports a request of a job that is no longer in the plan', async () => {
    const t = setup();
    const { record } = await retrievedRequest(t);
    const gone = seedBackup(vault, { job: 'old-db', startedAt: new Date(NOW.getTime() - DAY) });
    const goneKey = objectKey('old-db', gone.backupId, SYNTHETIC_OBJECT);
    const moved = { ...record, job: 'old-db', backupId: gone.backupId, objects: [goneKey] };
    vault.set(restoreRequestKey('old-db', gone.backupId, record.requestId), JSON.stringify(moved));
    expect(await t.handler(restoreCompletedEvent(goneKey))).toMatchObject({ refused: [expect.any(String)] });
    expect(t.alerts()[0]?.alert.details.join('\n')).toContain("job: job 'old-db' is not in the plan");
    expect(t.sent()).toEqual([]);
  });

  it('reports a bad record again on the retry when the alert could not be published', async () => {
    const t = setup();
    const { requestKey } = await retrievedRequest(t);
    vault.set(requestKey, 'not json');
    t.snsMock
      .on(PublishCommand)
      .rejectsOnce(
        new SNSServiceException({
          name: 'ThrottledException',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
          message: 'Rate exceeded',
        }),
      )
      .resolves({ MessageId: 'm-2' });
    await expect(t.handler(restoreCompletedEvent(key))).rejects.toThrow('Rate exceeded');
    expect(await t.handler(restoreCompletedEvent(key))).toMatchObject({ refused: [requestKey] });
  });

  it('leaves keys below the prefix alone that are not request keys', async () => {
    const t = setup();
    vault.set(`${restoreRequestPrefix('app-db', backupId)}notes/today.json`, '{}');
    expect(await t.handler(restoreCompletedEvent(key))).toMatchObject({ status: 'ignored' });
    expect(t.alerts()).toEqual([]);
  });

  it.each([
    ['another bucket', restoreCompletedEvent('backups/app-db/x', 'someone-elses-bucket'), 'is not the vault'],
    [
      'a key outside backups',
      restoreCompletedEvent('runs/app-db/20241206T020000Z-abcdef.json'),
      'is not part of a backup',
    ],
  ])('ignores a retrieval event from %s', async (_what, event, reason) => {
    const t = setup();
    expect(await t.handler(event)).toEqual({ status: 'ignored', reason: expect.stringContaining(reason) });
    expect(t.sent()).toEqual([]);
  });

  it('refuses a malformed S3 event', async () => {
    const t = setup();
    const error = await t
      .handler({ source: 'aws.s3', 'detail-type': 'Object Restore Completed', detail: {} })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toBe(
      'restore completed event: detail.bucket: required; detail.object: required',
    );
  });
});
