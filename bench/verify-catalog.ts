/**
 * `npx tsx bench/verify-catalog.ts`: how long the verify Lambda's use case takes over a vault of 10,000
 * synthetic manifests. Not a test: it prints a table.
 *
 * The vault holds `BENCH_JOBS` jobs (default 20) × `BENCH_MANIFESTS / BENCH_JOBS` daily backups each
 * (default 10,000 manifests in all), tiered as run-backup tiers them, with the data of every backup
 * past its tier's retention removed as S3 lifecycle removes it (manifests stay in Standard for ever, so
 * verify reads all of them). Each run is `verifyVault({}, …)` — catalog listing, every manifest read
 * and parsed, `checkJob`, the newest backup of each job hashed — with SNS mocked and metrics written to
 * a discarded stream:
 *
 * - `memory`: the in-memory vault — the CPU cost of the code itself;
 * - `memory + latency`: every GET/HEAD and every LIST page waits `BENCH_LATENCY_MS` (default 20 ms),
 *   roughly a Lambda reading S3 in its region, so the 32 manifest reads in flight per job show;
 * - `s3rver` (with `BENCH_S3RVER=1`): the same manifests through the agent's S3Vault and the S3
 *   protocol (a functional stand-in sharing the cores, not a throughput reference).
 */
import { Readable } from 'node:stream';
import { Logger } from '@aws-lambda-powertools/logger';
import { S3Client } from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { S3ClaimStore } from '#adapters/aws/claims';
import { objectKey } from '../core/layout';
import { type Plan, parsePlan } from '../core/plan';
import type { StoredObject, Vault } from '../core/ports';
import { tierOf } from '../core/tiers';
import { createMetrics } from '../functions/lib/metrics';
import type { RetrievableVault, Services } from '../functions/runtime';
import { type VerifyServices, verifyVault } from '../functions/verify';
import { SYNTHETIC_OBJECT, seedBackup } from '../test/unit/functions/support/backups';
import { MemoryVault } from '../test/unit/functions/support/memory-vault';
import { TEST_ENV } from '../test/unit/functions/support/services';

const MANIFESTS = Number(process.env.BENCH_MANIFESTS ?? 10_000);
const JOBS = Number(process.env.BENCH_JOBS ?? 20);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 20);
const DAY = 86_400_000;
const NOW = new Date('2025-06-01T06:00:00Z');

function planOf(jobs: number): Plan {
  const lines = [
    'version: 1',
    'name: bench',
    "vault: { url: 's3://backups-test' }",
    'key: { type: kms, keyId: alias/x }',
    'jobs:',
  ];
  for (let i = 0; i < jobs; i++)
    lines.push(`  - { name: job-${i}, source: { kind: postgres, database: db${i} } }`);
  return parsePlan(lines.join('\n'), 'bench plan');
}

/** Seeds the memory vault: `perJob` daily backups per job ending 3 hours before NOW. */
function seed(plan: Plan, perJob: number): MemoryVault {
  const vault = new MemoryVault(() => NOW);
  for (const job of plan.jobs) {
    let previous: Date | undefined;
    for (let i = perJob - 1; i >= 0; i--) {
      const startedAt = new Date(NOW.getTime() - i * DAY - 3 * 3600_000);
      const tier = tierOf(startedAt, previous, 'UTC');
      previous = startedAt;
      const manifest = seedBackup(vault, { job: job.name, startedAt, tier, storedBytes: 256 });
      if (i >= plan.retention[tier])
        vault.objects.delete(objectKey(job.name, manifest.backupId, SYNTHETIC_OBJECT));
    }
  }
  return vault;
}

