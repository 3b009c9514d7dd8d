import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { doctorCommand } from '#agent/commands/doctor';
import { newBackupId } from '#core/backup-id';
import {
  AGENT_ACTIONS,
  AGENT_ERROR_PREFIX,
  type AgentAction,
  type AgentArchitecture,
  type AgentRestoreOptions,
  agentArgv,
  DOCUMENT_PARAMETERS,
  DOCUMENT_RUN_STEP,
  DOCUMENT_TIMEOUT_PARAMETER,
  HOST_PATHS,
} from '#core/deployment';
import { DOCTOR_KEY_CONTEXT, encryptionContext } from '#core/manifest';
import type { Vault } from '#core/ports';
import {
  type AgentDocumentOptions,
  agentDocumentContent,
  agentRunScript,
  parameterPatterns,
} from '#infra/constructs/agent-document';
import { AgentFleet, MANAGED_POLICY_MAX_CHARS, worstCasePolicyLength } from '#infra/constructs/agent-fleet';
import { PlanAsset } from '#infra/constructs/plan-asset';
import { testRuntime } from '#test/support/runtime';
import { tempDirSync } from '#test/support/temp';
import {
  actionsOf,
  fakeAgentExecutables,
  policyStatements,
  type Statement,
  TEST_PLAN_YAML,
  testApp,
  testPlan,
} from './support';

const BUCKET_ARN = 'arn:aws:s3:::acme-vault-bucket';
const KEY_ARN = 'arn:aws:kms:eu-central-1:111111111111:key/0a1b2c3d-1111-2222-3333-444455556666';

function fleetTemplate(yaml = TEST_PLAN_YAML, bucketName = 'acme-vault-bucket') {
  const stack = new Stack(testApp(), 'FleetTest');
  const executables = fakeAgentExecutables();
  const fleet = new AgentFleet(stack, 'Agents', {
    vaultBucket: s3.Bucket.fromBucketAttributes(stack, 'Vault', {
      bucketArn: `arn:aws:s3:::${bucketName}`,
      bucketName,
    }),
    vaultKey: kms.Key.fromKeyArn(stack, 'Key', KEY_ARN),
    plan: new PlanAsset(stack, 'Plan', { document: testPlan(yaml).document }),
    agentExecutables: executables,
  });
  return { template: Template.fromStack(stack), fleet, executables };
}

/** The statements of the policies of one host entry (`Agents/Host-<host>/Policy…`). */
function hostStatements(template: Template, host: string): Statement[] {
  const prefix = `AgentsHost${host.replace(/-/g, '')}Policy`;
  return policyStatements(template, 'AWS::IAM::ManagedPolicy', prefix);
}

