/**
 * EventBridge Scheduler schedules from the plan: one per job with a `schedule` (→ run-backup), the
 * verification schedule (→ verify), and one per job with a `drill.schedule` (→ restore-drill), each in
 * the plan's time zone. Targets get the scheduled time, so a retried invocation is recognised.
 */
import { Annotations, Aws, Duration, TimeZone, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { type JobScheduleInput, SCHEDULED_TIME_ATTRIBUTE, type VerifyScheduleInput } from '#core/deployment';
import type { Plan } from '#core/plan';
import { dstSkippedRuns } from '../dst';
import { allowIamWildcards } from '../nag';
import { DEAD_LETTER_QUEUE_REASON } from './functions';

/** Properties of {@link Schedules}. */
export interface SchedulesProps {
  /** The plan: its jobs' schedules and windows, the verify schedule and the time zone. */
  readonly plan: Plan;
  /** The run-backup function. */
  readonly runBackup: lambda.IFunction;
  /** The verify function. */
  readonly verify: lambda.IFunction;
  /**
   * The restore-drill function; required when a job has `drill.schedule`.
   * @default - no drill schedules allowed
   */
  readonly restoreDrill?: lambda.IFunction;
  /**
   * Where invocations go that still failed after the retries.
   * @default - a new SQS queue (SSE, TLS only, 14 days)
   */
  readonly deadLetterQueue?: sqs.IQueue;
  /**
   * Retries of a failed invocation (the functions are idempotent per scheduled time).
   * @default 3
   */
  readonly retryAttempts?: number;
  /**
   * How long after the scheduled time an invocation may still be retried.
   * @default Duration.hours(1)
   */
  readonly maxEventAge?: Duration;
}

/**
 * The plan's schedules.
 * @example new Schedules(this, 'Schedules', { plan, runBackup, verify, restoreDrill });
 */
export class Schedules extends Construct {
  /** Backup schedules by job name. */
  readonly backups: ReadonlyMap<string, scheduler.Schedule>;
  /** Restore-drill schedules by job name. */
  readonly drills: ReadonlyMap<string, scheduler.Schedule>;
  /** The verification schedule. */
  readonly verify: scheduler.Schedule;
  /** The hourly metrics-only verify run that keeps the backup age current. */
  readonly ageMetrics: scheduler.Schedule;
  /** Where failed invocations go. */
  readonly deadLetterQueue: sqs.IQueue;

  constructor(scope: Construct, id: string, props: SchedulesProps) {
    super(scope, id);
    const { plan } = props;
    const drilled = plan.jobs.find((job) => job.drill?.schedule);
    if (drilled && !props.restoreDrill) {
      throw new Error(
        `${this.node.path}: job '${drilled.name}' has a drill schedule but no restoreDrill function was given`,
      );
    }
    const timeZone = TimeZone.of(plan.timezone);
    if (props.deadLetterQueue) {
      this.deadLetterQueue = props.deadLetterQueue;
    } else {
      const queue = new sqs.Queue(this, 'DeadLetters', {
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
      });
      Validations.of(queue).acknowledge({ id: 'AwsSolutions-SQS3', reason: DEAD_LETTER_QUEUE_REASON });
      this.deadLetterQueue = queue;
    }
    const role = new iam.Role(this, 'Role', {
      description: 'EventBridge Scheduler: invokes the Strongbox functions on the plan schedules',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com').withConditions({
        StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
      }),
    });
    const targetProps = {
      role,
      deadLetterQueue: this.deadLetterQueue,
      retryAttempts: props.retryAttempts ?? 3,
      maxEventAge: props.maxEventAge ?? Duration.hours(1),
    };
    const group = new scheduler.ScheduleGroup(this, 'Group', {});
    reportDstGaps(this, plan);

    const backups = new Map<string, scheduler.Schedule>();
    const drills = new Map<string, scheduler.Schedule>();
    for (const job of plan.jobs) {
      const input: JobScheduleInput = { job: job.name, scheduledTime: SCHEDULED_TIME_ATTRIBUTE };
      if (job.schedule) {
        backups.set(
          job.name,
          new scheduler.Schedule(this, `Backup-${job.name}`, {
            description: `Strongbox backup of ${job.name}`,
            scheduleGroup: group,
            schedule: scheduler.ScheduleExpression.expression(job.schedule, timeZone),
            timeWindow:
              job.scheduleWindowMinutes > 0
                ? scheduler.TimeWindow.flexible(Duration.minutes(job.scheduleWindowMinutes))
                : scheduler.TimeWindow.off(),
            target: new targets.LambdaInvoke(props.runBackup, {
              ...targetProps,
              input: scheduler.ScheduleTargetInput.fromObject(input),
            }),
          }),
        );
      }
      if (job.drill?.schedule) {
        drills.set(
          job.name,
          new scheduler.Schedule(this, `Drill-${job.name}`, {
            description: `Strongbox restore drill of ${job.name}`,
            scheduleGroup: group,
            schedule: scheduler.ScheduleExpression.expression(job.drill.schedule, timeZone),
            timeWindow: scheduler.TimeWindow.off(),
            target: new targets.LambdaInvoke(props.restoreDrill as lambda.IFunction, {
              ...targetProps,
              input: scheduler.ScheduleTargetInput.fromObject(input),
            }),
          }),
        );
      }
    }
    const verifyInput: VerifyScheduleInput = {};
    this.verify = new scheduler.Schedule(this, 'Verify', {
      description: 'Strongbox verification of every job',
      scheduleGroup: group,
      schedule: scheduler.ScheduleExpression.expression(plan.verify.schedule, timeZone),
      timeWindow: scheduler.TimeWindow.off(),
      target: new targets.LambdaInvoke(props.verify, {
        ...targetProps,
        input: scheduler.ScheduleTargetInput.fromObject(verifyInput),
      }),
    });
    // The backup-age alarm looks at the last hour: publish the age every hour, not only at verification.
    const metricsInput: VerifyScheduleInput = { metricsOnly: true };
    this.ageMetrics = new scheduler.Schedule(this, 'AgeMetrics', {
      description: 'Strongbox backup age of every job, hourly (metrics only, no alert)',
      scheduleGroup: group,
      schedule: scheduler.ScheduleExpression.rate(Duration.hours(1)),
      timeWindow: scheduler.TimeWindow.off(),
      target: new targets.LambdaInvoke(props.verify, {
        ...targetProps,
        input: scheduler.ScheduleTargetInput.fromObject(metricsInput),
      }),
    });
    // The schedules name the group by a plain string: without this CloudFormation may create them first.
    for (const schedule of [...backups.values(), ...drills.values(), this.verify, this.ageMetrics]) {
      schedule.node.addDependency(group);
    }
    this.backups = backups;
    this.drills = drills;
    allowIamWildcards(role, [
      {
        finding: /^Resource::<.+\.Arn>:\*$/,
        reason:
          "Scheduler invokes the target function; CDK's grant covers its versions and aliases (`<arn>:*`).",
      },
    ]);
  }
}

/**
 * Warns at synth about schedules whose local time does not exist on a daylight-saving day of the plan's
 * time zone: EventBridge Scheduler skips that run without a word.
 */
function reportDstGaps(scope: Construct, plan: Plan, from = new Date()): void {
  const expressions: [string, string][] = [['verify.schedule', plan.verify.schedule]];
  plan.jobs.forEach((job, index) => {
    if (job.schedule) expressions.push([`jobs[${index}].schedule (${job.name})`, job.schedule]);
    if (job.drill?.schedule)
      expressions.push([`jobs[${index}].drill.schedule (${job.name})`, job.drill.schedule]);
  });
  for (const [where, expression] of expressions) {
    const skipped = dstSkippedRuns(expression, plan.timezone, from);
    if (skipped.length > 0) {
      Annotations.of(scope).addWarningV2(
        'strongbox:dst-gap',
        `${where}: ${expression} in ${plan.timezone} does not run at ${skipped.join(', ')}: that local time does not exist when the clocks go forward, and EventBridge Scheduler skips the run silently. Move it out of the gap (e.g. before 02:00 or after 03:00).`,
      );
    }
  }
}
