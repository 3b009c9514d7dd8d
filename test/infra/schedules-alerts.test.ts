import { Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type JobScheduleInput,
  METRICS,
  METRICS_DIMENSION,
  METRICS_NAMESPACE,
  SCHEDULED_TIME_ATTRIBUTE,
} from '#core/deployment';
import { Alerts } from '#infra/constructs/alerts';
import { Dashboard } from '#infra/constructs/dashboard';
import { Schedules } from '#infra/constructs/schedules';
import { dstSkippedRuns } from '#infra/dst';
import { TEST_PLAN_YAML, testApp, testPlan } from './support';

const fnArn = (name: string) => `arn:aws:lambda:eu-central-1:111111111111:function:${name}`;

interface ScheduleProps {
  Description: string;
  ScheduleExpression: string;
  ScheduleExpressionTimezone: string;
  FlexibleTimeWindow: { Mode: string; MaximumWindowInMinutes?: number };
  Target: { Arn: string; Input: string; RetryPolicy: unknown; DeadLetterConfig: unknown };
}

describe('Schedules', () => {
  let schedules: ScheduleProps[];
  let template: Template;
  const { plan } = testPlan();

  beforeAll(() => {
    const stack = new Stack(testApp(), 'SchedulesTest');
    const fn = (name: string) =>
      lambda.Function.fromFunctionAttributes(stack, name, {
        functionArn: fnArn(name),
        sameEnvironment: true,
      });
    new Schedules(stack, 'Schedules', {
      plan,
      runBackup: fn('run-backup'),
      verify: fn('verify'),
      restoreDrill: fn('restore-drill'),
    });
    template = Template.fromStack(stack);
    schedules = Object.values(template.findResources('AWS::Scheduler::Schedule')).map(
      (r) => r.Properties as ScheduleProps,
    );
  });

  const backupsOf = (job: string) =>
    schedules.filter(
      (s) =>
        s.Target.Arn === fnArn('run-backup') && (JSON.parse(s.Target.Input) as JobScheduleInput).job === job,
    );

  it.each(testPlan().plan.jobs.map((job) => [job.name, job.schedule, job.scheduleWindowMinutes] as const))(
    'has one backup schedule for %s: %s in the plan time zone, %i-minute window',
    (job, expression, windowMinutes) => {
      // Act
      const found = backupsOf(job);

      // Assess
      expect(found).toHaveLength(1);
      expect(found[0]?.ScheduleExpression).toBe(expression);
      expect(found[0]?.ScheduleExpressionTimezone).toBe('Europe/Berlin');
      expect(found[0]?.FlexibleTimeWindow).toEqual(
        windowMinutes > 0 ? { Mode: 'FLEXIBLE', MaximumWindowInMinutes: windowMinutes } : { Mode: 'OFF' },
      );
    },
  );

  it('passes the job and the scheduled time, so retries of one firing start one backup', () => {
    expect(JSON.parse(backupsOf('appdb')[0]?.Target.Input ?? '{}')).toEqual({
      job: 'appdb',
      scheduledTime: SCHEDULED_TIME_ATTRIBUTE,
    });
  });

  it('has no more backup schedules than jobs with a schedule', () => {
    expect(schedules.filter((s) => s.Target.Arn === fnArn('run-backup'))).toHaveLength(2);
  });

  it('runs verification on the plan verify schedule, and the metrics-only run every hour', () => {
    const verify = schedules.filter((s) => s.Target.Arn === fnArn('verify'));
    expect(verify.map((s) => [s.ScheduleExpression, JSON.parse(s.Target.Input ?? '')]).sort()).toEqual([
      [plan.verify.schedule, {}],
      ['rate(1 hour)', { metricsOnly: true }],
    ]);
  });

  it('creates every schedule after its schedule group', () => {
    const all = Object.values(template.findResources('AWS::Scheduler::Schedule'));
    const [groupId] = Object.keys(template.findResources('AWS::Scheduler::ScheduleGroup'));
    expect(all.length).toBeGreaterThan(3);
    for (const schedule of all) expect(schedule.DependsOn).toContain(groupId);
  });

  it('runs a restore drill only for jobs with drill.schedule', () => {
    const drills = schedules.filter((s) => s.Target.Arn === fnArn('restore-drill'));
    expect(drills).toHaveLength(1);
    expect(JSON.parse(drills[0]?.Target.Input ?? '')).toEqual({
      job: 'appdb',
      scheduledTime: SCHEDULED_TIME_ATTRIBUTE,
    });
    expect(drills[0]?.ScheduleExpression).toBe('cron(0 4 ? * SUN *)');
  });

  it('retries a failed invocation 3 times within an hour, then dead-letters it', () => {
    for (const schedule of schedules) {
      expect(schedule.Target.RetryPolicy).toEqual({
        MaximumRetryAttempts: 3,
        MaximumEventAgeInSeconds: 3600,
      });
      expect(schedule.Target.DeadLetterConfig).toEqual({ Arn: expect.anything() });
    }
  });

  it('refuses drill schedules without a restore-drill function', () => {
    const stack = new Stack(testApp(), 'NoDrill');
    const fn = (name: string) => lambda.Function.fromFunctionArn(stack, name, fnArn(name));
    expect(() => new Schedules(stack, 'Schedules', { plan, runBackup: fn('rb'), verify: fn('v') })).toThrow(
      /job 'appdb' has a drill schedule but no restoreDrill function/,
    );
  });
});