describe('AgentFleet host policies', () => {
  let template: Template;
  let statements: Statement[];

  beforeAll(() => {
    ({ template } = fleetTemplate());
    statements = policyStatements(template, 'AWS::IAM::ManagedPolicy');
  });

  it('gives each host entry its own policies', () => {
    expect(Object.keys(template.findResources('AWS::IAM::ManagedPolicy')).sort()).toEqual([
      expect.stringMatching(/^AgentsHostdbPolicy/),
      expect.stringMatching(/^AgentsHostwebPolicy/),
    ]);
  });

  it('may never delete objects, change bucket settings or lifecycle, or bypass Object Lock', () => {
    const actions = statements.filter((s) => s.Effect === 'Allow').flatMap(actionsOf);
    expect(actions.length).toBeGreaterThan(0);
    expect(
      actions.filter((a) =>
        /^s3:(Delete|PutBucket|PutLifecycle|PutReplication|PutEncryption|Bypass)/.test(a),
      ),
    ).toEqual([]);
    expect(actions.filter((a) => a.includes('*'))).toEqual([]);
  });

  it('puts and reads objects only under the prefixes of the jobs the host backs up or drills', () => {
    const objects = (host: string) =>
      hostStatements(template, host).find(
        (s) => s.Effect === 'Allow' && actionsOf(s).includes('s3:PutObject'),
      );
    // db backs up appdb; web backs up web-config and drills appdb.
    expect(objects('db')?.Resource).toEqual([`${BUCKET_ARN}/backups/appdb/*`, `${BUCKET_ARN}/wal/appdb/*`]);
    expect(objects('web')?.Resource).toEqual(
      ['appdb', 'web-config'].flatMap((job) => [
        `${BUCKET_ARN}/backups/${job}/*`,
        `${BUCKET_ARN}/wal/${job}/*`,
      ]),
    );
    expect(actionsOf(objects('db') as Statement)).toEqual(
      expect.arrayContaining(['s3:PutObject', 's3:GetObject', 's3:PutObjectRetention']),
    );
  });

  it('denies every object write without If-None-Match, exempting the multipart part uploads', () => {
    for (const host of ['db', 'web']) {
      const deny = hostStatements(template, host).find((s) => s.Sid === 'CreateOnly');
      expect(deny).toEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Action: 's3:PutObject',
          Resource: `${BUCKET_ARN}/*`,
          Condition: {
            Null: { 's3:if-none-match': 'true' },
            Bool: { 's3:ObjectCreationOperation': 'true' },
          },
        }),
      );
    }
  });

  it('denies re-tagging an existing Strongbox object', () => {
    const deny = hostStatements(template, 'db').find((s) => s.Sid === 'NoRetagging');
    expect(deny).toEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Action: ['s3:PutObjectTagging', 's3:PutObjectVersionTagging'],
        Resource: `${BUCKET_ARN}/*`,
        Condition: { Null: { 's3:ExistingObjectTag/strongbox:job': 'false' } },
      }),
    );
  });

  it('grants what the SSM Agent calls to stream command output to CloudWatch Logs', () => {
    const actions = hostStatements(template, 'db')
      .filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')))
      .flatMap(actionsOf);
    expect(actions.sort()).toEqual([
      'logs:CreateLogGroup',
      'logs:CreateLogStream',
      'logs:DescribeLogGroups',
      'logs:DescribeLogStreams',
      'logs:PutLogEvents',
    ]);
  });

  it('carries an encryption-context condition on every KMS statement', () => {
    const kmsStatements = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
    // Per host: data keys of its jobs, the key through S3, doctor's key probe.
    expect(kmsStatements.length).toBe(6);
    for (const statement of kmsStatements) {
      const keys = Object.values(statement.Condition ?? {}).flatMap((block) => Object.keys(block));
      expect(
        keys.some((k) => k.startsWith('kms:EncryptionContext:')),
        JSON.stringify(statement),
      ).toBe(true);
    }
  });

  it("generates data keys only with the Strongbox context of the host's jobs", () => {
    const dataKeys = (host: string) =>
      hostStatements(template, host).find((s) => s.Sid === 'DataKeysWithStrongboxContext');
    expect(dataKeys('db')).toEqual(
      expect.objectContaining({
        Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
        Resource: KEY_ARN,
        Condition: {
          StringLike: {
            'kms:EncryptionContext:strongbox:job': ['appdb'],
            'kms:EncryptionContext:strongbox:backup': ['*'],
          },
        },
      }),
    );
    expect(dataKeys('web')?.Condition?.StringLike?.['kms:EncryptionContext:strongbox:job']).toEqual([
      'appdb',
      'web-config',
    ]);
  });

  it('uses the key through S3 only for the vault bucket', () => {
    const viaS3 = statements.find((s) => s.Condition?.StringEquals?.['kms:ViaService']);
    expect(viaS3?.Condition?.StringLike).toEqual({
      'kms:EncryptionContext:aws:s3:arn': [BUCKET_ARN, `${BUCKET_ARN}/*`],
    });
  });

  it("reads only the SecureString parameters of the host's jobs", () => {
    const read = hostStatements(template, 'db').filter((s) => actionsOf(s).some((a) => a.startsWith('ssm:')));
    expect(read).toHaveLength(1);
    expect(actionsOf(read[0] as Statement)).toEqual(['ssm:GetParameter']);
    expect(JSON.stringify(read[0]?.Resource)).toContain(':parameter/acme/db-password');
  });

  it('has no data-key statement when the plan encrypts with a local key', () => {
    const local = TEST_PLAN_YAML.replace(
      'key: { type: kms, keyId: alias/acme }',
      'key: { type: local, path: /etc/sb.key }',
    );
    const localStatements = policyStatements(fleetTemplate(local).template, 'AWS::IAM::ManagedPolicy');
    expect(localStatements.find((s) => s.Sid === 'DataKeysWithStrongboxContext')).toBeUndefined();
  });
});

