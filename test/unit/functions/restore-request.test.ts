import { SendCommandCommand, SSMServiceException } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DOCUMENT_PARAMETERS } from '#core/deployment';
import { objectKey, restoreRequestPrefix } from '#core/layout';
import type { Vault } from '#core/ports';
import { pendingRestoreSchema } from '#functions/lib/restore-requests';
import { createRestoreRequestHandler, type RestoreRequestServices } from '#functions/restore-request';
import { parameterPatterns } from '#infra/constructs/agent-document';
import { type S3rverInstance, startS3rver } from '#test/support/s3rver';
import { COMMAND_ID } from './events';
import { SYNTHETIC_OBJECT, seedBackup, writeBackup } from './support/backups';
import { MemoryVault } from './support/memory-vault';
import { captureOutput } from './support/output';
import { fixedClock, s3rverVault, testServices } from './support/services';

captureOutput();
const DAY = 86_400_000;
let s3: S3rverInstance;
beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(() => s3?.stop());

const NOW = new Date('2024-12-06T09:00:00Z');

function setup(vault: Vault) {
  const clock = fixedClock(NOW);
  const t = testServices({
    vault: vault as RestoreRequestServices['vault'],
    clock,
    service: 'restore-request',
  });
  t.ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: COMMAND_ID } });
  const handler = createRestoreRequestHandler(async () => t.services as RestoreRequestServices);
  const sent = () => t.ssmMock.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
  return { ...t, handler, sent, clock };
}

