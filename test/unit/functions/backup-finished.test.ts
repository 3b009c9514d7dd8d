import { PublishCommand } from '@aws-sdk/client-sns';
import { GetCommandInvocationCommand, ListCommandsCommand, SSMServiceException } from '@aws-sdk/client-ssm';
import { describe, expect, it } from 'vitest';
import { PlanError } from '#core/errors';
import { type BackupFinishedServices, createBackupFinishedHandler } from '#functions/backup-finished';
import { ALERT_ATTRIBUTE } from '#functions/lib/alerts';
import { COMMAND_ID, commandStatusEvent, INSTANCE_ID } from './events';
import { MemoryVault } from './support/memory-vault';
import { captureOutput } from './support/output';
import { testServices } from './support/services';

const out = captureOutput();
const BACKUP_ID = '20241206T020000Z-fb5f62';
const RESULT = {
  job: 'app-db',
  backupId: BACKUP_ID,
  tier: 'daily',
  kind: 'postgres',
  sourceBytes: 312_475_136,
  storedBytes: 48_213_904,
  objects: 1,
  durationSeconds: 271.4,
  manifestKey: `backups/app-db/${BACKUP_ID}/manifest.json`,
};
const PG_ERROR =
  'pg_dump exited with status 1: pg_dump: error: connection to server at "10.0.3.12", port 5432 failed: FATAL:  password authentication failed for user "backup"';

function setup(action = 'backup') {
  const t = testServices({ vault: new MemoryVault(), service: 'backup-finished' });
  t.ssmMock.on(ListCommandsCommand).resolves({
    Commands: [
      {
        CommandId: COMMAND_ID,
        Parameters: { action: [action], job: ['app-db'], backupId: [BACKUP_ID], tier: ['daily'] },
        Comment: `strongbox ${action} app-db ${BACKUP_ID}`,
      },
    ],
  });
  t.snsMock.on(PublishCommand).resolves({ MessageId: 'm-1' });
  const handler = createBackupFinishedHandler(async () => t.services as BackupFinishedServices);
  return { ...t, handler };
}

const published = (snsMock: ReturnType<typeof setup>['snsMock']) =>
  snsMock.commandCalls(PublishCommand).map((c) => c.args[0].input);