/** A plan with `count` jobs with long names, all backed up by host `db` and drilled on `drill`. */
function manyJobsPlan(count: number): string {
  const jobs = Array.from({ length: count }, (_, i) => {
    const name = `customer-database-${String(i).padStart(4, '0')}-orders-and-invoices`;
    return `  - name: ${name}
    host: db
    schedule: cron(0 2 * * ? *)
    source: { kind: postgres, database: app${i}, passwordParameter: /acme/databases/${name}/password }
    drill: { schedule: cron(0 4 ? * SUN *), host: drill }
`;
  });
  return `version: 1
name: acme
vault: { url: s3://acme-backups, objectLock: { mode: governance, days: 7 } }
key: { type: kms, keyId: alias/acme }
hosts:
  db: { tags: { Role: db } }
  drill: { tags: { Role: drill } }
jobs:
${jobs.join('')}`;
}

/** Whether an IAM resource pattern (`*` and `?` wildcards) matches a resource. */
function resourceMatches(pattern: string, resource: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${regex}$`).test(resource);
}

/**
 * Whether the Allow statements of `statements` grant `action` on `resource` for a request with the given
 * KMS encryption context; a condition on anything else counts as not met, and Deny statements are
 * checked by their own tests.
 */
function allows(
  statements: Statement[],
  action: string,
  resource: string,
  context: Record<string, string> = {},
): boolean {
  return statements.some((statement) => {
    if (statement.Effect !== 'Allow' || !actionsOf(statement).includes(action)) return false;
    const resources = [statement.Resource].flat() as unknown[];
    if (!resources.some((r) => typeof r === 'string' && resourceMatches(r, resource))) return false;
    return Object.entries(statement.Condition ?? {}).every(([operator, block]) =>
      Object.entries(block).every(([key, wanted]) => {
        const name = /^kms:EncryptionContext:(.+)$/.exec(key)?.[1];
        const value = name === undefined ? undefined : context[name];
        if (value === undefined || !['StringEquals', 'StringLike'].includes(operator)) return false;
        return ([wanted].flat() as string[]).some((w) =>
          operator === 'StringLike' ? resourceMatches(w, value) : w === value,
        );
      }),
    );
  });
}

describe('host policies and what the agent does', () => {
  it('allow the vault and key probes doctor really makes, and listing the uploads a backup aborts', async () => {
    // What doctor writes and which data key it asks for, recorded from the real command.
    const written: string[] = [];
    const contexts: Record<string, string>[] = [];
    const { runtime, dir } = await testRuntime({
      jobs: [{ name: 'appdb', source: { kind: 'files', paths: [tmpdir()] } }],
      wrapVault: (vault): Vault => ({
        url: vault.url,
        put: (key, body, options) => {
          written.push(key);
          return vault.put(key, body, options);
        },
        get: (key, options) => vault.get(key, options),
        head: (key) => vault.head(key),
        list: (prefix) => vault.list(prefix),
        delete: (keys) => vault.delete(keys),
      }),
    });
    const keys = runtime.keys;
    runtime.keys = {
      generateDataKey: (context) => {
        contexts.push(context);
        return keys.generateDataKey(context);
      },
      decryptDataKey: (wrapped, key, context) => {
        contexts.push(context);
        return keys.decryptDataKey(wrapped, key, context);
      },
      wrapDataKey: (plaintext, context) => {
        contexts.push(context);
        return keys.wrapDataKey(plaintext, context);
      },
    };
    try {
      await doctorCommand(runtime, {});
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(written).toHaveLength(1);
    expect(contexts).toHaveLength(2);

    const { template } = fleetTemplate();
    for (const host of ['db', 'web']) {
      const statements = hostStatements(template, host);
      for (const key of written) {
        expect(allows(statements, 's3:PutObject', `${BUCKET_ARN}/${key}`), `${host} put ${key}`).toBe(true);
        expect(allows(statements, 's3:GetObject', `${BUCKET_ARN}/${key}`), `${host} get ${key}`).toBe(true);
      }
      for (const context of contexts) {
        for (const action of ['kms:GenerateDataKey', 'kms:Decrypt']) {
          expect(
            allows(statements, action, KEY_ARN, context),
            `${host} ${action} ${JSON.stringify(context)}`,
          ).toBe(true);
        }
      }
      // A backup lists the job's unfinished multipart uploads and aborts those of interrupted backups.
      expect(allows(statements, 's3:ListBucketMultipartUploads', BUCKET_ARN), host).toBe(true);
      expect(
        allows(statements, 's3:AbortMultipartUpload', `${BUCKET_ARN}/backups/appdb/x/data.zst.sbx`),
      ).toBe(true);
    }
  });

  it('do not let doctor’s key probe reach a real backup’s data keys', () => {
    const { template } = fleetTemplate();
    // db does not run web-config: its backups' context stays out of reach, doctor's probe or not.
    expect(
      allows(
        hostStatements(template, 'db'),
        'kms:Decrypt',
        KEY_ARN,
        encryptionContext('web-config', 'doctor'),
      ),
    ).toBe(false);
    expect(
      allows(hostStatements(template, 'db'), 'kms:Decrypt', KEY_ARN, {
        ...DOCTOR_KEY_CONTEXT,
        'strongbox:backup': newBackupId(new Date('2024-12-06T02:00:00Z'), '3f9a1c'),
      }),
    ).toBe(false);
  });
});

describe('host policies of a large plan', () => {
  it('keeps every host policy of a 50-job plan under IAM’s 6,144 characters, covering all its jobs', () => {
    // The longest bucket name S3 allows; the partition stays a Ref, sized at its longest.
    const { template } = fleetTemplate(manyJobsPlan(50), 'b'.repeat(63));
    const policies = Object.entries(template.findResources('AWS::IAM::ManagedPolicy'));
    expect(policies.length).toBeGreaterThan(2);
    for (const [id, policy] of policies) {
      const document = policy.Properties.PolicyDocument;
      expect(worstCasePolicyLength(document), id).toBeLessThanOrEqual(MANAGED_POLICY_MAX_CHARS);
    }
    for (const host of ['db', 'drill']) {
      const covered = hostStatements(template, host)
        .filter((s) => s.Sid === 'JobObjects')
        .flatMap((s) => s.Resource as string[]);
      expect(covered, host).toHaveLength(100);
    }
  });

  it('stops the synth with the host named when its jobs cannot fit the policies a role can hold', () => {
    expect(() => fleetTemplate(manyJobsPlan(400))).toThrow(
      /hosts\.db: its 400 jobs need more than \d+ managed policies of 6144 characters/,
    );
  });
});

describe('AgentFleet document', () => {
  // biome-ignore lint/suspicious/noExplicitAny: the synthesized document JSON, read field by field
  let content: Record<string, any>;
  let executables: Record<AgentArchitecture, string>;
  let template: Template;
  // biome-ignore lint/suspicious/noExplicitAny: the run step of the document JSON
  let runStep: Record<string, any>;

  beforeAll(() => {
    ({ template, executables } = fleetTemplate());
    const [document] = Object.values(template.findResources('AWS::SSM::Document'));
    content = document?.Properties.Content;
    runStep = content.mainSteps.find((step: { name: string }) => step.name === DOCUMENT_RUN_STEP);
  });

  it('is a schemaVersion 2.2 Command document that downloads each agent executable and the plan, then runs one step', () => {
    expect(content.schemaVersion).toBe('2.2');
    expect(content.mainSteps.map((s: { action: string; name: string }) => [s.action, s.name])).toEqual([
      ['aws:downloadContent', 'downloadAgentX64'],
      ['aws:downloadContent', 'downloadAgentArm64'],
      ['aws:downloadContent', 'downloadPlan'],
      ['aws:runShellScript', DOCUMENT_RUN_STEP],
    ]);
  });

  it('gives every parameter an allowedPattern, and passes the script ones as environment variables', () => {
    for (const [name, parameter] of Object.entries(
      content.parameters as Record<string, Record<string, string>>,
    )) {
      expect(parameter.allowedPattern, name).toMatch(/^\^/);
      if (name !== DOCUMENT_TIMEOUT_PARAMETER) expect(parameter.interpolationType, name).toBe('ENV_VAR');
    }
    expect(Object.keys(content.parameters).sort()).toEqual(
      [...Object.values(DOCUMENT_PARAMETERS), DOCUMENT_TIMEOUT_PARAMETER].sort(),
    );
  });

  it('never pastes a parameter into the script', () => {
    const script = JSON.stringify(runStep.inputs.runCommand);
    expect(script).not.toContain('{{');
  });

  it('runs as long as the job timeout allows: the parameter, defaulting to the longest job (3h)', () => {
    expect(runStep.inputs.timeoutSeconds).toBe(`{{ ${DOCUMENT_TIMEOUT_PARAMETER} }}`);
    expect(content.parameters[DOCUMENT_TIMEOUT_PARAMETER].default).toBe(String(3 * 3600));
  });

  it('downloads each file to its own path relative to the command’s downloads directory', () => {
    const paths = content.mainSteps
      .filter((step: { action: string }) => step.action === 'aws:downloadContent')
      .map((step: { inputs: { destinationPath: string } }) => step.inputs.destinationPath);
    expect(paths).toHaveLength(3);
    expect(new Set(paths).size).toBe(3);
    for (const path of paths) expect(path).toMatch(/^[^/]+$/);
  });

  it('is updated as a new version of the same document when the plan or the agent changes', () => {
    template.hasResourceProperties('AWS::SSM::Document', { UpdateMethod: 'NewVersion' });
  });

  it('checks the SHA-256 of each executable it ships, as downloaded (gzip) and unpacked', () => {
    const script = JSON.stringify(runStep.inputs.runCommand);
    for (const path of Object.values(executables)) {
      const gzip = readFileSync(path);
      expect(script).toContain(createHash('sha256').update(gzip).digest('hex'));
      expect(script).toContain(createHash('sha256').update(gunzipSync(gzip)).digest('hex'));
    }
  });

  it('lets hosts read each executable and the plan, nothing else of the assets bucket', () => {
    const read = policyStatements(template, 'AWS::IAM::ManagedPolicy').find(
      (s) => s.Sid === 'ReadAgentAndPlan',
    );
    expect(actionsOf(read as Statement)).toEqual(['s3:GetObject']);
    expect(read?.Resource).toHaveLength(3);
  });

  it('gives hybrid-activated servers of each host the SSM core policy and that host’s policies', () => {
    const roles = Object.entries(template.findResources('AWS::IAM::Role'));
    expect(roles.map(([id]) => id).sort()).toEqual([
      expect.stringMatching(/^AgentsHostdbHybridActivationRole/),
      expect.stringMatching(/^AgentsHostwebHybridActivationRole/),
    ]);
    const role = roles.find(([id]) => id.startsWith('AgentsHostdb'))?.[1];
    expect(JSON.stringify(role?.Properties.ManagedPolicyArns)).not.toContain('AgentsHostweb');
    expect(role?.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      expect.objectContaining({
        Principal: { Service: 'ssm.amazonaws.com' },
        Condition: expect.objectContaining({
          StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
        }),
      }),
    ]);
    expect(JSON.stringify(role?.Properties.ManagedPolicyArns)).toContain('AmazonSSMManagedInstanceCore');
    expect(role?.Properties.ManagedPolicyArns).toContainEqual({
      Ref: expect.stringMatching(/^AgentsHostdbPolicy/),
    });
  });
});

describe('document parameter patterns', () => {
  const patterns = Object.fromEntries(
    Object.entries(parameterPatterns(['appdb', 'web-config'])).map(([name, p]) => [name, new RegExp(p)]),
  );
  const options: AgentRestoreOptions = {
    target: 'app_restore',
    tables: ['public.orders'],
    replace: true,
    confirm: 'appdb',
  };

  it.each([
    [DOCUMENT_PARAMETERS.action, 'backup', true],
    [DOCUMENT_PARAMETERS.action, 'prune', false],
    [DOCUMENT_PARAMETERS.job, 'appdb', true],
    [DOCUMENT_PARAMETERS.job, 'other', false],
    [DOCUMENT_PARAMETERS.job, 'appdb; reboot', false],
    [DOCUMENT_PARAMETERS.backupId, newBackupId(new Date('2024-12-06T02:00:00Z'), '3f9a1c'), true],
    [DOCUMENT_PARAMETERS.backupId, '', true],
    [DOCUMENT_PARAMETERS.backupId, '20241206T020000Z-$(id)', false],
    [DOCUMENT_PARAMETERS.tier, 'yearly', true],
    [DOCUMENT_PARAMETERS.tier, 'hourly', false],
    [DOCUMENT_PARAMETERS.options, JSON.stringify(options), true],
    [DOCUMENT_PARAMETERS.options, '{"target":"`reboot`"}', false],
    [DOCUMENT_PARAMETERS.options, '{"target":"$(reboot)"}', false],
    [DOCUMENT_TIMEOUT_PARAMETER, '172800', true],
    [DOCUMENT_TIMEOUT_PARAMETER, '172801', false],
    [DOCUMENT_TIMEOUT_PARAMETER, '0', false],
  ])('%s %j allowed: %s', (name, value, allowed) => {
    expect(patterns[name]?.test(value)).toBe(allowed);
  });
});

/**
 * Where the SSM Agent writes an `aws:downloadContent` file (its plugins/downloadcontent): a relative
 * destinationPath is joined to the command's `downloads/` directory; an absolute one is a directory only if
 * it already is one or ends with `/`, else the file is written as that path.
 */
function ssmDownloadTarget(root: string, orchestration: string, destinationPath: string, objectName: string) {
  const path = destinationPath.startsWith('/')
    ? `${root}${destinationPath}`
    : `${join(orchestration, 'downloads')}/${destinationPath}`;
  const isDirectory = path.endsWith('/') || (existsSync(path) && statSync(path).isDirectory());
  return isDirectory ? join(path, objectName) : path;
}

/** A stand-in agent executable of one architecture: prints its argv (NUL-separated). */
const fakeAgent = (arch: string) => `#!/bin/bash\n# strongbox ${arch}\nprintf '%s\\0' "$@"\n`;

/**
 * A host with nothing pre-created and no Node.js: the test plays the SSM Agent (the downloads land where
 * the document's destinationPath puts them by the agent's rule, the run step starts in the downloads
 * directory) and runs the document's own script with bash, on a PATH of only the tools it needs and a
 * `uname` that says `machine`. The installed paths are moved under the temp root, removed after the file.
 */
function sandbox(options: { machine?: string; tamper?: boolean; badExecutable?: boolean } = {}) {
  const root = tempDirSync('strongbox-doc-');
  const bin = join(root, 'bin');
  mkdirSync(bin);
  for (const tool of ['sha256sum', 'cut', 'cmp', 'install', 'mv', 'gzip', 'chmod', 'rm'])
    symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
  writeFileSync(join(bin, 'uname'), `#!/bin/bash\necho ${options.machine ?? 'x86_64'}\n`);
  chmodSync(join(bin, 'uname'), 0o755);
  const plan = 'plan-abc.json';
  const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
  const gzips = { x64: gzipSync(fakeAgent('x64')), arm64: gzipSync(fakeAgent('arm64')) };
  const agents = Object.fromEntries(
    (['x64', 'arm64'] as const).map((arch) => [
      arch,
      {
        url: `https://example/agent-${arch}`,
        fileName: `agent-${arch}-abc.gz`,
        sha256: sha(options.tamper ? 'another executable' : gzips[arch]),
        executableSha256: sha(options.badExecutable ? 'another executable' : fakeAgent(arch)),
      },
    ]),
  ) as AgentDocumentOptions['agents'];
  const docOptions: AgentDocumentOptions = {
    agents,
    planUrl: 'https://example/plan',
    planFileName: plan,
    planSha256: sha('{"version":1}'),
    vaultUrl: 's3://acme-vault-bucket',
    kmsKeyArn: KEY_ARN,
    region: 'eu-central-1',
    jobs: ['appdb'],
    defaultTimeoutSeconds: 3600,
  };
  // The SSM Agent's own directory for this command; it creates downloads/ when it downloads.
  const orchestration = join(root, 'var/lib/amazon/ssm/mi-0123456789abcdef0/document/orchestration/cmd-1');
  const content = agentDocumentContent(docOptions) as {
    mainSteps: { action: string; inputs: { destinationPath: string; sourceInfo: string } }[];
  };
  const bodies: Record<string, string | Buffer> = {
    'https://example/agent-x64': gzips.x64,
    'https://example/agent-arm64': gzips.arm64,
    'https://example/plan': '{"version":1}',
  };
  for (const step of content.mainSteps.filter((s) => s.action === 'aws:downloadContent')) {
    const url = JSON.parse(step.inputs.sourceInfo).path as string;
    const target = ssmDownloadTarget(
      root,
      orchestration,
      step.inputs.destinationPath,
      url.split('/').at(-1) as string,
    );
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, bodies[url] as string | Buffer);
  }
  const cwd = join(orchestration, 'downloads');
  const installed = { agent: join(root, 'opt/strongbox/strongbox'), plan: join(root, 'etc/plan.json') };
  const script = agentRunScript(docOptions)
    .map((line) =>
      line.startsWith('install_checked') ? line.replace(`'${HOST_PATHS.plan}'`, `'${installed.plan}'`) : line,
    )
    .join('\n')
    .replaceAll(`'${HOST_PATHS.agent}'`, `'${installed.agent}'`);
  const run = (env: Record<string, string>) => {
    const result = spawnSync('/bin/bash', ['-c', script], {
      cwd,
      env: { PATH: bin, ...env },
      encoding: 'utf8',
    });
    const argv = result.stdout.split('\0').slice(0, -1);
    return { status: result.status, argv, stderrLines: result.stderr.trimEnd().split('\n') };
  };
  return { run, installed, root };
}

