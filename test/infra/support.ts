/**
 * Shared pieces of the infra tests: small stand-in agent executables (so construct tests do not need
 * `npm run build:exe`), plans as text, and the statements of IAM policies in a template.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { App, type AppProps } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { parse as parseYaml } from 'yaml';
import { AGENT_ARCHITECTURES, type AgentArchitecture, agentExecutableName } from '#core/deployment';
import { type Plan, parsePlan } from '#core/plan';
import { tempDirSync } from '#test/support/temp';

/**
 * A CDK App whose cloud assembly goes to a temp directory removed after the test file (`new App()`
 * without an outdir makes a `cdk.outXXXXXX` under the temp dir that nothing removes).
 */
export function testApp(props: AppProps = {}): App {
  return new App({ outdir: tempDirSync('strongbox-cdk-'), ...props });
}

/**
 * Writes stand-in agent executables (gzip, one per architecture) and returns their paths (the document
 * only hashes and ships them); their directory is removed after the test file.
 */
export function fakeAgentExecutables(
  content = (arch: AgentArchitecture) => `#!/bin/sh\necho strongbox ${arch}\n`,
): Record<AgentArchitecture, string> {
  const dir = tempDirSync('strongbox-agent-');
  return Object.fromEntries(
    (Object.keys(AGENT_ARCHITECTURES) as AgentArchitecture[]).map((arch) => {
      const path = join(dir, `${agentExecutableName(arch)}.gz`);
      writeFileSync(path, gzipSync(content(arch)));
      return [arch, path];
    }),
  ) as Record<AgentArchitecture, string>;
}

/** A plan with two jobs on two host entries (ids and tags), a drill, Slack and Object Lock. */
export const TEST_PLAN_YAML = `
version: 1
name: acme
timezone: Europe/Berlin
vault:
  url: s3://acme-backups
  objectLock: { mode: compliance, days: 14 }
key: { type: kms, keyId: alias/acme }
retention: { daily: 7d, weekly: 5w, monthly: 12mo, yearly: 7y, pointInTime: 10d }
alerts:
  email: [ops@acme.example, dba@acme.example]
  slack: { webhookParameter: /acme/slack-webhook }
verify: { schedule: cron(0 7 * * ? *) }
hosts:
  db: { instanceIds: [i-0123456789abcdef0, mi-0123456789abcdef0] }
  web: { tags: { Role: web, Env: prod } }
jobs:
  - name: appdb
    host: db
    schedule: cron(0 2 * * ? *)
    scheduleWindowMinutes: 20
    source: { kind: postgres, database: app, passwordParameter: /acme/db-password }
    retention: { daily: 14d, pointInTime: 3d }
    timeout: 3h
    drill: { schedule: cron(0 4 ? * SUN *), host: web, rto: 45m }
  - name: web-config
    host: web
    schedule: cron(30 2 * * ? *)
    source: { kind: files, paths: [/etc/nginx] }
    timeout: 20m
`;

/** The test plan, validated, and its document as written. */
export function testPlan(yaml = TEST_PLAN_YAML): { plan: Plan; document: unknown } {
  return { plan: parsePlan(yaml, 'test-plan.yaml'), document: parseYaml(yaml) };
}

/** One IAM statement as a template holds it. */
export interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
  Principal?: unknown;
}

/** The actions of a statement as a list. */
export function actionsOf(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

/** The statements of every policy of one type in a template (`AWS::IAM::ManagedPolicy`, `AWS::IAM::Policy`). */
export function policyStatements(template: Template, type: string, logicalIdPrefix = ''): Statement[] {
  return Object.entries(template.findResources(type))
    .filter(([id]) => id.startsWith(logicalIdPrefix))
    .flatMap(([, resource]) => (resource.Properties.PolicyDocument.Statement as Statement[]) ?? []);
}
