/**
 * `strongbox doctor` when the plan declares Object Lock: against s3rver, a real S3-protocol server that
 * knows nothing of Object Lock, doctor reports that the vault does not lock objects (exit 2), and says
 * nothing of Object Lock when the plan does not ask for it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { strongbox } from '#test/support/cli';
import { S3RVER_CREDENTIALS, type S3rverInstance, startS3rver } from '#test/support/s3rver';

let s3: S3rverInstance;
let dir: string;
const env = {
  AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  AWS_REGION: 'us-east-1',
};

beforeAll(async () => {
  s3 = await startS3rver('backups-lock');
  dir = await mkdtemp(join(tmpdir(), 'strongbox-lock-'));
  await writeFile(join(dir, 'data.txt'), 'x\n');
  expect((await strongbox(['keygen', join(dir, 'master.key')])).code).toBe(0);
});

afterAll(async () => {
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function planWith(lock: string): Promise<string> {
  const plan = join(dir, `plan-${lock ? 'lock' : 'plain'}.yaml`);
  await writeFile(
    plan,
    `version: 1
vault:
  url: s3://${s3.bucket}
  endpoint: ${s3.endpoint}
  forcePathStyle: true
  checksums: when-required
${lock}
key: { type: local, path: master.key }
jobs:
  - name: config
    source: { kind: files, paths: ["${dir}"] }
    compression: { algorithm: gzip }
`,
  );
  return plan;
}

it('reports an S3 endpoint that ignores the Object Lock the plan asks for', async () => {
  const plan = await planWith('  objectLock: { mode: compliance, days: 30 }');
  const run = await strongbox(['doctor', '-p', plan, '-q'], env);
  expect(run.code, run.stdout + run.stderr).toBe(2);
  expect(run.stdout).toMatch(/^ok +vault s3:\/\/backups-lock: write, read and delete work$/m);
  expect(run.stdout).toMatch(
    /^FAIL {2}vault object lock: the plan asks for Object Lock \(compliance, 30 days\), but s3:\/\/backups-lock does not say it has it \(the server answered NotImplemented \(HTTP 501\)\): an endpoint that ignores Object Lock leaves backups deletable$/m,
  );
  expect(run.stdout).not.toMatch(/<\?xml|<Error>/);
});

it('does not probe Object Lock when the plan does not ask for it', async () => {
  const run = await strongbox(['doctor', '-p', await planWith(''), '-q'], env);
  expect(run.code, run.stdout + run.stderr).toBe(0);
  expect(run.stdout).not.toMatch(/object lock/i);
});
