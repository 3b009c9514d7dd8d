import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Logger } from '@aws-lambda-powertools/logger';
import { GetParameterCommand, SSMClient, SSMServiceException } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PlanError, StrongboxError } from '#core/errors';
import { ALERT_ATTRIBUTE, type Alert, alertSubject, formatAlertText, makeAlert } from '#functions/lib/alerts';
import { createNotifySlackHandler, type NotifySlackServices, webhookFromSsm } from '#functions/notify-slack';
import { captureOutput } from './support/output';
import { fixedClock, TEST_ENV } from './support/services';

const out = captureOutput();
const SECRET = 'T0SECRET/B0SECRET/xoxSECRETTOKEN123456';

/** A local stand-in for Slack's webhook endpoint: answers from a script, records what it got. */
let server: Server;
let port = 0;
let script: { status: number; body?: string; headers?: Record<string, string> }[] = [];
const received: { path: string; body: unknown }[] = [];
beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let data = '';
    req.on('data', (chunk) => {
      data += chunk;
    });
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: JSON.parse(data) });
      const answer = script.shift() ?? { status: 200, body: 'ok' };
      res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
      res.end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
afterEach(() => {
  // The webhook URL is a secret: nothing the function wrote may contain it.
  expect(out.text()).not.toContain('xoxSECRETTOKEN');
  script = [];
  received.length = 0;
});

const ALERT: Alert = makeAlert({
  severity: 'critical',
  title: 'Backup failed: app-db on db-primary (i-0123456789abcdef0)',
  plan: 'acme-prod',
  job: 'app-db',
  host: 'db-primary (i-0123456789abcdef0)',
  backupId: '20241206T020000Z-fb5f62',
  details: [
    'Agent error: pg_dump exited with status 1: pg_dump: error: connection to server at "10.0.3.12", port 5432 failed: FATAL:  password authentication failed for user "backup"',
    'Command 0b7f5a2c-1111-2222-3333-444455556666: Failed, exit code 2 on i-0123456789abcdef0.',
  ],
  nextSteps: [
    'Read the full output in CloudWatch Logs group /strongbox/commands.',
    'On the host: strongbox doctor --plan /etc/strongbox/plan.json --job app-db',
  ],
  source: 'backup-finished',
  at: '2024-12-06T02:07:14.000Z',
});

function snsEvent(message: { Subject?: string; Message: string; attribute?: string }) {
  return {
    Records: [
      {
        EventSource: 'aws:sns',
        EventVersion: '1.0',
        EventSubscriptionArn: `${TEST_ENV.topicArn}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55`,
        Sns: {
          Type: 'Notification',
          MessageId: '95df01b4-ee98-5cb9-9903-4c221d41eb5e',
          TopicArn: TEST_ENV.topicArn,
          Subject: message.Subject ?? null,
          Message: message.Message,
          Timestamp: '2024-12-06T02:07:14.321Z',
          MessageAttributes: message.attribute
            ? { [ALERT_ATTRIBUTE]: { Type: 'String', Value: message.attribute } }
            : {},
        },
      },
    ],
  };
}

const alertEvent = (alert: Alert) =>
  snsEvent({
    Subject: alertSubject(alert),
    Message: formatAlertText(alert),
    attribute: JSON.stringify(alert),
  });

function setup() {
  const ssm = new SSMClient({ region: 'eu-central-1' });
  const ssmMock = mockClient(ssm);
  ssmMock
    .on(GetParameterCommand)
    .resolves({ Parameter: { Value: `http://127.0.0.1:${port}/services/${SECRET}` } });
  const clock = fixedClock(new Date('2024-12-06T02:07:15Z'));
  const sleeps: number[] = [];
  const services: NotifySlackServices = {
    env: { slackWebhookParameter: TEST_ENV.slackWebhookParameter },
    ssm,
    logger: new Logger({ serviceName: 'notify-slack', logLevel: 'DEBUG' }),
    fetch: globalThis.fetch,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    clock,
    webhook: webhookFromSsm(ssm, TEST_ENV.slackWebhookParameter, clock),
  };
  return { handler: createNotifySlackHandler(async () => services), ssmMock, sleeps, clock };
}