describe('the run step script', () => {
  const cases: [AgentAction, Record<string, string>][] = AGENT_ACTIONS.flatMap((action) => [
    [action, {}],
    [action, { backupId: newBackupId(new Date('2024-12-06T02:00:00Z'), '3f9a1c') }],
    [action, { tier: 'weekly', options: '{"target":"app_restore","replace":false}' }],
    [
      action,
      {
        backupId: newBackupId(new Date('2025-01-01T00:00:00Z'), 'abcdef'),
        tier: 'yearly',
        options: '{"tables":["public.orders"]}',
      },
    ],
  ]);

  it.each(cases)('runs the agent with agentArgv for %s %j', (action, params) => {
    // Prepare
    const { run } = sandbox();
    const env: Record<string, string> = {
      SSM_action: action,
      SSM_job: 'appdb',
      SSM_backupId: '',
      SSM_tier: '',
      SSM_options: '',
    };
    for (const [name, value] of Object.entries(params)) env[`SSM_${name}`] = value;

    // Act
    const result = run(env);

    // Assess
    expect(result.status).toBe(0);
    expect(result.argv).toEqual(agentArgv({ action, job: 'appdb', ...params }));
  });

  it('works on a host where nothing was created beforehand, with the downloads of two concurrent commands apart', () => {
    // Two commands on one host: each has its own orchestration directory, so neither sees the other's files.
    const first = sandbox();
    const second = sandbox({ tamper: true });
    expect(first.run({ SSM_action: 'verify', SSM_job: 'appdb' }).status).toBe(0);
    expect(second.run({ SSM_action: 'verify', SSM_job: 'appdb' }).status).toBe(2);
    expect(readFileSync(first.installed.agent, 'utf8')).toBe(fakeAgent('x64'));
  });

  it('installs the checked executable and plan, and exports the deployment overrides', () => {
    const { run, installed } = sandbox();
    const result = run({ SSM_action: 'verify', SSM_job: 'appdb' });
    expect(result.status).toBe(0);
    expect(readFileSync(installed.agent, 'utf8')).toBe(fakeAgent('x64'));
    expect(statSync(installed.agent).mode & 0o777).toBe(0o755);
    expect(readFileSync(installed.plan, 'utf8')).toBe('{"version":1}');
  });

  it('passes shell metacharacters through as one literal argument, running nothing', () => {
    const { run, root } = sandbox();
    const hostile = `appdb$(touch ${root}/pwned);\`touch ${root}/pwned2\` "x" 'y'`;
    const result = run({ SSM_action: 'backup', SSM_job: hostile, SSM_options: '$(touch /tmp/never)' });
    expect(result.argv).toContain(hostile);
    expect(existsSync(join(root, 'pwned'))).toBe(false);
    expect(existsSync(join(root, 'pwned2'))).toBe(false);
  });

  it('refuses a download whose SHA-256 differs, with the error as the last stderr line', () => {
    const { run, installed } = sandbox({ tamper: true });
    const result = run({ SSM_action: 'backup', SSM_job: 'appdb' });
    expect(result.status).toBe(2);
    expect(result.stderrLines.at(-1)).toMatch(new RegExp(`^${AGENT_ERROR_PREFIX}SHA-256 of .* expected`));
    expect(existsSync(installed.agent)).toBe(false);
  });

  it('says so when the SSM Agent is too old to pass parameters as environment variables', () => {
    const result = sandbox().run({});
    expect(result.status).toBe(2);
    expect(result.stderrLines.at(-1)).toContain(`${AGENT_ERROR_PREFIX}this SSM Agent does not pass`);
  });

  it.each([
    ['x86_64', 'x64'],
    ['aarch64', 'arm64'],
    ['arm64', 'arm64'],
  ])(
    'installs the executable of the host’s architecture (uname -m %s: %s), with no Node.js',
    (machine, arch) => {
      const { run, installed } = sandbox({ machine });
      const result = run({ SSM_action: 'backup', SSM_job: 'appdb' });
      expect(result.status, result.stderrLines.join('\n')).toBe(0);
      expect(result.argv).toEqual(agentArgv({ action: 'backup', job: 'appdb' }));
      expect(readFileSync(installed.agent, 'utf8')).toBe(fakeAgent(arch));
    },
  );

  it('refuses a host of another architecture, naming it', () => {
    const { run, installed } = sandbox({ machine: 'riscv64' });
    const result = run({ SSM_action: 'backup', SSM_job: 'appdb' });
    expect(result.status).toBe(2);
    expect(result.stderrLines.at(-1)).toBe(
      `${AGENT_ERROR_PREFIX}no Strongbox agent for this host's architecture riscv64 (built for x86_64, amd64, aarch64, arm64)`,
    );
    expect(existsSync(installed.agent)).toBe(false);
  });

  it('refuses an unpacked executable whose SHA-256 differs, leaving nothing behind', () => {
    const { run, installed } = sandbox({ badExecutable: true });
    const result = run({ SSM_action: 'backup', SSM_job: 'appdb' });
    expect(result.status).toBe(2);
    expect(result.stderrLines.at(-1)).toMatch(
      new RegExp(`^${AGENT_ERROR_PREFIX}SHA-256 of the executable unpacked from .* expected`),
    );
    expect(readdirSync(dirname(installed.agent))).toEqual([]);
  });

  it('keeps the installed executable when it is the one, and replaces an outdated one', () => {
    const { run, installed } = sandbox();
    expect(run({ SSM_action: 'verify', SSM_job: 'appdb' }).status).toBe(0);
    const first = statSync(installed.agent).ino;
    expect(run({ SSM_action: 'verify', SSM_job: 'appdb' }).status).toBe(0);
    expect(statSync(installed.agent).ino).toBe(first);
    writeFileSync(installed.agent, '#!/bin/bash\necho an older agent\n');
    expect(run({ SSM_action: 'verify', SSM_job: 'appdb' }).status).toBe(0);
    expect(readFileSync(installed.agent, 'utf8')).toBe(fakeAgent('x64'));
    expect(statSync(installed.agent).mode & 0o777).toBe(0o755);
  });

  it('refuses an unknown action', () => {
    const result = sandbox().run({ SSM_action: 'prune', SSM_job: 'appdb' });
    expect(result.status).toBe(2);
    expect(result.stderrLines.at(-1)).toContain("unknown action 'prune'");
  });
});
