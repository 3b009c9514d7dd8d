/**
 * The AWS flow end to end, locally: run-backup → (SSM) agent → backup-finished → verify →
 * restore-request → (SSM) agent → restore-report → restore-drill → (SSM) agent → restore-drill, against
 * a real PostgreSQL and a real S3-protocol server (s3rver). SSM is the local adapter
 * (test/support/ssm-adapter.ts), which runs the real agent CLI as the Strongbox document would and emits
 * the status-change events EventBridge would deliver — each event goes to all three functions the rule
 * targets (backup-finished, restore-report, restore-drill). s3rver keeps every object in Standard, so the
 * archive path (restore-request → retrieval → restore-continue) is covered by the unit tests over a
 * vault with storage classes; here restore-continue only meets a retrieval event nobody waits for.
 * SNS is mocked at the SDK:
 * every alert published is also delivered through notify-slack to a local stand-in for Slack.
 *
 * Set STRONGBOX_E2E_ALERTS=<file> to keep the alert texts and Slack bodies of a run (for docs).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { PublishCommand, type PublishCommandInput, SNSClient } from '@aws-sdk/client-sns';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ClaimStore } from '#adapters/aws/claims';
import { S3Vault } from '#adapters/vaults/s3';
import { listBackups } from '#core/catalog';
import { AGENT_ENV } from '#core/deployment';
import { type Plan, parsePlan } from '#core/plan';
import { systemClock } from '#core/ports';
import { createBackupFinishedHandler } from '#functions/backup-finished';
import { ALERT_ATTRIBUTE } from '#functions/lib/alerts';
import { createMetrics } from '#functions/lib/metrics';
import { createNotifySlackHandler, webhookFromSsm } from '#functions/notify-slack';
import { createRestoreContinueHandler } from '#functions/restore-continue';
import { createRestoreDrillHandler } from '#functions/restore-drill';
import { createRestoreReportHandler } from '#functions/restore-report';
import { createRestoreRequestHandler } from '#functions/restore-request';
import { createRunBackupHandler } from '#functions/run-backup';
import type { Services } from '#functions/runtime';
import { createVerifyHandler } from '#functions/verify';
import { strongbox } from '#test/support/cli';
import { type PgServer, startPostgres } from '#test/support/postgres';
import { S3RVER_CREDENTIALS, type S3rverInstance, startS3rver } from '#test/support/s3rver';
import { LocalSsm } from '#test/support/ssm-adapter';
import { fillDemoDatabase } from '../../scripts/lib/postgres-cluster';
import { captureOutput } from '../unit/functions/support/output';
import { conditionalS3, TEST_ENV } from '../unit/functions/support/services';

const out = captureOutput();
const DOCUMENT = 'Strongbox-Agent-E2E';
const HOST = 'i-0e2e0000000000001';

let pg: PgServer;
let s3: S3rverInstance;
let dir: string;
let plan: Plan;
let ssm: LocalSsm;
let slack: Server;
const slackBodies: unknown[] = [];
const published: PublishCommandInput[] = [];

/** The functions, wired as the stack wires them, over the local SSM, s3rver and a mocked SNS. */
let fn: {
  runBackup: ReturnType<typeof createRunBackupHandler>;
  backupFinished: ReturnType<typeof createBackupFinishedHandler>;
  verify: ReturnType<typeof createVerifyHandler>;
  restoreRequest: ReturnType<typeof createRestoreRequestHandler>;
  restoreContinue: ReturnType<typeof createRestoreContinueHandler>;
  restoreReport: ReturnType<typeof createRestoreReportHandler>;
  restoreDrill: ReturnType<typeof createRestoreDrillHandler>;
  notifySlack: ReturnType<typeof createNotifySlackHandler>;
};

