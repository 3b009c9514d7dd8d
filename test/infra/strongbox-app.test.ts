import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { COMMAND_TERMINAL_STATUSES, FUNCTIONS } from '#core/deployment';
import { PlanError } from '#core/errors';
import { buildStrongboxApp, loadPlanFile, loadPlanText, type StrongboxStacks } from '#infra/app';
import { listAcknowledgements } from '#infra/nag';
import { REPO_ROOT } from '#infra/paths';
import { tempDirSync } from '#test/support/temp';
import { actionsOf, fakeAgentExecutables, type Statement } from './support';

const EXAMPLES = ['aws-small', 'modax', 'pitr'] as const;

interface Synthesized {
  app: App;
  stacks: StrongboxStacks;
  /** Templates of the stacks, synthesized once. */
  templates: { vault: Template; app: Template; replica?: Template };
  findings: string[];
  outdir: string;
}

/** Synthesizes an example plan with the real functions and a stand-in agent bundle. */
function synthExample(name: string): Synthesized {
  const outdir = tempDirSync(`strongbox-cdk-${name}-`);
  const app = new App({ outdir });
  const stacks = buildStrongboxApp(app, {
    plan: loadPlanFile(join(REPO_ROOT, 'examples', `${name}.yaml`)),
    agentExecutables: fakeAgentExecutables(),
  });
  const assembly = app.synth();
  const templateOf = (stack: { artifactId: string }) =>
    Template.fromJSON(assembly.getStackArtifact(stack.artifactId).template);
  const templates = {
    vault: templateOf(stacks.vault),
    app: templateOf(stacks.app),
    replica: stacks.replica ? templateOf(stacks.replica) : undefined,
  };
  const report = new AwsSolutionsChecks().validateScope(app);
  const findings = report.violations.flatMap((v) =>
    v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}`),
  );
  return { app, stacks, templates, findings, outdir };
}

const synthesized = new Map<string, Synthesized>();

beforeAll(() => {
  for (const name of EXAMPLES) synthesized.set(name, synthExample(name));
}, 600_000);

function example(name: string): Synthesized {
  const found = synthesized.get(name);
  if (!found) throw new Error(`${name} was not synthesized`);
  return found;
}

describe.each(EXAMPLES)('examples/%s.yaml', (name) => {
  it('passes cdk-nag AwsSolutions with no unacknowledged finding', () => {
    expect(example(name).findings).toEqual([]);
  });

  it('acknowledges findings only on resources, each with its reason', () => {
    const acknowledgements = listAcknowledgements(example(name).app).filter((a) =>
      a.id.startsWith('AwsSolutions'),
    );
    expect(acknowledgements.length).toBeGreaterThan(0);
    for (const acknowledgement of acknowledgements) {
      expect(acknowledgement.reason.length, acknowledgement.id).toBeGreaterThan(40);
      expect(acknowledgement.path.split('/').length, acknowledgement.id).toBeGreaterThan(2);
      expect(acknowledgement.id).toMatch(
        /^AwsSolutions-(L1|SQS3|IAM4\[Policy::.*AmazonSSMManagedInstanceCore\]|IAM5\[.+\])$/,
      );
    }
  });

  it('keeps the vault in its own termination-protected stack, every bucket and key retained', () => {
    const { stacks, templates } = example(name);
    expect(stacks.vault.terminationProtection).toBe(true);
    const template = templates.vault;
    for (const type of ['AWS::S3::Bucket', 'AWS::KMS::Key']) {
      const resources = Object.values(template.findResources(type));
      expect(resources.length).toBeGreaterThan(0);
      for (const resource of resources) expect(resource.DeletionPolicy).toBe('Retain');
    }
    expect(templates.app.findResources('AWS::S3::Bucket')).toEqual({});
  });

  it('runs every function on nodejs22.x, arm64', () => {
    const functions = Object.values(example(name).templates.app.findResources('AWS::Lambda::Function'));
    expect(functions.length).toBeGreaterThanOrEqual(5);
    for (const fn of functions) {
      expect(fn.Properties.Runtime).toBe('nodejs22.x');
      expect(fn.Properties.Architectures).toEqual(['arm64']);
    }
  });

  it('sends SSM status changes of the Strongbox document to backup-finished, restore-report and restore-drill', () => {
    const template = example(name).templates.app;
    const rules = Object.values(
      template.findResources('AWS::Events::Rule', { Properties: { EventPattern: { source: ['aws.ssm'] } } }),
    );
    const rule = rules.find(
      (r) =>
        r.Properties.EventPattern['detail-type'][0] === 'EC2 Command Invocation Status-change Notification',
    );
    // The command-level rule (alerts on "No Instances In Tag" and the like) goes to the topic.
    expect(rules.map((r) => r.Properties.EventPattern['detail-type'][0]).sort()).toEqual([
      'EC2 Command Invocation Status-change Notification',
      'EC2 Command Status-change Notification',
    ]);
    expect(rule?.Properties.EventPattern).toEqual({
      source: ['aws.ssm'],
      'detail-type': ['EC2 Command Invocation Status-change Notification'],
      detail: {
        'document-name': [{ Ref: expect.stringMatching(/^AgentsDocument/) }],
        status: [...COMMAND_TERMINAL_STATUSES],
      },
    });
    const targets = rule?.Properties.Targets.map(
      (t: { Arn: { 'Fn::GetAtt': string[] } }) => t.Arn['Fn::GetAtt'][0],
    );
    expect(targets).toEqual([
      expect.stringMatching(/^FunctionsBackupFinished/),
      expect.stringMatching(/^FunctionsRestoreReport/),
      expect.stringMatching(/^FunctionsRestoreDrill/),
    ]);
  });

  it('sends finished archive retrievals of the vault bucket to restore-continue only', () => {
    const template = example(name).templates.app;
    const [rule, ...others] = Object.values(
      template.findResources('AWS::Events::Rule', { Properties: { EventPattern: { source: ['aws.s3'] } } }),
    );
    expect(others).toEqual([]);
    expect(rule?.Properties.EventPattern).toMatchObject({
      source: ['aws.s3'],
      'detail-type': ['Object Restore Completed'],
    });
    const targets = rule?.Properties.Targets.map(
      (t: { Arn: { 'Fn::GetAtt': string[] } }) => t.Arn['Fn::GetAtt'][0],
    );
    expect(targets).toEqual([expect.stringMatching(/^FunctionsRestoreContinue/)]);
  });

  it('outputs the restore-request function as RestoreFunctionName (the README invokes it)', () => {
    const template = example(name).templates.app;
    const output = template.findOutputs('RestoreFunctionName').RestoreFunctionName;
    expect(output?.Value).toEqual({ Ref: expect.stringMatching(/^FunctionsRestoreRequestFunction/) });
  });

  it('alarms on errors of every function', () => {
    const template = example(name).templates.app;
    const functions = Object.keys(template.findResources('AWS::Lambda::Function'));
    const [alarm] = Object.values(
      template.findResources('AWS::CloudWatch::Alarm', {
        Properties: { AlarmDescription: Match.stringLikeRegexp('a Strongbox function failed') },
      }),
    );
    type AlarmMetric = { MetricStat?: { Metric: { Dimensions: { Value: { Ref: string } }[] } } };
    const metrics = (alarm?.Properties.Metrics ?? []) as AlarmMetric[];
    const watched = metrics.flatMap((m) => m.MetricStat?.Metric.Dimensions.map((d) => d.Value.Ref) ?? []);
    expect(functions.length).toBeGreaterThanOrEqual(7);
    expect(watched.sort()).toEqual(functions.sort());
  });

  it('ships the plan as written: its JSON is the YAML document', () => {
    const { stacks, outdir } = example(name);
    const asset = stacks.app.plan.asset;
    const shipped = JSON.parse(readFileSync(join(outdir, asset.assetPath), 'utf8'));
    expect(shipped).toEqual(parseYaml(readFileSync(join(REPO_ROOT, 'examples', `${name}.yaml`), 'utf8')));
  });
});

describe('function roles hold only what each handler calls', () => {
  const LOGS = ['logs:CreateLogStream', 'logs:PutLogEvents'];
  const DEAD_LETTER = ['sqs:SendMessage'];
  const ALERTS = ['sns:Publish', 'kms:GenerateDataKey', 'kms:Decrypt'];
  const expected: Record<string, string[]> = {
    RunBackup: [
      ...LOGS,
      ...DEAD_LETTER,
      ...ALERTS,
      's3:GetObject',
      's3:ListBucket',
      's3:PutObject',
      's3:DeleteObject',
      'ssm:SendCommand',
    ],
    BackupFinished: [
      ...LOGS,
      ...DEAD_LETTER,
      ...ALERTS,
      's3:GetObject',
      'ssm:GetCommandInvocation',
      'ssm:ListCommands',
    ],
    Verify: [...LOGS, ...DEAD_LETTER, ...ALERTS, 's3:ListBucket', 's3:GetObject'],
    RestoreRequest: [
      ...LOGS,
      ...DEAD_LETTER,
      's3:ListBucket',
      's3:GetObject',
      's3:RestoreObject',
      's3:PutObject',
      'kms:GenerateDataKey',
      'kms:Decrypt',
      'ssm:SendCommand',
    ],
    RestoreContinue: [
      ...LOGS,
      ...DEAD_LETTER,
      ...ALERTS,
      's3:ListBucket',
      's3:GetObject',
      's3:PutObject',
      's3:DeleteObject',
      'ssm:SendCommand',
    ],
    RestoreReport: [
      ...LOGS,
      ...DEAD_LETTER,
      ...ALERTS,
      's3:GetObject',
      'ssm:GetCommandInvocation',
      'ssm:ListCommands',
    ],
    RestoreDrill: [
      ...LOGS,
      ...DEAD_LETTER,
      ...ALERTS,
      's3:GetObject',
      's3:ListBucket',
      's3:PutObject',
      's3:DeleteObject',
      'ssm:SendCommand',
      'ssm:GetCommandInvocation',
      'ssm:ListCommands',
    ],
    NotifySlack: [...LOGS, ...DEAD_LETTER, 'ssm:GetParameter'],
  };

  function roleStatements(fn: string): Statement[] {
    const template = example('modax').templates.app;
    return Object.entries(template.findResources('AWS::IAM::Policy'))
      .filter(([id]) => id.startsWith(`Functions${fn}Role`))
      .flatMap(([, policy]) => policy.Properties.PolicyDocument.Statement as Statement[]);
  }

  it.each(Object.entries(expected))('%s', (fn, actions) => {
    // s3:GetObject of BackupFinished, RunBackup and RestoreDrill is the plan object only (checked below).
    expect([...new Set(roleStatements(fn).flatMap(actionsOf))].sort()).toEqual([...new Set(actions)].sort());
  });

  it.each(['RunBackup', 'BackupFinished', 'RestoreReport', 'RestoreDrill', 'NotifySlack'])(
    '%s reads no backup',
    (fn) => {
      const reads = roleStatements(fn).filter((s) => actionsOf(s).includes('s3:GetObject'));
      expect(JSON.stringify(reads)).not.toMatch(/\/(backups|wal)\//);
    },
  );

  it('lets run-backup command only the hosts of scheduled jobs, by tag', () => {
    const send = roleStatements('RunBackup').filter((s) => actionsOf(s).includes('ssm:SendCommand'));
    const conditions = send.flatMap((s) => (s.Condition ? [s.Condition] : []));
    expect(conditions).toEqual([
      { StringEquals: { 'ssm:resourceTag/Project': 'modax', 'ssm:resourceTag/Role': 'control' } },
    ]);
  });

  it('lets only restore-request ask S3 for archive retrievals', () => {
    for (const fn of Object.keys(expected)) {
      const retrieves = roleStatements(fn).some((s) => actionsOf(s).includes('s3:RestoreObject'));
      expect(retrieves, fn).toBe(fn === 'RestoreRequest');
    }
  });

  it('gives restore-report no vault and no host: it reads command outcomes and alerts', () => {
    const statements = roleStatements('RestoreReport');
    expect(statements.filter((s) => actionsOf(s).includes('ssm:SendCommand'))).toEqual([]);
    const s3 = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
    expect(s3.flatMap(actionsOf)).toEqual(['s3:GetObject']);
    expect(JSON.stringify(s3)).not.toContain('VaultBucket');
  });

  it('lets restore-request only write pending requests (restores/*.json), not the markers beside them', () => {
    const writes = roleStatements('RestoreRequest').filter((s) =>
      actionsOf(s).some((a) => ['s3:PutObject', 's3:DeleteObject'].includes(a)),
    );
    expect(writes.map((s) => [actionsOf(s), JSON.stringify(s.Resource)])).toEqual([
      [['s3:PutObject'], expect.stringMatching(/"\/restores\/\*\.json"\]\]\}$/)],
    ]);
  });

  it('lets restore-drill command only the drill host', () => {
    const send = roleStatements('RestoreDrill').filter((s) => actionsOf(s).includes('ssm:SendCommand'));
    const conditions = send.flatMap((s) => (s.Condition ? [s.Condition] : []));
    expect(conditions).toEqual([
      { StringEquals: { 'ssm:resourceTag/Project': 'modax', 'ssm:resourceTag/Role': 'restore-test' } },
    ]);
  });

  it('never lets a function delete backups or WAL', () => {
    for (const fn of Object.keys(expected)) {
      for (const statement of roleStatements(fn).filter((s) => actionsOf(s).includes('s3:DeleteObject'))) {
        expect(JSON.stringify(statement.Resource), fn).toMatch(/\/(runs|drills|restores)\/\*/);
        expect(JSON.stringify(statement.Resource), fn).not.toMatch(/\/(backups|wal)\//);
      }
    }
  });

  it('subscribes notify-slack to the alert topic and gives it the webhook parameter name, not its value', () => {
    const template = example('modax').templates.app;
    template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'lambda' });
    const [slack] = Object.values(
      template.findResources('AWS::Lambda::Function', {
        Properties: { Environment: { Variables: { POWERTOOLS_SERVICE_NAME: FUNCTIONS.notifySlack } } },
      }),
    );
    expect(slack?.Properties.Environment.Variables.STRONGBOX_SLACK_WEBHOOK_PARAMETER).toBe(
      '/modax/strongbox/slack-webhook',
    );
  });
});

describe('the replica (examples/modax.yaml)', () => {
  it('lives in vault.replicaRegion, with Object Lock and its aliased key, deployed before the vault', () => {
    const { replica, vault } = example('modax').stacks;
    expect(replica?.region).toBe('eu-west-1');
    expect(vault.dependencies).toContain(replica);
    const template = example('modax').templates.replica as Template;
    template.hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockEnabled: true,
      VersioningConfiguration: { Status: 'Enabled' },
    });
    template.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/strongbox/modax/replica' });
  });
});

describe('point-in-time recovery (examples/pitr.yaml)', () => {
  it('alarms when the newest archived WAL is older than limits.walRpo, for the physical job only', () => {
    const alarms = Object.values(
      example('pitr').templates.app.findResources('AWS::CloudWatch::Alarm', {
        Properties: { MetricName: 'WalRpoSeconds' },
      }),
    );
    expect(alarms.map((a) => a.Properties.Dimensions)).toEqual([
      [{ Name: expect.any(String), Value: 'pg-main' }],
    ]);
    expect(alarms[0]?.Properties).toMatchObject({
      Threshold: 3600,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      Statistic: 'Maximum',
    });
  });

  it("expires the physical job's WAL after retention.pointInTime and only that job's", () => {
    const bucket = Object.values(example('pitr').templates.vault.findResources('AWS::S3::Bucket')).find(
      (b) => b.Properties.ObjectLockEnabled,
    );
    const rules = bucket?.Properties.LifecycleConfiguration.Rules as {
      Id: string;
      Prefix?: string;
      ExpirationInDays?: number;
    }[];
    const wal = rules.filter((r) => r.Id.endsWith('-wal'));
    expect(wal).toEqual([
      expect.objectContaining({ Id: 'pg-main-wal', Prefix: 'wal/pg-main/', ExpirationInDays: 7 }),
    ]);
  });
});

describe('a bad plan stops the synth with the path of the bad field', () => {
  const GOOD = readFileSync(join(REPO_ROOT, 'examples', 'aws-small.yaml'), 'utf8');

  it.each([
    ['a missing database', GOOD.replace('      database: shop\n', ''), 'jobs[0].source.database: required'],
    [
      'a job timeout over 48h',
      GOOD.replace('timeout: 2h', 'timeout: 3d'),
      'jobs[0].timeout: at most 48h on AWS',
    ],
    [
      'a file vault',
      GOOD.replace('url: s3://shop-strongbox', 'url: file:///mnt/nas'),
      'vault.url: an AWS deployment keeps backups in S3',
    ],
    ['a five-field cron', GOOD.replace('cron(30 2 * * ? *)', 'cron(30 2 * * *)'), 'jobs[0].schedule:'],
    [
      'a scheduled job without host',
      GOOD.replace('    host: db\n    schedule: cron(45', '    schedule: cron(45'),
      'jobs[1].host: required',
    ],
    [
      'an unknown host',
      GOOD.replace('    host: db\n    schedule: cron(45', '    host: dbb\n    schedule: cron(45'),
      "jobs[1].host: 'dbb' is not one of hosts",
    ],
  ])('%s', (_, text, message) => {
    expect(() => loadPlanText(text, 'plan.yaml')).toThrow(PlanError);
    expect(() => loadPlanText(text, 'plan.yaml')).toThrow(message);
  });

  /** Runs the app as the CDK CLI does (the context in CDK_CONTEXT_JSON). */
  const synthAsCdkDoes = (planPath: string, dir: string) =>
    spawnSync(join(REPO_ROOT, 'node_modules/.bin/tsx'), [join(REPO_ROOT, 'infra/bin/strongbox.ts')], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        CDK_CONTEXT_JSON: JSON.stringify({ plan: planPath }),
        CDK_OUTDIR: join(dir, 'out'),
      },
      encoding: 'utf8',
    });

  it('`cdk synth` prints the agent’s error line last and exits 2', () => {
    // Prepare
    const dir = tempDirSync('strongbox-bad-plan-');
    const planPath = join(dir, 'plan.yaml');
    writeFileSync(planPath, GOOD.replace('      database: shop\n', ''));

    // Act
    const result = synthAsCdkDoes(planPath, dir);

    // Assess
    expect(result.status).toBe(2);
    expect(result.stderr.trimEnd().split('\n').at(-1)).toBe(
      'strongbox: error: jobs[0].source.database: required',
    );
  });

  it('`cdk synth` lists several problems, then names the first on the last line', () => {
    const dir = tempDirSync('strongbox-bad-plan-');
    const planPath = join(dir, 'plan.yaml');
    writeFileSync(
      planPath,
      GOOD.replace('      database: shop\n', '').replace('timeout: 2h', 'timeout: soon'),
    );
    expect(() => loadPlanFile(planPath)).toThrow(PlanError);
    const result = synthAsCdkDoes(planPath, dir);
    expect(result.status).toBe(2);
    expect(result.stderr.trimEnd().split('\n').slice(-3)).toEqual([
      '  jobs[0].source.database: required',
      "  jobs[0].timeout: 'soon' is not a duration (units: s, m, h, d, w, mo or y, e.g. 36h, 7d, 5w, 12mo, 7y)",
      'strongbox: error: jobs[0].source.database: required (and 1 more, listed above)',
    ]);
  });

  it('`cdk synth` without -c plan=… says how to give one', () => {
    const result = spawnSync(
      join(REPO_ROOT, 'node_modules/.bin/tsx'),
      [join(REPO_ROOT, 'infra/bin/strongbox.ts')],
      {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          CDK_CONTEXT_JSON: '{}',
          CDK_OUTDIR: tempDirSync('strongbox-no-plan-'),
        },
        encoding: 'utf8',
      },
    );
    expect(result.status).toBe(2);
    expect(result.stderr.trimEnd().split('\n').at(-1)).toBe(
      'strongbox: error: no plan given: run `npx cdk synth -c plan=path/to/plan.yaml`',
    );
  });
});
