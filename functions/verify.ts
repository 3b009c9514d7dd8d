/**
 * verify — its own schedule (or by hand): checks every job of the plan against the vault with the core
 * checks that `strongbox verify` uses (core/checks `checkJob`): newest backup's age against the warn and
 * critical limits, missing and incomplete backups, size against the recent median and the floor, each
 * retained backup's objects against its manifest (presence, size, storage class), backups per GFS tier
 * against retention, and WAL continuity for jobs that archive WAL. Checksums: the newest backup of each
 * job is read and hashed (SHA-256 of the stored bytes, no key needed) while its objects are in the
 * Standard class and the run's byte budget lasts; reading everything, decrypting and decompressing is
 * `strongbox verify --deep` on a host. One alert per run lists every finding, worst first; metrics per job.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { dataObjects, hashStoredObjects, listRunClaims, listWal, readCatalog } from '#core/catalog';
import { checkChecksums, checkJob, type Finding, type JobSummary } from '#core/checks';
import { FUNCTIONS, METRICS } from '#core/deployment';
import { formatDuration } from '#core/duration';
import { describeError } from '#core/errors';
import { objectKey } from '#core/layout';
import { findJob, type Job, retentionOf } from '#core/plan';
import { countFindings, makeAlert, publishAlert, worstSeverity } from './lib/alerts';
import { verifyInputSchema } from './lib/events';
import { runLogged } from './lib/handler';
import { createMetrics, MetricUnit, publishJobMetrics } from './lib/metrics';
import { parseInput } from './lib/validate';
import { lazy, openServices, type Services } from './runtime';

const logger = new Logger({ serviceName: FUNCTIONS.verify });
const metrics = createMetrics(FUNCTIONS.verify);

/** Environment this handler needs beyond the plan and vault (core/deployment FUNCTION_ENV). */
export const VERIFY_ENV = ['topicArn'] as const;

/** The services verify uses. */
export type VerifyServices = Services<(typeof VERIFY_ENV)[number]>;

/** Bytes of newest backups one run reads to compare checksums, unless the input says otherwise (1 GiB). */
export const DEFAULT_CHECKSUM_BUDGET_BYTES = 1024 ** 3;

/** Manifests read at once per job (S3 serves thousands of GETs per second per prefix). */
const MANIFEST_READS = 32;

/** What one verification run found. */
export interface VerifyResult {
  jobs: (JobSummary & { findings: number; checksummedBytes: number })[];
  counts: Record<'critical' | 'warning' | 'info', number>;
  /** Whether an alert was published (only when there is a warning or worse). */
  alerted: boolean;
  findings: Finding[];
}

/**
 * Verifies every job (or those the input names) and alerts once when anything is wrong.
 * @example await verifyVault({}, services) // { counts: { critical: 0, warning: 1, info: 0 }, alerted: true, … }
 * @throws PlanError for a bad input or a job the plan does not have (nothing is read then).
 */
export async function verifyVault(input: unknown, services: VerifyServices): Promise<VerifyResult> {
  const {
    jobs: names,
    checksumBudgetBytes,
    metricsOnly = false,
  } = parseInput(verifyInputSchema, input ?? {}, 'verify input');
  const { plan, clock } = services;
  const jobs = names ? names.map((name) => findJob(plan, name)) : plan.jobs;
  let budget = metricsOnly ? 0 : (checksumBudgetBytes ?? DEFAULT_CHECKSUM_BUDGET_BYTES);
  const now = clock.now();
  const reports: VerifyResult['jobs'] = [];
  const findings: Finding[] = [];
  for (const job of jobs) {
    const report = await verifyJob(job, services, now, budget);
    budget -= report.checksummedBytes;
    reports.push({
      ...report.summary,
      findings: countProblems(report.findings),
      checksummedBytes: report.checksummedBytes,
    });
    findings.push(...report.findings);
    publishJobMetrics(services.metrics, job.name, [
      ...(report.summary.backupAgeSeconds !== undefined
        ? [
            {
              name: METRICS.backupAgeSeconds,
              unit: MetricUnit.Seconds,
              value: Math.round(report.summary.backupAgeSeconds),
            },
          ]
        : []),
      ...(report.summary.walRpoSeconds !== undefined
        ? [
            {
              name: METRICS.walRpoSeconds,
              unit: MetricUnit.Seconds,
              value: Math.round(report.summary.walRpoSeconds),
            },
          ]
        : []),
      ...(report.summary.lastBackupBytes !== undefined
        ? [{ name: METRICS.lastBackupBytes, unit: MetricUnit.Bytes, value: report.summary.lastBackupBytes }]
        : []),
      { name: METRICS.findings, unit: MetricUnit.Count, value: countProblems(report.findings) },
    ]);
  }
  const counts = {
    critical: findings.filter((f) => f.severity === 'critical').length,
    warning: findings.filter((f) => f.severity === 'warning').length,
    info: findings.filter((f) => f.severity === 'info').length,
  };
  const problems = findings.filter((f) => f.severity !== 'info');
  const severity = metricsOnly ? undefined : worstSeverity(problems);
  if (severity) {
    const affected = new Set(problems.map((f) => f.job)).size;
    await publishAlert(
      services.sns,
      services.env.topicArn,
      makeAlert({
        severity,
        title: `Verification: ${countFindings(problems)} in ${affected} of ${jobs.length} job${jobs.length > 1 ? 's' : ''}`,
        plan: plan.name,
        ...(affected === 1 && problems[0] ? { job: problems[0].job } : {}),
        details: reports.map(describeReport),
        findings,
        nextSteps: [
          'Critical first: a missing or damaged object, an invalid manifest or a WAL gap means that backup cannot be restored — take a new backup now (invoke run-backup with {"job":"<job>"}).',
          'A backup too old or missing: see the backup-finished alert of that run, or the output of its SSM command in CloudWatch Logs.',
          'Read a backup back end to end (decrypt, authenticate, decompress) on a host: strongbox verify --plan /etc/strongbox/plan.json --job <job> --deep',
          'Lifecycle findings (retention, storage class): compare the bucket lifecycle rules with the plan (npx cdk diff).',
        ],
        source: FUNCTIONS.verify,
        at: now.toISOString(),
      }),
    );
  }
  services.logger.info('verification done', { counts, alerted: severity !== undefined, jobs: jobs.length });
  return { jobs: reports, counts, alerted: severity !== undefined, findings };
}