describe('schedules in a daylight-saving gap', () => {
  it('finds the runs a cron expression loses when the clocks go forward', () => {
    const from = new Date('2026-12-01T00:00:00Z');
    expect(dstSkippedRuns('cron(30 2 * * ? *)', 'Europe/Berlin', from)).toEqual(['02:30 on 2027-03-28']);
    expect(dstSkippedRuns('cron(0,30 2 ? * SUN *)', 'America/New_York', from)).toEqual([
      '02:00 on 2027-03-14',
      '02:30 on 2027-03-14',
    ]);
    expect(dstSkippedRuns('cron(0 3 * * ? *)', 'Europe/Berlin', from)).toEqual([]);
    expect(dstSkippedRuns('cron(30 2 * * ? *)', 'UTC', from)).toEqual([]);
  });

  it('reports such a schedule at synth, naming the field', () => {
    const { plan } = testPlan(TEST_PLAN_YAML.replace('cron(30 2 * * ? *)', 'cron(15 2 * * ? *)'));
    const stack = new Stack(testApp(), 'DstTest');
    const fn = (name: string) =>
      lambda.Function.fromFunctionAttributes(stack, name, {
        functionArn: fnArn(name),
        sameEnvironment: true,
      });
    new Schedules(stack, 'Schedules', {
      plan,
      runBackup: fn('run-backup'),
      verify: fn('verify'),
      restoreDrill: fn('restore-drill'),
    });
    const warnings = Annotations.fromStack(stack).findWarning(
      '*',
      Match.stringLikeRegexp('daylight|clocks go forward'),
    );
    const texts = warnings.map((w) => String(w.entry.data));
    // appdb runs at 02:00 and web-config at 02:15, both in Berlin's 02:00–03:00 gap; verify runs at 07:00.
    expect(
      texts.some((t) => t.startsWith('jobs[0].schedule (appdb): cron(0 2 * * ? *) in Europe/Berlin')),
    ).toBe(true);
    expect(texts.some((t) => t.startsWith('jobs[1].schedule (web-config)'))).toBe(true);
    expect(texts.some((t) => t.startsWith('verify.schedule'))).toBe(false);
  });
});

