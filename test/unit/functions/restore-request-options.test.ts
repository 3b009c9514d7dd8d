/**
 * restore-request's `options`: what the CLI restore accepts beyond target, tables and mode, by kind —
 * point-in-time jobs `to`, `start`, `archive`; files jobs `paths`, `inPlace`, `delete` — validated field
 * by field, sent to the host as the one `options` document parameter (SSM mocked at the SDK client) and
 * read back there by the agent's own `--options` parser.
 */
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRestoreOptions } from '#agent/commands/restore';
import { agentArgv, DOCUMENT_PARAMETERS } from '#core/deployment';
import { parsePlan } from '#core/plan';
import { createRestoreRequestHandler, type RestoreRequestServices } from '#functions/restore-request';
import { parameterPatterns } from '#infra/constructs/agent-document';
import { type S3rverInstance, startS3rver } from '#test/support/s3rver';
import { COMMAND_ID } from './events';
import { writeBackup } from './support/backups';
import { captureOutput } from './support/output';
import { fixedClock, s3rverVault, TEST_PLAN_YAML, testServices } from './support/services';

captureOutput();
const NOW = new Date('2024-12-06T09:00:00Z');
// The test plan plus a point-in-time job on the database host.
const plan = parsePlan(
  `${TEST_PLAN_YAML}  - name: app-pitr
    host: db-primary
    schedule: cron(0 3 * * ? *)
    source: { kind: postgres-physical, port: 5432 }
`,
  'test plan',
);
let s3: S3rverInstance;
beforeAll(async () => {
  s3 = await startS3rver();
  const vault = s3rverVault(s3, plan);
  for (const job of ['app-db', 'web-files', 'app-pitr'])
    await writeBackup(vault, { job, startedAt: new Date(NOW.getTime() - 3_600_000) });
});
afterAll(() => s3?.stop());

function setup() {
  const t = testServices({
    vault: s3rverVault(s3, plan) as RestoreRequestServices['vault'],
    plan,
    clock: fixedClock(NOW),
    service: 'restore-request',
  });
  t.ssmMock.on(SendCommandCommand).resolves({ Command: { CommandId: COMMAND_ID } });
  const handler = createRestoreRequestHandler(async () => t.services as RestoreRequestServices);
  const sentOptions = () =>
    t.ssmMock
      .commandCalls(SendCommandCommand)
      .map((c) => c.args[0].input.Parameters?.[DOCUMENT_PARAMETERS.options]);
  return { ...t, handler, sentOptions };
}

/** What the host's agent makes of the options the function sent (its own `--options` parser). */
function onHost(job: string, options: string) {
  const argv = agentArgv({ action: 'restore', job, backupId: 'x', options });
  // One argv element, never a shell word: the document passes it as an environment variable.
  expect(argv.filter((a) => a === options)).toHaveLength(1);
  return parseRestoreOptions({ job, options });
}