async function verifyJob(
  job: Job,
  services: VerifyServices,
  now: Date,
  budgetBytes: number,
): Promise<{ summary: JobSummary; findings: Finding[]; checksummedBytes: number }> {
  const { plan, vault } = services;
  try {
    const [catalog, runClaims, wal] = await Promise.all([
      readCatalog(vault, job.name, { concurrency: MANIFEST_READS }),
      listRunClaims(vault, job.name),
      listWal(vault, job.name),
    ]);
    const { findings, summary } = checkJob({
      job,
      retention: retentionOf(plan, job),
      timeZone: plan.timezone,
      catalog,
      recentCount: plan.verify.recentCount,
      now,
      runClaims,
      walNames: wal.length > 0 ? wal.map((w) => w.name) : undefined,
      storageClasses: true,
    });
    let checksummedBytes = 0;
    const newest = summary.newestBackupId ? catalog.manifests.get(summary.newestBackupId) : undefined;
    const listing = catalog.backups.find((b) => b.backupId === summary.newestBackupId);
    if (newest && listing) {
      const stored = dataObjects(listing);
      const bytes = stored.reduce((sum, o) => sum + o.sizeBytes, 0);
      const readable =
        stored.length === newest.objects.length && stored.every((o) => o.storageClass === 'STANDARD');
      if (readable && bytes <= budgetBytes) {
        const hashes = await hashStoredObjects(vault, newest);
        findings.push(
          ...checkChecksums(newest, hashes, (name) => objectKey(job.name, newest.backupId, name)),
        );
        checksummedBytes = bytes;
      } else if (readable) {
        findings.push({
          severity: 'info',
          job: job.name,
          check: 'checksum-skipped',
          backupId: newest.backupId,
          message: `checksums of ${newest.backupId} not read: ${bytes} bytes exceed what is left of this run's budget (${Math.max(0, budgetBytes)}); strongbox verify --deep reads it on a host`,
        });
      }
    }
    return { summary, findings, checksummedBytes };
  } catch (error) {
    services.logger.error('could not verify job', { job: job.name, error: describeError(error) });
    return {
      summary: { job: job.name, retained: 0, expired: 0, incomplete: 0 },
      findings: [
        {
          severity: 'critical',
          job: job.name,
          check: 'vault-read',
          message: `could not read the catalog of this job from the vault: ${describeError(error)}`,
        },
      ],
      checksummedBytes: 0,
    };
  }
}

function countProblems(findings: readonly Finding[]): number {
  return findings.filter((f) => f.severity !== 'info').length;
}

function describeReport(report: VerifyResult['jobs'][number]): string {
  const newest = report.newestBackupId
    ? `newest ${report.newestBackupId} (${formatDuration(report.backupAgeSeconds ?? 0)} old, ${report.lastBackupBytes} bytes)`
    : 'no complete backup';
  const checked = report.checksummedBytes > 0 ? ', checksums read' : '';
  return `${report.job}: ${newest}; ${report.retained} retained, ${report.expired} expired, ${report.incomplete} incomplete${checked}; ${report.findings} finding${report.findings === 1 ? '' : 's'}`;
}

/**
 * The handler over given services (tests pass mocked clients and a real vault).
 * @example export const handler = createVerifyHandler(async () => services)
 */
export function createVerifyHandler(getServices: () => Promise<VerifyServices>) {
  return async (event: unknown, context?: Context): Promise<VerifyResult> => {
    const services = await getServices();
    return runLogged(services.logger, context, FUNCTIONS.verify, () => verifyVault(event, services));
  };
}

/** Lambda entry: Scheduler target input `{}` (every job) or `{ "jobs": ["app-db"] }`. */
export const handler = createVerifyHandler(
  lazy(() => openServices(process.env, VERIFY_ENV, { logger, metrics })),
);
