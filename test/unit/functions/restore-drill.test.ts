import { PublishCommand } from '@aws-sdk/client-sns';
import { GetCommandInvocationCommand, ListCommandsCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import { describe, expect, it } from 'vitest';
import { PlanError } from '#core/errors';
import { createRestoreDrillHandler, type RestoreDrillServices } from '#functions/restore-drill';
import { COMMAND_ID, commandStatusEvent } from './events';
import { seedBackup } from './support/backups';
import { MemoryVault } from './support/memory-vault';
import { captureOutput } from './support/output';
import { fixedClock, publishedAlerts, testServices } from './support/services';

const out = captureOutput();
const NOW = new Date('2024-12-08T04:00:00Z');
const BACKUP_ID = '20241208T020000Z-5d1e0b';
const DRILL_HOST = 'mi-0123456789abcdef0';

function setup(options: { backups?: boolean; action?: string } = {}) {
  const vault = new MemoryVault(() => NOW);
  if (options.backups !== false)
    seedBackup(vault, { job: 'app-db', startedAt: new Date('2024-12-08T02:00:00Z') });
  const t = testServices({ vault, clock: fixedClock(NOW), service: 'restore-drill' });
  t.ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: COMMAND_ID } });
  t.ssmMock.on(ListCommandsCommand).resolves({
    Commands: [
      { CommandId: COMMAND_ID, Parameters: { action: [options.action ?? 'drill'], job: ['app-db'] } },
    ],
  });
  t.snsMock.on(PublishCommand).resolves({ MessageId: 'm-1' });
  const handler = createRestoreDrillHandler(async () => t.services as RestoreDrillServices);
  const alerts = () => publishedAlerts(t.snsMock);
  return { ...t, handler, alerts, vault };
}

function drillOutput(fields: Record<string, unknown>) {
  return JSON.stringify({
    job: 'app-db',
    backupId: BACKUP_ID,
    target: 'app_drill_20241208t040012',
    durationSeconds: 271.5,
    rtoSeconds: 3600,
    checks: [],
    findings: [],
    ...fields,
  });
}

describe('restore-drill start', () => {
  it('commands the drill host once per scheduled time', async () => {
    // Prepare
    const { handler, ssmMock } = setup();
    // Act
    const first = await handler({ job: 'app-db', scheduledTime: '2024-12-08T04:00:00Z' });
    const retry = await handler({ job: 'app-db', scheduledTime: '2024-12-08T04:00:00Z' });
    // Assess
    expect(first).toMatchObject({
      status: 'started',
      job: 'app-db',
      commandId: COMMAND_ID,
      target: `drill (${DRILL_HOST})`,
    });
    expect(retry).toMatchObject({ status: 'duplicate' });
    expect(ssmMock.commandCalls(SendCommandCommand).map((c) => c.args[0].input)).toEqual([
      expect.objectContaining({
        Parameters: { action: ['drill'], job: ['app-db'], executionTimeout: ['7200'] },
        InstanceIds: [DRILL_HOST],
        Comment: 'strongbox drill app-db',
        TimeoutSeconds: 7200,
      }),
    ]);
  });

  it('alerts instead of commanding when there is no backup to drill', async () => {
    const { handler, ssmMock, alerts } = setup({ backups: false });
    expect(await handler({ job: 'app-db' })).toMatchObject({ status: 'not-started' });
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(0);
    expect(alerts()[0]?.subject).toBe('[Strongbox CRITICAL] Restore drill not started: app-db has no backup');
  });

  it.each([
    [{ job: 'web-files' }, "job 'web-files' has no drill in the plan (jobs[].drill)"],
    [
      { job: 'app-db', scheduledTime: 1733630400 },
      'restore-drill input: scheduledTime: expected string, got number 1733630400',
    ],
    [{ jobs: ['app-db'] }, "restore-drill input: job: required; unknown field 'jobs'"],
  ])('refuses %j and starts nothing', async (input, message) => {
    const { handler, ssmMock, snsMock } = setup();
    const error = await handler(input).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toBe(message);
    expect(ssmMock.commandCalls(SendCommandCommand)).toHaveLength(0);
    expect(snsMock.calls()).toHaveLength(0);
  });
});