describe('restore-request options', () => {
  const pattern = new RegExp(parameterPatterns(['app-db'])[DOCUMENT_PARAMETERS.options] as string);

  it('carries a point-in-time restore (to, start, archive) to the agent, which reads archive on', async () => {
    const { handler, sentOptions } = setup();
    const response = await handler({
      job: 'app-pitr',
      latest: true,
      into: '/var/lib/postgresql/15/restored',
      options: {
        to: 'time:2024-12-06T08:30:00+00:00',
        start: true,
        archive: true,
        tablespaceMap: { '/srv/pg/ts_app': '/srv/recovered/ts_app' },
      },
    });
    expect(response).toMatchObject({ status: 'started', job: 'app-pitr' });
    const [sent] = sentOptions();
    expect(sent).toHaveLength(1);
    const json = sent?.[0] ?? '';
    expect(json).toMatch(pattern);
    expect(JSON.parse(json)).toEqual({
      target: '/var/lib/postgresql/15/restored',
      to: 'time:2024-12-06T08:30:00+00:00',
      start: true,
      archive: true,
      tablespaceMap: { '/srv/pg/ts_app': '/srv/recovered/ts_app' },
    });
    expect(onHost('app-pitr', json)).toMatchObject({
      target: '/var/lib/postgresql/15/restored',
      recoverTo: { type: 'time', time: '2024-12-06T08:30:00+00:00' },
      start: true,
      archive: true,
      tablespaceMap: { '/srv/pg/ts_app': '/srv/recovered/ts_app' },
    });
  });

  it('carries a files restore of chosen paths in place (paths, inPlace, delete, confirm) to the agent', async () => {
    const { handler, sentOptions } = setup();
    const paths = ['/srv/www/index.html', "/srv/www/it's; rm -rf / #*.css"];
    const response = await handler({
      job: 'web-files',
      latest: true,
      confirm: 'web-files',
      options: { paths, inPlace: true, delete: true },
    });
    expect(response).toMatchObject({ status: 'started', job: 'web-files' });
    const json = sentOptions()[0]?.[0] ?? '';
    expect(json).toMatch(pattern);
    expect(JSON.parse(json)).toEqual({ paths, inPlace: true, confirm: 'web-files', delete: true });
    expect(onHost('web-files', json)).toMatchObject({
      paths,
      inPlace: true,
      delete: true,
      confirm: 'web-files',
    });
  });

  it('sends no options when the request has none, and archive false is left out', async () => {
    const { handler, sentOptions } = setup();
    await handler({ job: 'app-pitr', latest: true, options: { archive: false } });
    expect(sentOptions()).toEqual([undefined]);
  });

  // A character the document's pattern refuses is named at its field, and the whole JSON fails it too.
  const TOO_MUCH = 'the restore options would be';
  it.each([
    [
      { job: 'app-pitr', options: { archive: 'yes', to: 'latest' } },
      ['options.archive: expected boolean, got string "yes"'],
    ],
    [{ job: 'app-pitr', options: { start: 1 } }, ['options.start: expected boolean, got number 1']],
    [
      { job: 'app-pitr', options: { archive: true } },
      ['options.archive: only a point-in-time restore (options.to) archives a new timeline'],
    ],
    [
      { job: 'app-pitr', options: { to: 'yesterday' } },
      [
        "options.to: 'yesterday' is not latest, time:<ISO time>, lsn:<lsn>, xid:<xid> or name:<restore point>",
      ],
    ],
    [
      { job: 'app-pitr', options: { to: 'time:2024-12-06T08:30:00' } },
      ["options.to: '2024-12-06T08:30:00' is not a time with an explicit offset"],
    ],
    [{ job: 'app-pitr', options: { to: 'name:a"b' } }, ['options.to: may hold letters, digits', TOO_MUCH]],
    [
      { job: 'app-db', options: { to: 'latest' } },
      ["options.to: postgres backups do not recover to a point in time ('app-db' is postgres)"],
    ],
    [
      { job: 'app-db', options: { paths: ['/srv'] } },
      ["options.paths: postgres backups cannot be restored path by path ('app-db' is postgres)"],
    ],
    [
      { job: 'app-pitr', confirm: 'app-pitr', options: { inPlace: true } },
      ["options.inPlace: postgres-physical backups cannot be restored in place; restore 'app-pitr' into a"],
    ],
    [
      { job: 'web-files', options: { inPlace: true } },
      ["confirm: must equal the job name 'web-files' to restore over its original paths"],
    ],
    [{ job: 'web-files', options: { delete: true } }, ['options.delete: only with options.inPlace']],
    [{ job: 'web-files', options: { paths: ['srv/www'] } }, ['options.paths[0]: must be an absolute path']],
    [{ job: 'web-files', options: { paths: ['/srv/../etc'] } }, ["options.paths[0]: must not contain '..'"]],
    [
      { job: 'web-files', options: { paths: ['/srv/$(id)'] } },
      ['options.paths[0]: may hold letters, digits', TOO_MUCH],
    ],
    [
      { job: 'web-files', options: { paths: ['/srv/"x'] } },
      ['options.paths[0]: may hold letters, digits', TOO_MUCH],
    ],
    [{ job: 'web-files', options: { paths: [] } }, ['options.paths']],
    [{ job: 'web-files', options: { paths: '/srv' } }, ['options.paths: expected array, got string "/srv"']],
    [
      { job: 'app-pitr', options: { tablespaceMap: { ts_app: '/srv/x' } } },
      ['options.tablespaceMap.ts_app: must be an absolute path'],
    ],
    [
      { job: 'app-db', options: { tablespaceMap: { '/srv/a': '/srv/b' } } },
      ["options.tablespaceMap: postgres backups do not recover to a point in time ('app-db' is postgres)"],
    ],
    [{ job: 'web-files', options: { recursive: true } }, ["options: unknown field 'recursive'"]],
  ])('rejects %j field by field and commands nothing', async (fields, errors) => {
    const { handler, sentOptions } = setup();
    const response = await handler({ latest: true, ...fields });
    expect(response.status).toBe('rejected');
    const got = response.status === 'rejected' ? response.errors : [];
    expect(got).toHaveLength(errors.length);
    for (const [i, error] of errors.entries()) expect(got[i]).toContain(error);
    expect(sentOptions()).toEqual([]);
  });
});