describe('restore requests (objects in Standard, s3rver)', () => {
  const ids: string[] = [];
  beforeAll(async () => {
    const vault = s3rverVault(s3);
    for (let i = 3; i >= 1; i--) {
      const m = await writeBackup(vault, { job: 'app-db', startedAt: new Date(NOW.getTime() - i * DAY) });
      ids.push(m.backupId);
    }
    await writeBackup(vault, { job: 'web-files', startedAt: new Date(NOW.getTime() - DAY) });
  });

  it('restores the latest backup into a scratch database on the job host and answers the command id', async () => {
    // Prepare
    const { handler, sent } = setup(s3rverVault(s3));
    // Act
    const response = await handler({ job: 'app-db', latest: true });
    // Assess
    expect(response).toEqual({
      status: 'started',
      job: 'app-db',
      backupId: ids[2],
      mode: 'scratch',
      commandId: COMMAND_ID,
      target: 'db-primary (i-0123456789abcdef0)',
    });
    expect(sent()).toEqual([
      expect.objectContaining({
        DocumentName: 'Strongbox-Agent-ABC123',
        Parameters: { action: ['restore'], job: ['app-db'], backupId: [ids[2]], executionTimeout: ['7200'] },
        InstanceIds: ['i-0123456789abcdef0'],
        Comment: `strongbox restore app-db ${ids[2]}`,
      }),
    ]);
  });

  it('passes tables and the database to restore into, to the instance the request names, one at a time', async () => {
    const { handler, sent } = setup(s3rverVault(s3));
    const response = await handler({
      job: 'app-db',
      backupId: ids[0],
      target: { instanceIds: ['i-0fedcba9876543210'] },
      into: 'app_check',
      tables: ['public.orders', 'customers'],
    });
    expect(response).toMatchObject({ status: 'started', backupId: ids[0], target: 'i-0fedcba9876543210' });
    expect(sent()[0]).toMatchObject({
      Parameters: {
        action: ['restore'],
        backupId: [ids[0]],
        options: ['{"target":"app_check","tables":["public.orders","customers"]}'],
      },
      InstanceIds: ['i-0fedcba9876543210'],
      MaxConcurrency: '1',
      MaxErrors: '0',
    });
  });

  it('picks the newest backup that started at or before a point in time, and replaces with confirmation', async () => {
    const { handler, sent } = setup(s3rverVault(s3));
    const at = new Date(NOW.getTime() - 2 * DAY + 3600_000).toISOString();
    const response = await handler({
      job: 'app-db',
      at,
      mode: 'replace',
      confirm: 'app-db',
      target: { tags: { Role: 'db' } },
    });
    expect(response).toMatchObject({
      status: 'started',
      backupId: ids[1],
      mode: 'replace',
      target: 'tag Role=db',
    });
    expect(sent()[0]).toMatchObject({
      Parameters: { options: ['{"replace":true,"confirm":"app-db"}'] },
      Targets: [{ Key: 'tag:Role', Values: ['db'] }],
    });
  });

  it('answers a time with the newest backup whose data still exists, skipping one whose data expired', async () => {
    const vault = new MemoryVault();
    const old = seedBackup(vault, { job: 'app-db', startedAt: new Date(NOW.getTime() - 40 * DAY) });
    const expired = seedBackup(vault, { job: 'app-db', startedAt: new Date(NOW.getTime() - 20 * DAY) });
    // Its tier's retention passed: the lifecycle removed the data, the manifest is kept.
    await vault.delete([objectKey('app-db', expired.backupId, SYNTHETIC_OBJECT)]);
    const { handler, sent } = setup(vault);
    const at = new Date(NOW.getTime() - 10 * DAY).toISOString();

    expect(await handler({ job: 'app-db', at })).toMatchObject({ status: 'started', backupId: old.backupId });
    expect(sent()[0]?.Parameters?.backupId).toEqual([old.backupId]);

    // By id, an expired backup is rejected with the reason, never a function error.
    const byId = await handler({ job: 'app-db', backupId: expired.backupId });
    expect(byId).toEqual({
      status: 'rejected',
      errors: [
        `app-db: backup ${expired.backupId} cannot be restored`,
        expect.stringMatching(new RegExp(`^${expired.backupId}: its data is gone \\(expired`)),
      ],
    });
  });

  it('never answers latest or a time with a safety backup, but restores one asked for by id', async () => {
    // Prepare: a scheduled backup, then the safety backup a failed `restore --replace` took after it.
    const vault = new MemoryVault();
    const scheduled = seedBackup(vault, { job: 'app-db', startedAt: new Date(NOW.getTime() - 2 * DAY) });
    const safety = seedBackup(vault, {
      job: 'app-db',
      startedAt: new Date(NOW.getTime() - DAY),
      purpose: 'safety',
    });
    const { handler } = setup(vault);
    // Act / Assess: a retry of "latest" restores the backup, not the live data the safety backup holds.
    expect(await handler({ job: 'app-db', latest: true })).toMatchObject({
      status: 'started',
      backupId: scheduled.backupId,
    });
    expect(await handler({ job: 'app-db', at: NOW.toISOString() })).toMatchObject({
      backupId: scheduled.backupId,
    });
    expect(await handler({ job: 'app-db', backupId: safety.backupId })).toMatchObject({
      status: 'started',
      backupId: safety.backupId,
    });
  });

  it('rejects latest when the only backups are safety backups, saying why', async () => {
    const vault = new MemoryVault();
    const safety = seedBackup(vault, {
      job: 'app-db',
      startedAt: new Date(NOW.getTime() - DAY),
      purpose: 'safety',
    });
    const { handler, sent } = setup(vault);
    const response = await handler({ job: 'app-db', latest: true });
    expect(response).toEqual({
      status: 'rejected',
      errors: [
        expect.stringMatching(/^app-db: no restorable backup at or before/),
        `${safety.backupId}: a safety backup (taken by restore --replace); ask for it by id`,
      ],
    });
    expect(sent()).toEqual([]);
  });

  it('rejects a time before which every backup has lost its data', async () => {
    const vault = new MemoryVault();
    const only = seedBackup(vault, { job: 'app-db', startedAt: new Date(NOW.getTime() - 20 * DAY) });
    await vault.delete([objectKey('app-db', only.backupId, SYNTHETIC_OBJECT)]);
    const { handler, sent } = setup(vault);
    const response = await handler({ job: 'app-db', at: NOW.toISOString() });
    expect(response).toMatchObject({ status: 'rejected' });
    expect(response.status === 'rejected' ? response.errors[0] : '').toMatch(
      /no restorable backup at or before/,
    );
    expect(sent()).toEqual([]);
  });

  it.each([
    ['a quote in into', { into: 'app"x' }, 'into'],
    ['a dollar in into', { into: 'app$x' }, 'into'],
    ['a backslash in into', { into: 'app\\x' }, 'into'],
    ['a non-ASCII into', { into: 'café' }, 'into'],
    ['a dollar in a table', { tables: ['public.order$'] }, 'tables'],
    [
      'options over 4002 characters',
      { tables: Array.from({ length: 200 }, (_, i) => `public.orders_${String(i).padStart(8, '0')}`) },
      'tables',
    ],
  ])('rejects what the SSM document would refuse: %s', async (_name, fields, path) => {
    const { handler, sent } = setup(s3rverVault(s3));
    const response = await handler({ job: 'app-db', latest: true, ...fields });
    expect(response.status).toBe('rejected');
    expect(response.status === 'rejected' ? response.errors.join('\n') : '').toContain(path);
    expect(sent()).toEqual([]);
  });

  it('sends only options that match the document parameter’s allowedPattern exactly', async () => {
    const pattern = new RegExp(parameterPatterns(['app-db'])[DOCUMENT_PARAMETERS.options] as string);
    const { handler, sent } = setup(s3rverVault(s3));
    for (const fields of [
      { into: "app_check (copy) #2 'noon' @ 12:00; a=b+c, 50% <ok> [x] {y} ?!*/." },
      { tables: ['public.orders', 'Customers_2024'] },
      { mode: 'replace', confirm: 'app-db' },
    ]) {
      expect(await handler({ job: 'app-db', latest: true, ...fields })).toMatchObject({ status: 'started' });
    }
    const options = sent().map((input) => input.Parameters?.options?.[0] ?? '');
    expect(options).toHaveLength(3);
    for (const value of options) expect(value).toMatch(pattern);
  });

  it('answers not-started when Systems Manager refuses the target', async () => {
    const { handler, ssmMock } = setup(s3rverVault(s3));
    ssmMock.on(SendCommandCommand).rejects(
      new SSMServiceException({
        name: 'AccessDeniedException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
        message:
          'User is not authorized to perform: ssm:SendCommand on resource: instance/i-0fedcba9876543210',
      }),
    );
    expect(
      await handler({ job: 'app-db', latest: true, target: { instanceIds: ['i-0fedcba9876543210'] } }),
    ).toEqual({
      status: 'not-started',
      job: 'app-db',
      backupId: ids[2],
      reason:
        'Systems Manager refused the restore command: AccessDeniedException: User is not authorized to perform: ssm:SendCommand on resource: instance/i-0fedcba9876543210',
    });
  });

  it.each([
    [{}, ['job: required']],
    [{ job: 'app-db' }, ['give exactly one of backupId, latest or at']],
    [
      { job: 'app-db', latest: true, backupId: '20241205T090000Z-abcdef' },
      ['give exactly one of backupId, latest or at'],
    ],
    [
      { job: 'app-db', backupId: 'yesterday' },
      ['backupId: must be a backup id like 20241206T020000Z-3f9a1c'],
    ],
    [{ job: 'app-db', at: '6 Dec 2024' }, ['at: must be an ISO 8601 time, e.g. 2024-12-06T02:00:00Z']],
    [
      { job: 'app-db', latest: true, mode: 'wipe' },
      ['mode: must be one of "scratch", "replace", got string "wipe"'],
    ],
    [
      { job: 'app-db', latest: true, mode: 'replace' },
      ["confirm: must equal the job name 'app-db' to replace its live data"],
    ],
    [
      { job: 'app-db', latest: true, mode: 'replace', confirm: 'app-db', tables: ['orders'] },
      ['tables: replace restores the whole database; restore tables in scratch mode'],
    ],
    [
      { job: 'app-db', latest: true, tables: ['orders; drop table x'] },
      ['tables[0]: must be table or schema.table'],
    ],
    [
      { job: 'app-db', latest: true, target: { host: 'db-primary', tags: { Role: 'db' } } },
      ['target: give exactly one of host, instanceIds or tags'],
    ],
    [
      { job: 'app-db', latest: true, target: { instanceIds: ['db-1'] } },
      ['target.instanceIds[0]: must be an EC2 (i-…) or managed (mi-…) instance id'],
    ],
    [{ job: 'app-db', latest: true, force: true }, ["unknown field 'force'"]],
    [
      { job: 'web-files', latest: true, tables: ['orders'] },
      ["tables: files backups cannot be restored table by table ('web-files' is files)"],
    ],
    [
      { job: 'web-files', latest: true, mode: 'replace', confirm: 'web-files' },
      ["mode: files jobs cannot be replaced in place; restore 'web-files' in scratch mode into a directory"],
    ],
    [{ job: 'nope', latest: true }, ["job 'nope' is not in the plan (jobs: app-db, web-files)"]],
    [
      { job: 'app-db', latest: true, target: { host: 'nas' } },
      ["target.host: 'nas' is not one of hosts (db-primary, web, drill)"],
    ],
    [
      { job: 'app-db', backupId: '20200101T000000Z-abcdef' },
      ['app-db: backup 20200101T000000Z-abcdef does not exist (newest is'],
    ],
    [
      { job: 'app-db', at: '2020-01-01T00:00:00Z' },
      ['app-db: no complete backup started at or before 2020-01-01T00:00:00.000Z'],
    ],
  ])('rejects %j field by field and starts nothing', async (payload, errors) => {
    const { handler, ssmMock, snsMock } = setup(s3rverVault(s3));
    const response = await handler(payload);
    expect(response.status).toBe('rejected');
    const got = response.status === 'rejected' ? response.errors : [];
    expect(got).toHaveLength(errors.length);
    for (const [i, error] of errors.entries()) expect(got[i]).toContain(error);
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(0);
    expect(snsMock.calls()).toHaveLength(0);
  });
});