describe('Alerts on command-level status', () => {
  let template: Template;

  beforeAll(() => {
    const stack = new Stack(testApp(), 'CommandStatusTest');
    new Alerts(stack, 'Alerts', {}).alertOnCommandStatus('strongbox-doc', 'acme');
    template = Template.fromStack(stack);
  });

  it('alerts on every ended status of a command but Success, "No Instances In Tag" included', () => {
    const [rule] = Object.values(template.findResources('AWS::Events::Rule'));
    const pattern = rule?.Properties.EventPattern;
    expect(pattern).toEqual({
      source: ['aws.ssm'],
      'detail-type': ['EC2 Command Status-change Notification'],
      detail: {
        'document-name': ['strongbox-doc'],
        status: [{ 'anything-but': ['Pending', 'InProgress', 'Delayed', 'Cancelling', 'Success'] }],
      },
    });
    const excluded = pattern.detail.status[0]['anything-but'] as string[];
    for (const status of ['No Instances In Tag', 'Failed', 'TimedOut', 'Cancelled']) {
      expect(excluded).not.toContain(status);
    }
    const [target] = rule?.Properties.Targets ?? [];
    expect(JSON.stringify(target.InputTransformer)).toContain('No Instances In Tag');
  });

  it('lets EventBridge publish to the encrypted topic', () => {
    const [key] = Object.values(template.findResources('AWS::KMS::Key'));
    expect(key?.Properties.KeyPolicy.Statement).toContainEqual(
      expect.objectContaining({
        Sid: 'EventBridgePublish',
        Principal: { Service: 'events.amazonaws.com' },
      }),
    );
    const [policy] = Object.values(template.findResources('AWS::SNS::TopicPolicy'));
    expect(JSON.stringify(policy?.Properties.PolicyDocument)).toContain('events.amazonaws.com');
  });
});

describe('Alerts and Dashboard', () => {
  let template: Template;
  const { plan } = testPlan();

  beforeAll(() => {
    const stack = new Stack(testApp(), 'AlertsTest');
    const alerts = new Alerts(stack, 'Alerts', { emails: plan.alerts.email });
    const fn = lambda.Function.fromFunctionArn(stack, 'Fn', fnArn('verify'));
    new Dashboard(stack, 'Dashboard', { plan, topic: alerts.topic, functions: [fn] });
    template = Template.fromStack(stack);
  });

  it('encrypts the topic with its own rotating key and requires TLS from publishers', () => {
    const [topic] = Object.values(template.findResources('AWS::SNS::Topic'));
    expect(topic?.Properties.KmsMasterKeyId).toEqual({
      'Fn::GetAtt': [expect.stringMatching(/^AlertsKey/), 'Arn'],
    });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    const [policy] = Object.values(template.findResources('AWS::SNS::TopicPolicy'));
    expect(policy?.Properties.PolicyDocument.Statement).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
  });

  it('subscribes every e-mail address of the plan', () => {
    const endpoints = Object.values(template.findResources('AWS::SNS::Subscription')).map((s) => [
      s.Properties.Protocol,
      s.Properties.Endpoint,
    ]);
    expect(endpoints).toEqual(plan.alerts.email.map((email) => ['email', email]));
  });

  it.each(testPlan().plan.jobs.map((job) => [job.name, job.limits.criticalAge] as const))(
    'alarms when the newest backup of %s is older than %i seconds, notifying the topic',
    (job, criticalAge) => {
      const alarms = Object.values(
        template.findResources('AWS::CloudWatch::Alarm', {
          Properties: {
            MetricName: METRICS.backupAgeSeconds,
            Dimensions: [{ Name: METRICS_DIMENSION, Value: job }],
          },
        }),
      );
      expect(alarms).toHaveLength(1);
      expect(alarms[0]?.Properties).toEqual(
        expect.objectContaining({
          Namespace: METRICS_NAMESPACE,
          Threshold: criticalAge,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          AlarmActions: [{ Ref: expect.stringMatching(/^AlertsTopic/) }],
        }),
      );
    },
  );

  it.each([
    [METRICS.backupFailed, 'appdb'],
    [METRICS.backupFailed, 'web-config'],
    [METRICS.drillFailed, 'appdb'],
  ])('alarms on %s of %s', (metricName, job) => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: metricName,
      Dimensions: [{ Name: METRICS_DIMENSION, Value: job }],
      Threshold: 1,
      TreatMissingData: 'notBreaching',
    });
  });

  it('alarms when a function fails', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm'));
    const errors = alarms.filter((a) => JSON.stringify(a.Properties.Metrics ?? []).includes('"Errors"'));
    expect(errors).toHaveLength(1);
  });

  it('shows age, size, duration, failures and drill duration per job on the dashboard', () => {
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard?.Properties.DashboardBody);
    for (const name of [
      METRICS.backupAgeSeconds,
      METRICS.lastBackupBytes,
      METRICS.backupDurationSeconds,
      METRICS.backupFailed,
      METRICS.drillDurationSeconds,
    ]) {
      expect(body).toContain(name);
    }
    for (const job of plan.jobs) expect(body).toContain(job.name);
  });
});