function planYaml(keyPath: string, customers: string): string {
  return `version: 1
name: e2e
timezone: UTC
vault: { url: 's3://${s3.bucket}', endpoint: '${s3.endpoint}', forcePathStyle: true, checksums: when-required }
key: { type: local, path: '${keyPath}' }
hosts:
  db-host: { instanceIds: [${HOST}] }
jobs:
  - name: shop
    host: db-host
    schedule: cron(0 2 * * ? *)
    source: { kind: postgres, database: shop, host: 127.0.0.1, port: ${pg.port}, user: postgres }
    timeout: 10m
    drill:
      rto: 1h
      checks: [{ name: customers, query: 'select count(*) from customers', expect: ${customers} }]
  - name: broken
    host: db-host
    schedule: cron(0 3 * * ? *)
    source: { kind: postgres, database: does_not_exist, host: 127.0.0.1, port: ${pg.port}, user: postgres }
    timeout: 10m
`;
}

/** Delivers each SSM status-change event to the three functions the EventBridge rule targets. */
async function deliver(events: Awaited<ReturnType<LocalSsm['settle']>>) {
  const results = [];
  for (const event of events) {
    results.push({
      backupFinished: await fn.backupFinished(event),
      restoreReport: await fn.restoreReport(event),
      restoreDrill: await fn.restoreDrill(event),
    });
  }
  await flushAlerts();
  return results;
}

/** Sends the alerts published so far through notify-slack, as the topic's subscription would. */
let delivered = 0;
async function flushAlerts(): Promise<void> {
  for (const message of published.slice(delivered)) {
    await fn.notifySlack({
      Records: [
        {
          Sns: {
            MessageId: `m-${delivered}`,
            Subject: message.Subject,
            Message: message.Message ?? '',
            MessageAttributes: {
              [ALERT_ATTRIBUTE]: {
                Type: 'String',
                Value: message.MessageAttributes?.[ALERT_ATTRIBUTE]?.StringValue ?? '',
              },
            },
          },
        },
      ],
    });
    delivered++;
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'strongbox-e2e-'));
  [pg, s3] = await Promise.all([startPostgres({ databases: ['shop'] }), startS3rver('backups-test')]);
  await fillDemoDatabase(pg, 'shop', { scale: 0.02 });
  const keyPath = join(dir, 'master.key');
  const keygen = await strongbox(['keygen', keyPath]);
  expect(keygen.code, keygen.stderr).toBe(0);
  const yaml = planYaml(keyPath, await pg.psql('select count(*) from customers', 'shop'));
  const planPath = join(dir, 'plan.yaml');
  await writeFile(planPath, yaml);
  plan = parsePlan(yaml, planPath);

  // Slack's stand-in.
  slack = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      slackBodies.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => slack.listen(0, '127.0.0.1', resolve));

  // What the document exports on the host, plus the host's credentials for s3rver.
  ssm = new LocalSsm({
    documentName: DOCUMENT,
    planPath,
    jobs: plan.jobs.map((j) => j.name),
    env: {
      [AGENT_ENV.vaultUrl]: `s3://${s3.bucket}`,
      [AGENT_ENV.region]: 'us-east-1',
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    },
  });
  const vault = new S3Vault(plan.vault, {
    env: {
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    },
  });
  const sns = new SNSClient({ region: 'us-east-1' });
  mockClient(sns)
    .on(PublishCommand)
    .callsFake((input: PublishCommandInput) => {
      published.push(input);
      return { MessageId: `m-${published.length}` };
    });
  const claims = conditionalS3(vault);
  const services = (name: string): Services => ({
    env: { ...TEST_ENV, documentName: DOCUMENT, vaultBucket: s3.bucket },
    plan,
    vault,
    claims: new S3ClaimStore(claims.client, s3.bucket, async () => {}),
    s3: claims.client,
    ssm: ssm.client,
    sns,
    logger: new Logger({ serviceName: name }),
    metrics: createMetrics(name),
    clock: systemClock,
    sleep: async () => {},
  });
  const parameterStore = new SSMClient({ region: 'us-east-1' });
  mockClient(parameterStore)
    .on(GetParameterCommand)
    .resolves({
      Parameter: {
        Value: `http://127.0.0.1:${(slack.address() as AddressInfo).port}/services/TE2E/BE2E/e2eSecretToken`,
      },
    });
  fn = {
    runBackup: createRunBackupHandler(async () => services('run-backup')),
    backupFinished: createBackupFinishedHandler(async () => services('backup-finished')),
    verify: createVerifyHandler(async () => services('verify')),
    restoreRequest: createRestoreRequestHandler(async () => services('restore-request')),
    restoreContinue: createRestoreContinueHandler(async () => services('restore-continue')),
    restoreReport: createRestoreReportHandler(async () => services('restore-report')),
    restoreDrill: createRestoreDrillHandler(async () => services('restore-drill')),
    notifySlack: createNotifySlackHandler(async () => ({
      env: { slackWebhookParameter: TEST_ENV.slackWebhookParameter },
      ssm: parameterStore,
      logger: new Logger({ serviceName: 'notify-slack' }),
      fetch: globalThis.fetch,
      sleep: async () => {},
      clock: systemClock,
      webhook: webhookFromSsm(parameterStore, TEST_ENV.slackWebhookParameter, systemClock),
    })),
  };
}, 240_000);