describe('restore requests for archived backups (Glacier, Deep Archive)', () => {
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

  it('starts the retrieval, keeps a valid pending request, answers retrieving with an eta and commands nothing', async () => {
    // Prepare
    const { handler, sent, snsMock } = setup(vault);
    // Act
    const response = await handler({ job: 'app-db', backupId, into: 'app_jan' });
    // Assess
    expect(response).toMatchObject({
      status: 'retrieving',
      job: 'app-db',
      backupId,
      objects: 1,
      retrievalTier: 'Standard',
      eta: '2024-12-06T14:00:00.000Z',
    });
    expect(vault.retrievals).toEqual([{ key, days: 7, tier: 'Standard' }]);
    expect(sent()).toEqual([]);
    expect(snsMock.calls()).toEqual([]);
    const stored = [...vault.objects.keys()].filter((k) =>
      k.startsWith(restoreRequestPrefix('app-db', backupId)),
    );
    const requestId = response.status === 'retrieving' ? response.requestId : '';
    expect(stored).toEqual([`${restoreRequestPrefix('app-db', backupId)}${requestId}.json`]);
    expect(pendingRestoreSchema.parse(JSON.parse(vault.text(stored[0] ?? '') ?? '{}'))).toEqual({
      requestId,
      job: 'app-db',
      backupId,
      options: { target: 'app_jan' },
      target: { name: 'db-primary', instanceIds: ['i-0123456789abcdef0'], maxConcurrency: 1, maxErrors: 0 },
      objects: [key],
      retrieval: { tier: 'Standard', days: 7 },
      requestedAt: NOW.toISOString(),
      eta: '2024-12-06T14:00:00.000Z',
    });
  });

  it('uses the retrieval tier asked for, and refuses Expedited for Deep Archive', async () => {
    const entry = vault.objects.get(key);
    if (entry) entry.storageClass = 'DEEP_ARCHIVE';
    const { handler } = setup(vault);
    expect(await handler({ job: 'app-db', latest: true, retrieval: { tier: 'Expedited' } })).toEqual({
      status: 'rejected',
      errors: [
        'retrieval.tier: Expedited retrieval is not available for DEEP_ARCHIVE objects; use Standard or Bulk',
      ],
    });
    expect(vault.retrievals).toEqual([]);
    expect(
      await handler({ job: 'app-db', latest: true, retrieval: { tier: 'Bulk', days: 2 } }),
    ).toMatchObject({
      status: 'retrieving',
      eta: '2024-12-08T09:00:00.000Z',
    });
    expect(vault.retrievals).toEqual([{ key, days: 2, tier: 'Bulk' }]);
  });

  it('restores at once from a copy that was already retrieved', async () => {
    const { handler, sent } = setup(vault);
    await vault.requestRestore(key, 7, 'Standard');
    vault.completeRestore(key);
    expect(await handler({ job: 'app-db', latest: true })).toMatchObject({ status: 'started' });
    expect(sent()).toHaveLength(1);
  });

  it('does not ask again for a retrieval already under way, and still keeps the request', async () => {
    const { handler } = setup(vault);
    await vault.requestRestore(key, 7, 'Standard');
    expect(await handler({ job: 'app-db', latest: true })).toMatchObject({ status: 'retrieving' });
    expect(vault.retrievals).toHaveLength(1);
  });
});