/** A vault whose every request waits like a network round trip (LIST: per page of 1,000 keys). */
function withLatency(vault: MemoryVault, ms: number): RetrievableVault {
  const wait = () => new Promise((resolve) => setTimeout(resolve, ms));
  return {
    url: vault.url,
    put: (key, body, options) => vault.put(key, body, options),
    get: async (key) => {
      await wait();
      return vault.get(key);
    },
    head: async (key) => {
      await wait();
      return vault.head(key);
    },
    async *list(prefix: string): AsyncIterable<StoredObject> {
      let n = 0;
      await wait();
      for await (const object of vault.list(prefix)) {
        if (++n % 1000 === 0) await wait();
        yield object;
      }
    },
    delete: (keys) => vault.delete(keys),
    requestRestore: (key, days, tier) => vault.requestRestore(key, days, tier),
  };
}

function services(plan: Plan, vault: RetrievableVault): VerifyServices {
  const sns = new SNSClient({ region: 'eu-central-1' });
  mockClient(sns).on(PublishCommand).resolves({ MessageId: 'bench' });
  const s3 = new S3Client({ region: 'eu-central-1' });
  const all: Services = {
    env: TEST_ENV,
    plan,
    vault,
    claims: new S3ClaimStore(s3, 'bench'),
    s3,
    ssm: new SSMClient({ region: 'eu-central-1' }),
    sns,
    logger: new Logger({ serviceName: 'bench', logLevel: 'ERROR' }),
    metrics: createMetrics('bench'),
    clock: { now: () => NOW },
    sleep: async () => {},
  };
  return all;
}

async function measure(name: string, plan: Plan, vault: RetrievableVault) {
  const write = process.stdout.write;
  process.stdout.write = (() => true) as typeof process.stdout.write; // EMF lines
  const started = performance.now();
  let result: Awaited<ReturnType<typeof verifyVault>>;
  try {
    result = await verifyVault({}, services(plan, vault));
  } finally {
    process.stdout.write = write;
  }
  const seconds = (performance.now() - started) / 1000;
  const manifests = result.jobs.reduce((sum, j) => sum + j.retained + j.expired, 0);
  return {
    name,
    seconds,
    manifests,
    findings: result.findings.length,
    heapMiB: process.memoryUsage().heapUsed / 2 ** 20,
  };
}

async function copyToS3rver(source: MemoryVault, target: Vault): Promise<void> {
  const keys = [...source.objects.keys()];
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++] as string;
      await target.put(key, Readable.from([source.objects.get(key)?.body ?? Buffer.alloc(0)]));
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

async function main() {
  const plan = planOf(JOBS);
  const perJob = Math.ceil(MANIFESTS / JOBS);
  const vault = seed(plan, perJob);
  const manifests = [...vault.objects.keys()].filter((k) => k.endsWith('/manifest.json')).length;
  console.log(
    `vault: ${JOBS} jobs × ${perJob} daily backups = ${manifests} manifests, ${vault.objects.size} objects`,
  );
  const rows = [await measure('memory', plan, vault)];
  rows.push(await measure(`memory + ${LATENCY_MS} ms per request`, plan, withLatency(vault, LATENCY_MS)));
  if (process.env.BENCH_S3RVER === '1') {
    const { startS3rver, s3rverVault } = await import('../test/support/s3rver');
    const s3 = await startS3rver();
    try {
      const s3Vault = s3rverVault(s3, plan.vault);
      await copyToS3rver(vault, s3Vault);
      // s3rver reports the upload time as LastModified: verify then sees every backup as fresh data.
      rows.push(await measure('s3rver (S3Vault)', plan, s3Vault));
    } finally {
      await s3.stop();
    }
  }
  console.log(['VAULT'.padEnd(32), 'MANIFESTS', 'SECONDS', 'PER 1,000', 'FINDINGS', 'HEAP MiB'].join('  '));
  for (const r of rows) {
    console.log(
      [
        r.name.padEnd(32),
        String(r.manifests).padStart(9),
        r.seconds.toFixed(2).padStart(7),
        `${((r.seconds / r.manifests) * 1000).toFixed(3)} s`.padStart(9),
        String(r.findings).padStart(8),
        r.heapMiB.toFixed(0).padStart(8),
      ].join('  '),
    );
  }
  console.log(`node ${process.version}; jobs one after another, 32 manifest reads in flight per job`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
