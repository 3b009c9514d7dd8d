import { PublishCommand } from '@aws-sdk/client-sns';
import { GetCommandInvocationCommand, ListCommandsCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import { describe, expect, it } from 'vitest';
import type { AgentRestoreResult } from '#core/agent-output';
import { PlanError } from '#core/errors';
import { createRestoreReportHandler, type RestoreReportServices } from '#functions/restore-report';
import { COMMAND_ID, commandStatusEvent } from './events';
import { MemoryVault } from './support/memory-vault';
import { captureOutput } from './support/output';
import { fixedClock, publishedAlerts, testServices } from './support/services';

captureOutput();
const NOW = new Date('2024-12-06T09:05:00Z');
const BACKUP_ID = '20241205T090000Z-abcdef';

function setup(action = 'restore') {
  const vault = new MemoryVault(() => NOW);
  const t = testServices({ vault, clock: fixedClock(NOW), service: 'restore-report' });
  t.ssmMock.on(ListCommandsCommand).resolves({
    Commands: [
      { CommandId: COMMAND_ID, Parameters: { action: [action], job: ['app-db'], backupId: [BACKUP_ID] } },
    ],
  });
  t.snsMock.on(PublishCommand).resolves({ MessageId: 'm-1' });
  const handler = createRestoreReportHandler(async () => t.services as RestoreReportServices);
  const alerts = () => publishedAlerts(t.snsMock);
  return { ...t, handler, alerts, vault };
}

function restoreOutput(fields: Partial<AgentRestoreResult> = {}): string {
  const result: AgentRestoreResult = {
    job: 'app-db',
    backupId: BACKUP_ID,
    kind: 'postgres',
    mode: 'scratch',
    target: 'app_restore_20241206t090000',
    sourceBytes: 1000,
    durationSeconds: 271,
    checks: [],
    findings: [],
    ...fields,
  };
  return `installing strongbox 0.1.0\n${JSON.stringify(result)}\n`;
}

describe('restore-report', () => {
  it('tells the alert topic that a restore finished — and touches neither the vault nor a host', async () => {
    // Prepare
    const { handler, ssmMock, alerts, vault } = setup();
    ssmMock
      .on(GetCommandInvocationCommand)
      .resolves({ Status: 'Success', ResponseCode: 0, StandardOutputContent: restoreOutput() });
    // Act
    const result = await handler(commandStatusEvent('Success'));
    // Assess
    expect(result).toEqual({
      status: 'finished',
      job: 'app-db',
      backupId: BACKUP_ID,
      instanceId: 'i-0123456789abcdef0',
      alerted: true,
    });
    const [sent] = alerts();
    expect(sent?.subject).toBe(
      '[Strongbox INFO] Restore finished: app-db on db-primary (i-0123456789abcdef0)',
    );
    expect(sent?.text).toContain(`Restored ${BACKUP_ID} into 'app_restore_20241206t090000' in 4m 31s.`);
    expect(sent?.alert.source).toBe('restore-report');
    expect(ssmMock.commandCalls(SendCommandCommand)).toEqual([]);
    expect(vault.calls).toEqual({ get: 0, list: 0, head: 0, put: 0, delete: 0 });
  });

  it('names where the previous database is kept after a replace, and warns about a finding', async () => {
    const { handler, ssmMock, alerts } = setup();
    ssmMock.on(GetCommandInvocationCommand).resolves({
      Status: 'Success',
      ResponseCode: 1,
      StandardOutputContent: restoreOutput({
        mode: 'replace',
        target: 'app',
        keptAs: 'app_pre_20241206t090000',
        safetyBackupId: '20241206T090000Z-0a1b2c',
        findings: [
          {
            severity: 'warning',
            job: 'app-db',
            check: 'row-count',
            backupId: BACKUP_ID,
            message: 'public.orders has 999 rows, the manifest says 1000',
          },
        ],
      }),
    });
    expect(await handler(commandStatusEvent('Success'))).toMatchObject({ status: 'finished' });
    const [sent] = alerts();
    expect(sent?.alert).toMatchObject({
      severity: 'warning',
      findings: [expect.objectContaining({ check: 'row-count' })],
    });
    expect(sent?.text).toContain(
      "Restored 20241205T090000Z-abcdef over 'app' in 4m 31s; the previous database is kept as 'app_pre_20241206t090000' (safety backup 20241206T090000Z-0a1b2c).",
    );
  });

  it('alerts with the agent error line when a restore failed', async () => {
    const { handler, ssmMock, alerts } = setup();
    ssmMock.on(GetCommandInvocationCommand).resolves({
      Status: 'Failed',
      ResponseCode: 2,
      StandardErrorContent: `strongbox: error: backups/app-db/${BACKUP_ID}/data.zst.sbx: chunk 12 failed authentication\n`,
    });
    expect(await handler(commandStatusEvent('Failed'))).toMatchObject({ status: 'failed' });
    expect(alerts()[0]?.alert).toMatchObject({
      severity: 'critical',
      title: 'Restore failed: app-db on db-primary (i-0123456789abcdef0)',
      backupId: BACKUP_ID,
      details: expect.arrayContaining([
        `Agent error: backups/app-db/${BACKUP_ID}/data.zst.sbx: chunk 12 failed authentication`,
      ]),
    });
  });

  it('does not confirm a successful command whose result breaks the output contract', async () => {
    const { handler, ssmMock, alerts } = setup();
    const renamed = restoreOutput().replace('"durationSeconds"', '"seconds"');
    ssmMock
      .on(GetCommandInvocationCommand)
      .resolves({ Status: 'Success', ResponseCode: 0, StandardOutputContent: renamed });
    expect(await handler(commandStatusEvent('Success'))).toMatchObject({ status: 'failed' });
    expect(alerts()[0]?.alert).toMatchObject({
      severity: 'critical',
      details: expect.arrayContaining([
        expect.stringMatching(
          /^The command succeeded but the agent's --json result is unreadable \(.*durationSeconds: required.*unknown field 'seconds'/,
        ),
      ]),
    });
  });

  it('leaves backup commands to backup-finished', async () => {
    const { handler, alerts } = setup('backup');
    expect(await handler(commandStatusEvent('Failed'))).toMatchObject({ status: 'ignored' });
    expect(alerts()).toEqual([]);
  });

  it('refuses an event that is not an SSM status change', async () => {
    const { handler } = setup();
    await expect(handler({ job: 'app-db', latest: true })).rejects.toThrow(PlanError);
  });
});