afterAll(async () => {
  ssm?.stop();
  await new Promise<void>((resolve) => (slack ? slack.close(() => resolve()) : resolve()));
  await Promise.all([pg?.stop(), s3?.stop()]);
  const keep = process.env.STRONGBOX_E2E_ALERTS;
  if (keep) {
    const text = published.map(
      (p, i) =>
        `--- alert ${i + 1}: ${p.Subject}\n${p.Message}\n\n--- Slack body ${i + 1}\n${JSON.stringify(slackBodies[i], null, 2)}\n`,
    );
    await writeFile(keep, text.join('\n'));
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the AWS flow, locally', () => {
  const scheduledTime = new Date(Math.floor(Date.now() / 60_000) * 60_000).toISOString();

  it('run-backup → agent → backup-finished: a scheduled backup is stored and measured, once', async () => {
    // Act
    const started = await fn.runBackup({ job: 'shop', scheduledTime });
    const retried = await fn.runBackup({ job: 'shop', scheduledTime });
    const results = await deliver(await ssm.settle());
    // Assess
    expect(started).toMatchObject({ status: 'started', tier: 'yearly' });
    expect(retried).toMatchObject({ status: 'duplicate', backupId: started.backupId });
    expect(results).toEqual([
      {
        backupFinished: expect.objectContaining({
          status: 'succeeded',
          job: 'shop',
          backupId: started.backupId,
        }),
        restoreReport: expect.objectContaining({ status: 'ignored' }),
        restoreDrill: expect.objectContaining({ status: 'ignored' }),
      },
    ]);
    const backups = await listBackups(
      new S3Vault(plan.vault, { env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' } }),
      'shop',
    );
    expect(backups.map((b) => [b.backupId, b.complete])).toEqual([[started.backupId, true]]);
    expect(out.metric('BackupSucceeded', 'shop')).toEqual([1]);
    expect(out.metric('LastBackupBytes', 'shop')[0]).toBeGreaterThan(10_000);
    expect(published).toEqual([]);
  });

  it('a backup that fails on the host alerts with job, host and the agent error line', async () => {
    const started = await fn.runBackup({ job: 'broken', scheduledTime });
    const [result] = await deliver(await ssm.settle());
    expect(started.status).toBe('started');
    expect(result?.backupFinished).toMatchObject({ status: 'failed', job: 'broken', alerted: true });
    const alert = published.at(-1);
    expect(alert?.Subject).toBe(`[Strongbox CRITICAL] Backup failed: broken on db-host (${HOST})`);
    expect(alert?.Message).toMatch(/Agent error: .*does_not_exist/);
    expect(out.metric('BackupFailed', 'broken')).toEqual([1]);
  });

  it('verify reads every manifest and the newest data: the broken job has no backup, the good one is fine', async () => {
    const result = await fn.verify({});
    expect(result.findings).toEqual([
      expect.objectContaining({ severity: 'critical', job: 'broken', check: 'no-backup' }),
    ]);
    expect(result.jobs.find((j) => j.job === 'shop')).toMatchObject({ retained: 1, findings: 0 });
    expect(result.jobs.find((j) => j.job === 'shop')?.checksummedBytes).toBeGreaterThan(0);
    expect(published.at(-1)?.Subject).toBe('[Strongbox CRITICAL] Verification: 1 critical in 1 of 2 jobs');
    expect(out.metric('BackupAgeSeconds', 'shop')).toHaveLength(1);
    await flushAlerts();
  });

  it('restore-request → agent → restore-report: the newest backup lands in a scratch database with every row', async () => {
    const response = await fn.restoreRequest({ job: 'shop', latest: true, into: 'shop_restored' });
    expect(response).toMatchObject({ status: 'started', job: 'shop', target: `db-host (${HOST})` });
    const [result] = await deliver(await ssm.settle());
    expect(result?.restoreReport).toMatchObject({ status: 'finished', job: 'shop' });
    expect(result?.backupFinished).toMatchObject({ status: 'ignored' });
    expect(published.at(-1)?.Subject).toBe(`[Strongbox INFO] Restore finished: shop on db-host (${HOST})`);
    for (const table of ['customers', 'orders']) {
      expect(await pg.psql(`select count(*) from ${table}`, 'shop_restored')).toBe(
        await pg.psql(`select count(*) from ${table}`, 'shop'),
      );
    }
  });

  it('restore-continue: a retrieval event of a backup nobody asked to restore commands nothing', async () => {
    const [backup] = await listBackups(
      new S3Vault(plan.vault, { env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' } }),
      'shop',
    );
    const data = backup?.objects.find((o) => !o.key.endsWith('/manifest.json'));
    const before = ssm.commands.size;
    const result = await fn.restoreContinue({
      source: 'aws.s3',
      'detail-type': 'Object Restore Completed',
      detail: { bucket: { name: s3.bucket }, object: { key: data?.key ?? '' } },
    });
    expect(result).toEqual({ status: 'ignored', reason: `no pending restore of shop/${backup?.backupId}` });
    expect(ssm.commands.size).toBe(before);
  });

  it('restore-drill → agent → restore-drill: the drill passes its checks, records the RTO and drops its scratch database', async () => {
    const started = await fn.restoreDrill({ job: 'shop', scheduledTime });
    const again = await fn.restoreDrill({ job: 'shop', scheduledTime });
    expect(started).toMatchObject({ status: 'started' });
    expect(again).toMatchObject({ status: 'duplicate' });
    const [result] = await deliver(await ssm.settle());
    expect(result?.restoreDrill).toMatchObject({
      status: 'passed',
      job: 'shop',
      alerted: false,
      findings: [],
    });
    const seconds = out.metric('RestoreDrillDurationSeconds', 'shop')[0];
    expect(seconds).toBeGreaterThan(0);
    expect(out.metric('RestoreDrillFailed', 'shop')).toEqual([0]);
    const databases = await pg.psql('select datname from pg_database order by 1');
    expect(databases.split('\n').filter((d) => d.includes('drill'))).toEqual([]);
  });

  it('every alert reached Slack as one message, and no webhook URL was ever written', async () => {
    await flushAlerts();
    expect(slackBodies).toHaveLength(published.length);
    expect(slackBodies.map((b) => (b as { text: string }).text)).toEqual(
      published.map((p) => p.Subject?.replace(/^\[Strongbox (\w+)\] /, '$1 — ')),
    );
    expect(out.text()).not.toContain('e2eSecretToken');
  });
});