describe('notify-slack', () => {
  it('posts one readable message per alert: severity, job, host, what happened, what to do next', async () => {
    // Prepare
    const { handler, ssmMock } = setup();
    // Act
    const result = await handler(alertEvent(ALERT));
    // Assess
    expect(result).toEqual({ delivered: 1, attempts: [1] });
    expect(ssmMock.commandCalls(GetParameterCommand)[0]?.args[0].input).toEqual({
      Name: '/strongbox/slack-webhook',
      WithDecryption: true,
    });
    expect(received).toHaveLength(1);
    expect(received[0]?.path).toBe(`/services/${SECRET}`);
    expect(received[0]?.body).toEqual({
      text: 'CRITICAL — Backup failed: app-db on db-primary (i-0123456789abcdef0)',
      blocks: [
        {
          type: 'header',
          text: {
            type: 'plain_text',
            text: ':red_circle: CRITICAL · Backup failed: app-db on db-primary (i-0123456789abcdef0)',
            emoji: true,
          },
        },
        {
          type: 'section',
          fields: [
            { type: 'mrkdwn', text: '*Job*\napp-db' },
            { type: 'mrkdwn', text: '*Host*\ndb-primary (i-0123456789abcdef0)' },
            { type: 'mrkdwn', text: '*Backup*\n`20241206T020000Z-fb5f62`' },
            { type: 'mrkdwn', text: '*Plan*\nacme-prod' },
          ],
        },
        {
          type: 'section',
          text: {
            type: 'mrkdwn',
            text:
              '*What happened*\n• Agent error: pg_dump exited with status 1: pg_dump: error: connection to server at "10.0.3.12", port 5432 failed: FATAL:  password authentication failed for user "backup"\n' +
              '• Command 0b7f5a2c-1111-2222-3333-444455556666: Failed, exit code 2 on i-0123456789abcdef0.',
          },
        },
        {
          type: 'section',
          text: {
            type: 'mrkdwn',
            text: '*What to do next*\n1. Read the full output in CloudWatch Logs group /strongbox/commands.\n2. On the host: strongbox doctor --plan /etc/strongbox/plan.json --job app-db',
          },
        },
        {
          type: 'context',
          elements: [{ type: 'mrkdwn', text: 'Strongbox backup-finished · 2024-12-06T02:07:14.000Z' }],
        },
      ],
    });
  });

  it('lists findings worst first and escapes what Slack would read as markup', async () => {
    const { handler } = setup();
    const alert = makeAlert({
      ...ALERT,
      severity: 'warning',
      title: 'Verification: 1 critical, 1 warning in 1 of 2 jobs',
      findings: [
        {
          severity: 'warning',
          job: 'app-db',
          check: 'backup-size',
          message: 'newest backup has 10 bytes, under 50% of <median>',
        },
        { severity: 'critical', job: 'app-db', check: 'wal-gap', message: 'WAL gap & more' },
      ],
    });
    await handler(alertEvent(alert));
    const blocks = (received[0]?.body as { blocks: { text?: { text: string } }[] } | undefined)?.blocks ?? [];
    expect(blocks.map((b) => b.text?.text).find((t) => t?.startsWith('*Findings*'))).toBe(
      '*Findings* (1 critical, 1 warning)\n:red_circle: `app-db` *wal-gap* — WAL gap &amp; more\n:large_orange_circle: `app-db` *backup-size* — newest backup has 10 bytes, under 50% of &lt;median&gt;',
    );
  });

  it('waits Retry-After on 429 and backs off on 5xx, then delivers', async () => {
    const { handler, sleeps } = setup();
    script = [
      { status: 429, body: 'rate_limited', headers: { 'retry-after': '3' } },
      { status: 503, body: 'service_unavailable' },
    ];
    expect(await handler(alertEvent(ALERT))).toEqual({ delivered: 1, attempts: [3] });
    expect(sleeps).toEqual([3000, 2000]);
    expect(received).toHaveLength(3);
  });

  it('gives up after five failed attempts with the last status, never the URL', async () => {
    const { handler } = setup();
    script = Array.from({ length: 5 }, () => ({ status: 500, body: 'internal_error' }));
    const error = await handler(alertEvent(ALERT)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StrongboxError);
    expect((error as Error).message).toBe(
      'Slack did not take the message after 5 attempts (last: HTTP 500 internal_error)',
    );
  });

  it('does not retry a refused webhook and says which parameter to fix', async () => {
    const { handler } = setup();
    script = [{ status: 404, body: 'no_service' }];
    const error = await handler(alertEvent(ALERT)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toBe(
      'Slack refused the message (HTTP 404 no_service): check the webhook in SSM parameter /strongbox/slack-webhook (revoked, or its channel archived) and put a working one there',
    );
    expect(received).toHaveLength(1);
  });

  it('shows CloudWatch alarms and plain messages of the same topic', async () => {
    const { handler } = setup();
    const alarm = {
      AlarmName: 'strongbox-app-db-backup-age',
      AlarmDescription: 'No complete backup of app-db for 30 hours',
      NewStateValue: 'ALARM',
      NewStateReason: 'Threshold Crossed: 1 datapoint [108000.0] was greater than the threshold (108000.0).',
      StateChangeTime: '2024-12-07T08:00:00.000+0000',
      Trigger: {
        MetricName: 'BackupAgeSeconds',
        Namespace: 'Strongbox',
        Dimensions: [{ name: 'Job', value: 'app-db' }],
      },
    };
    await handler(
      snsEvent({ Subject: 'ALARM: "strongbox-app-db-backup-age"', Message: JSON.stringify(alarm) }),
    );
    await handler(snsEvent({ Subject: 'Hello', Message: 'subscription test' }));
    expect((received[0]?.body as { text: string } | undefined)?.text).toBe(
      'ALARM — strongbox-app-db-backup-age is ALARM',
    );
    expect(JSON.stringify(received[0]?.body)).toContain(
      'Metric: `Strongbox/BackupAgeSeconds` for job `app-db`',
    );
    expect(received[1]?.body).toMatchObject({ text: 'Hello' });
  });

  it('reads the webhook once per five minutes', async () => {
    const { handler, ssmMock, clock } = setup();
    await handler(alertEvent(ALERT));
    await handler(alertEvent(ALERT));
    clock.set(new Date('2024-12-06T02:12:16Z'));
    await handler(alertEvent(ALERT));
    expect(ssmMock.commandCalls(GetParameterCommand)).toHaveLength(2);
  });

  it.each([
    [
      'a missing parameter',
      { name: 'ParameterNotFound' },
      'SSM parameter /strongbox/slack-webhook does not exist',
    ],
    ['a value that is not a URL', { value: 'xoxb-not-a-webhook' }, 'does not hold an https URL'],
  ])('fails clearly on %s, without showing its value', async (_what, given, message) => {
    const { handler, ssmMock } = setup();
    if ('name' in given) {
      ssmMock
        .on(GetParameterCommand)
        .rejects(new SSMServiceException({ name: given.name, $fault: 'client', $metadata: {} }));
    } else {
      ssmMock.on(GetParameterCommand).resolves({ Parameter: { Value: given.value } });
    }
    const error = await handler(alertEvent(ALERT)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toContain(message);
    expect((error as Error).message).not.toContain('xoxb');
    expect(received).toEqual([]);
  });

  it.each([
    [{}, 'notify-slack event: Records: required'],
    [{ Records: [] }, 'notify-slack event: Records: Too small'],
    [{ Records: [{ Sns: { Subject: 'x' } }] }, 'notify-slack event: Records[0].Sns.Message: required'],
  ])('refuses the malformed event %j and posts nothing', async (event, message) => {
    const { handler, ssmMock } = setup();
    const error = await handler(event).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toContain(message);
    expect(ssmMock.calls()).toHaveLength(0);
    expect(received).toEqual([]);
  });
});