describe('restore-drill finish', () => {
  it('records the measured RTO of a drill that passed, without an alert', async () => {
    const { handler, ssmMock, alerts } = setup();
    ssmMock
      .on(GetCommandInvocationCommand)
      .resolves({ Status: 'Success', ResponseCode: 0, StandardOutputContent: drillOutput({}) });
    expect(await handler(commandStatusEvent('Success', { 'instance-id': DRILL_HOST }))).toMatchObject({
      status: 'passed',
      backupId: BACKUP_ID,
      durationSeconds: 271.5,
      alerted: false,
    });
    expect(out.metric('RestoreDrillDurationSeconds', 'app-db')).toEqual([271.5]);
    expect(out.metric('RestoreDrillFailed', 'app-db')).toEqual([0]);
    expect(alerts()).toEqual([]);
  });

  it('alerts when the restore missed its recovery time objective', async () => {
    const { handler, ssmMock, alerts } = setup();
    ssmMock.on(GetCommandInvocationCommand).resolves({
      Status: 'Success',
      ResponseCode: 0,
      StandardOutputContent: drillOutput({ durationSeconds: 4500 }),
    });
    expect(await handler(commandStatusEvent('Success', { 'instance-id': DRILL_HOST }))).toMatchObject({
      status: 'failed',
    });
    const [sent] = alerts();
    expect(sent?.subject).toBe(`[Strongbox CRITICAL] Restore drill failed: app-db on drill (${DRILL_HOST})`);
    expect(sent?.alert.findings).toEqual([
      expect.objectContaining({
        check: 'rto',
        message: 'restore took 1h 15m, over the recovery time objective of 1h 0m',
      }),
    ]);
    expect(sent?.text).toContain(
      `Restored ${BACKUP_ID} into the scratch target 'app_drill_20241208t040012' in 1h 15m (objective 1h 0m); the scratch target was dropped.`,
    );
    expect(out.metric('RestoreDrillFailed', 'app-db')).toEqual([1]);
  });

  it('lists the failed checks of a drill the agent reported as failed', async () => {
    const { handler, ssmMock, alerts } = setup();
    const findings = [
      {
        severity: 'critical',
        job: 'app-db',
        check: 'row-count',
        message: 'public.orders has 998 rows, the manifest recorded 1000',
      },
      {
        severity: 'critical',
        job: 'app-db',
        check: 'sql-check',
        message: "orders: 'select count(*) from orders' gave 998, expected 1000",
      },
    ];
    ssmMock.on(GetCommandInvocationCommand).resolves({
      Status: 'Failed',
      ResponseCode: 2,
      StandardOutputContent: drillOutput({ findings }),
    });
    const result = await handler(commandStatusEvent('Failed', { 'instance-id': DRILL_HOST }));
    expect(result).toMatchObject({ status: 'failed', alerted: true });
    expect(alerts()[0]?.text).toContain(
      'CRITICAL app-db  row-count: public.orders has 998 rows, the manifest recorded 1000',
    );
  });

  it('alerts with the agent error line when the drill printed no result', async () => {
    const { handler, ssmMock, alerts } = setup();
    ssmMock.on(GetCommandInvocationCommand).resolves({
      Status: 'Failed',
      ResponseCode: 2,
      StandardErrorContent: 'strongbox: error: cannot read plan /etc/strongbox/plan.json: ENOENT\n',
    });
    await handler(commandStatusEvent('Failed', { 'instance-id': DRILL_HOST }));
    expect(alerts()[0]?.alert.findings).toEqual([
      expect.objectContaining({
        check: 'drill-failed',
        message: 'cannot read plan /etc/strongbox/plan.json: ENOENT',
      }),
    ]);
    expect(alerts()[0]?.text).toContain('Nothing was restored.');
  });

  it('leaves restore commands to the restore function', async () => {
    const { handler, alerts } = setup({ action: 'restore' });
    expect(await handler(commandStatusEvent('Failed'))).toMatchObject({ status: 'ignored' });
    expect(alerts()).toEqual([]);
  });
});