describe('backup-finished', () => {
  it('records bytes and duration of a successful backup, without an alert', async () => {
    // Prepare
    const { handler, ssmMock, snsMock } = setup();
    ssmMock.on(GetCommandInvocationCommand).resolves({
      Status: 'Success',
      StatusDetails: 'Success',
      ResponseCode: 0,
      StandardOutputContent: `installing agent 0.1.0 (sha256 ok)\n${JSON.stringify(RESULT)}\n`,
      StandardErrorContent: 'strongbox: backup app-db 20241206T020000Z-fb5f62 (daily) → s3://backups-test\n',
    });
    // Act
    const result = await handler(commandStatusEvent('Success'));
    // Assess
    expect(result).toEqual({
      status: 'succeeded',
      job: 'app-db',
      backupId: BACKUP_ID,
      instanceId: INSTANCE_ID,
      alerted: false,
    });
    expect(ssmMock.commandCalls(GetCommandInvocationCommand)[0]?.args[0].input).toEqual({
      CommandId: COMMAND_ID,
      InstanceId: INSTANCE_ID,
      PluginName: 'runStrongbox',
    });
    const [line] = out.emf();
    expect(line?.namespace).toBe('Strongbox');
    expect(line?.dimensions).toEqual([['Job']]);
    expect(line?.values).toMatchObject({
      Job: 'app-db',
      BackupSucceeded: 1,
      BackupFailed: 0,
      LastBackupBytes: 48_213_904,
      BackupDurationSeconds: 271.4,
    });
    expect(published(snsMock)).toEqual([]);
  });

  it('alerts with job, host and the agent error line when the backup failed', async () => {
    const { handler, ssmMock, snsMock } = setup();
    ssmMock.on(GetCommandInvocationCommand).resolves({
      Status: 'Failed',
      StatusDetails: 'Failed',
      ResponseCode: 2,
      StandardOutputContent: '',
      StandardErrorContent: `strongbox: backup app-db ${BACKUP_ID} (daily) → s3://backups-test\nstrongbox: error: ${PG_ERROR}\n`,
    });
    const result = await handler(commandStatusEvent('Failed'));
    expect(result).toMatchObject({ status: 'failed', reason: PG_ERROR, alerted: true });
    expect(out.metric('BackupFailed', 'app-db')).toEqual([1]);
    expect(out.metric('BackupSucceeded', 'app-db')).toEqual([0]);
    const [alert] = published(snsMock);
    expect(alert?.TopicArn).toBe('arn:aws:sns:eu-central-1:111122223333:strongbox-alerts');
    expect(alert?.Subject).toBe(
      '[Strongbox CRITICAL] Backup failed: app-db on db-primary (i-0123456789abcdef0)',
    );
    expect(alert?.Message).toBe(
      [
        'CRITICAL — Backup failed: app-db on db-primary (i-0123456789abcdef0)',
        '',
        'Plan:    acme-prod',
        'Job:     app-db',
        'Host:    db-primary (i-0123456789abcdef0)',
        `Backup:  ${BACKUP_ID}`,
        'When:    2024-12-06T02:00:03.000Z',
        '',
        'What happened',
        `  Agent error: ${PG_ERROR}`,
        `  Command ${COMMAND_ID}: Failed, exit code 2 on i-0123456789abcdef0.`,
        '  Nothing was committed: a backup without its manifest never counts, so the previous complete backup is still the newest.',
        '',
        'What to do next',
        `  1. Read the full output in CloudWatch Logs group /strongbox/commands, streams ${COMMAND_ID}/i-0123456789abcdef0/runStrongbox/stdout and …/stderr.`,
        "  2. On the host, check the job's tools, database access and vault: strongbox doctor --plan /etc/strongbox/plan.json --job app-db",
        '  3. Run the backup again once fixed: invoke the run-backup function with {"job":"app-db"} (docs/functions.md).',
        '',
        '— Strongbox backup-finished',
      ].join('\n'),
    );
    expect(JSON.parse(alert?.MessageAttributes?.[ALERT_ATTRIBUTE]?.StringValue ?? '{}')).toMatchObject({
      severity: 'critical',
      job: 'app-db',
      host: 'db-primary (i-0123456789abcdef0)',
      backupId: BACKUP_ID,
      details: expect.arrayContaining([`Agent error: ${PG_ERROR}`]),
    });
  });

  it.each([
    ['TimedOut', 'Delivery Timed Out', 'The host never ran the command (Delivery Timed Out)'],
    ['TimedOut', 'Execution Timed Out', "stopped at the document's execution timeout"],
    ['Cancelled', 'Cancelled', 'The command was cancelled'],
    ['Failed', 'Failed', 'its last output was: /opt/strongbox/strongbox.mjs: line 1: node: not found'],
  ])('explains a %s (%s) invocation without an agent error line', async (status, details, expected) => {
    const { handler, ssmMock, snsMock } = setup();
    ssmMock.on(GetCommandInvocationCommand).resolves({
      Status: status as 'Failed',
      StatusDetails: details,
      ResponseCode: status === 'Failed' ? 127 : -1,
      StandardErrorContent:
        status === 'Failed' ? '/opt/strongbox/strongbox.mjs: line 1: node: not found\n' : '',
    });
    expect(await handler(commandStatusEvent(status))).toMatchObject({ status: 'failed', alerted: true });
    expect(published(snsMock)[0]?.Message).toContain(expected);
  });

  it('warns when a successful command printed no readable result', async () => {
    const { handler, ssmMock, snsMock } = setup();
    ssmMock
      .on(GetCommandInvocationCommand)
      .resolves({ Status: 'Success', ResponseCode: 0, StandardOutputContent: 'done\n' });
    expect(await handler(commandStatusEvent('Success'))).toMatchObject({
      status: 'succeeded',
      alerted: true,
    });
    expect(published(snsMock)[0]?.Subject).toBe(
      '[Strongbox WARNING] Backup result unreadable: app-db on db-primary (i-0123456789abcdef0)',
    );
    expect(out.metric('BackupSucceeded', 'app-db')).toEqual([1]);
    expect(out.metric('LastBackupBytes', 'app-db')).toEqual([]);
  });

  it('reads the output without a step name when the document has another one, and waits for SSM to know the invocation', async () => {
    const { handler, ssmMock } = setup();
    ssmMock
      .on(GetCommandInvocationCommand)
      .rejectsOnce(
        new SSMServiceException({ name: 'InvocationDoesNotExist', $fault: 'client', $metadata: {} }),
      )
      .rejectsOnce(new SSMServiceException({ name: 'InvalidPluginName', $fault: 'client', $metadata: {} }))
      .resolves({ Status: 'Success', StandardOutputContent: JSON.stringify(RESULT) });
    expect(await handler(commandStatusEvent('Success'))).toMatchObject({ status: 'succeeded' });
    const inputs = ssmMock.commandCalls(GetCommandInvocationCommand).map((c) => c.args[0].input.PluginName);
    expect(inputs).toEqual(['runStrongbox', 'runStrongbox', undefined]);
  });

  it.each([
    ['another document', commandStatusEvent('Failed', { 'document-name': 'AWS-RunShellScript' }), 'backup'],
    ['a status that is not final', commandStatusEvent('InProgress'), 'backup'],
    ['a restore command', commandStatusEvent('Failed'), 'restore'],
    ['a drill command', commandStatusEvent('Failed'), 'drill'],
  ])('ignores %s', async (_what, event, action) => {
    const { handler, ssmMock, snsMock } = setup(action);
    expect(await handler(event)).toMatchObject({ status: 'ignored', alerted: false });
    expect(ssmMock.commandCalls(GetCommandInvocationCommand)).toHaveLength(0);
    expect(published(snsMock)).toEqual([]);
    expect(out.emf()).toEqual([]);
  });

  it.each([
    [{}, 'backup-finished event: source: required'],
    [
      { source: 'aws.ec2', 'detail-type': 'EC2 Instance State-change Notification', detail: {} },
      'backup-finished event: source: must be "aws.ssm", got string "aws.ec2"',
    ],
    [
      {
        source: 'aws.ssm',
        'detail-type': 'EC2 Command Invocation Status-change Notification',
        detail: { status: 'Failed' },
      },
      'backup-finished event: detail.command-id: required; detail.instance-id: required; detail.document-name: required',
    ],
  ])('refuses the malformed event %j and calls nothing', async (event, message) => {
    const { handler, ssmMock, snsMock } = setup();
    const error = await handler(event).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toContain(message);
    expect(ssmMock.calls()).toHaveLength(0);
    expect(snsMock.calls()).toHaveLength(0);
  });
});
