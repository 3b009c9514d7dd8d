/**
 * The Strongbox CDK app: a plan file read once and validated (core/plan, then the AWS limits), and the
 * stacks it becomes. `infra/bin/strongbox.ts` runs this for `cdk synth|deploy -c plan=…`; tests call it
 * with their own App.
 */
import { readFileSync } from 'node:fs';
import type { App } from 'aws-cdk-lib';
import { parse as parseYaml } from 'yaml';
import type { AgentArchitecture } from '#core/deployment';
import { PlanError } from '#core/errors';
import { type Plan, parsePlan } from '#core/plan';
import { assertDeployable } from './plan-checks';
import { StrongboxStack } from './stacks/strongbox-stack';
import { StrongboxReplicaStack, StrongboxVaultStack } from './stacks/vault-stack';

/** A plan file, validated, with the document as written (what hosts and functions get). */
export interface LoadedPlan {
  plan: Plan;
  document: unknown;
}

/**
 * Reads and validates a plan file for an AWS deployment.
 * @example const { plan, document } = loadPlanFile('examples/aws-small.yaml')
 * @throws PlanError with the path of every bad field (as the agent reports it).
 */
export function loadPlanFile(path: string): LoadedPlan {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new PlanError(
      [`cannot read plan ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`],
      {
        cause: error,
      },
    );
  }
  return loadPlanText(text, path);
}

/** Validates plan text (YAML) for an AWS deployment. @throws PlanError naming every bad field. */
export function loadPlanText(text: string, origin: string): LoadedPlan {
  const plan = parsePlan(text, origin);
  assertDeployable(plan);
  return { plan, document: parseYaml(text) };
}

/** Options of {@link buildStrongboxApp}. */
export interface StrongboxAppOptions {
  /** The validated plan and its document. */
  plan: LoadedPlan;
  /** The agent executables (gzip) by architecture. @default this repository's dist/strongbox-linux-<arch>.gz */
  agentExecutables?: Readonly<Record<AgentArchitecture, string>>;
  /** The Lambda handlers. @default this repository's functions/ */
  functionsDir?: string;
}

/** The stacks of a deployment. */
export interface StrongboxStacks {
  /** `<plan>-vault`: bucket, key, access logs; retained. */
  vault: StrongboxVaultStack;
  /** `<plan>-replica`, in `vault.replicaRegion`, when the plan has one. */
  replica?: StrongboxReplicaStack;
  /** `<plan>-app`: everything else. */
  app: StrongboxStack;
}

/**
 * Adds a plan's stacks to an app. Stacks are environment-agnostic (deploy with any account and region;
 * synth needs no credentials and makes no lookups), except the replica, which is pinned to its region.
 * @example buildStrongboxApp(new App(), { plan: loadPlanFile('examples/modax.yaml') })
 */
export function buildStrongboxApp(app: App, options: StrongboxAppOptions): StrongboxStacks {
  const { plan, document } = options.plan;
  const replica = plan.vault.replicaRegion
    ? new StrongboxReplicaStack(app, `${plan.name}-replica`, { plan })
    : undefined;
  const vault = new StrongboxVaultStack(app, `${plan.name}-vault`, { plan });
  if (replica) vault.addStackDependency(replica, 'the replica bucket must exist before replication names it');
  const stack = new StrongboxStack(app, `${plan.name}-app`, {
    planDocument: document,
    vaultStack: vault,
    agentExecutables: options.agentExecutables,
    functionsDir: options.functionsDir,
  });
  return { vault, replica, app: stack };
}
