/**
 * What an AWS deployment needs of a plan beyond the schema: limits of the services it uses (SSM, S3,
 * EventBridge Scheduler) checked at synth, so a bad plan stops `cdk synth` with the field's path instead
 * of failing half-way through a deployment.
 */
import { PlanError } from '#core/errors';
import { formatPath } from '#core/issues';
import type { Plan } from '#core/plan';
import { MAX_EXECUTION_TIMEOUT_SECONDS } from './constructs/agent-document';

/** SendCommand takes at most this many instance ids; more hosts are targeted by tags. */
const MAX_INSTANCE_IDS = 50;

/**
 * Problems of a Scheduler expression, or undefined when it looks valid: `cron(…)` has six fields
 * (minutes hours day-of-month month day-of-week year) and one of the two day fields is `?`.
 */
export function scheduleProblem(expression: string): string | undefined {
  const cron = /^cron\((.*)\)$/.exec(expression);
  if (!cron)
    return /^rate\(\d+ (minute|minutes|hour|hours|day|days)\)$/.test(expression)
      ? undefined
      : 'must be cron(…) or rate(…)';
  const fields = (cron[1] as string).trim().split(/\s+/);
  if (fields.length !== 6) {
    return `'${expression}' has ${fields.length} fields, EventBridge Scheduler wants 6: minutes hours day-of-month month day-of-week year, e.g. cron(0 2 * * ? *)`;
  }
  if (fields[2] !== '?' && fields[4] !== '?') {
    return `'${expression}': one of day-of-month and day-of-week must be '?', e.g. cron(0 2 * * ? *)`;
  }
  return undefined;
}

/**
 * Checks that a valid plan can be deployed on AWS.
 * @example assertDeployable(parsePlan(text, 'plan.yaml'))
 * @throws PlanError naming every field that an AWS deployment cannot take.
 */
export function assertDeployable(plan: Plan): void {
  const issues: string[] = [];
  const at = (path: (string | number)[], message: string) => issues.push(`${formatPath(path)}: ${message}`);

  if (!plan.vault.url.startsWith('s3://')) {
    at(
      ['vault', 'url'],
      'an AWS deployment keeps backups in S3: write s3://<name> (hosts get the bucket the stack creates)',
    );
  }
  if (plan.vault.endpoint !== undefined) {
    at(['vault', 'endpoint'], 'must be absent for an AWS deployment (it is for S3-compatible servers)');
  }
  if (plan.vault.checksums !== 'when-supported') {
    at(
      ['vault', 'checksums'],
      'must be when-supported on AWS (uploads into an Object Lock bucket need a checksum)',
    );
  }
  if (plan.vault.replicaRegion !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d$/.test(plan.vault.replicaRegion)) {
    at(['vault', 'replicaRegion'], `'${plan.vault.replicaRegion}' is not an AWS region (e.g. eu-west-1)`);
  }
  for (const [name, host] of Object.entries(plan.hosts)) {
    if ((host.instanceIds?.length ?? 0) > MAX_INSTANCE_IDS) {
      at(
        ['hosts', name, 'instanceIds'],
        `at most ${MAX_INSTANCE_IDS} (SendCommand's limit): target these hosts by tags`,
      );
    }
  }
  const verifyProblem = scheduleProblem(plan.verify.schedule);
  if (verifyProblem) at(['verify', 'schedule'], verifyProblem);
  plan.jobs.forEach((job, index) => {
    if (job.timeout > MAX_EXECUTION_TIMEOUT_SECONDS) {
      at(['jobs', index, 'timeout'], 'at most 48h on AWS (the SSM Run Command limit of one step)');
    }
    if (job.schedule) {
      const problem = scheduleProblem(job.schedule);
      if (problem) at(['jobs', index, 'schedule'], problem);
      if (!job.host) at(['jobs', index, 'host'], 'required for a scheduled job on AWS: name one of hosts');
    }
    if (job.drill?.schedule) {
      const problem = scheduleProblem(job.drill.schedule);
      if (problem) at(['jobs', index, 'drill', 'schedule'], problem);
      if (!job.drill.host && !job.host) {
        at(
          ['jobs', index, 'drill', 'host'],
          'required for a scheduled drill on AWS (or give the job a host)',
        );
      }
    }
  });
  if (issues.length > 0) throw new PlanError(issues);
}
