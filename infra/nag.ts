/**
 * cdk-nag (v3) for Strongbox: the AwsSolutions checks on the whole app, and one way to acknowledge the
 * IAM wildcard findings (AwsSolutions-IAM5) that a construct needs on purpose. cdk-nag v3 reports one
 * finding per wildcard resource or action (`AwsSolutions-IAM5[Resource::<arn>/backups/db/*]`) and has no
 * prefix matching, so a construct declares which wildcards it means and why, and an aspect acknowledges
 * exactly the findings that match, each with that reason. Anything else still fails the check.
 */
import { type App, Aspects, CfnResource, type IAspect, Stack, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, rules } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/** A wildcard a construct allows in its own IAM policies, and why. */
export interface WildcardAllowance {
  /** Matches the finding as cdk-nag spells it, e.g. `Resource::<VaultBucket.Arn>/backups/db/*`. */
  readonly finding: RegExp;
  /** Why the wildcard is needed; recorded with the acknowledgement. */
  readonly reason: string;
}

const allowances = new WeakMap<IConstruct, WildcardAllowance[]>();
const stacksWithAspect = new WeakSet<Stack>();

/**
 * Declares wildcards that IAM policies below `scope` may hold. Each matching AwsSolutions-IAM5 finding
 * of a policy or role below `scope` is acknowledged on that resource with the allowance's reason.
 * @example allowIamWildcards(this, [{ finding: /^Resource::.*\/backups\/[a-z0-9-]+\/\*$/, reason: 'objects of one job' }])
 */
export function allowIamWildcards(scope: IConstruct, allowed: readonly WildcardAllowance[]): void {
  allowances.set(scope, [...(allowances.get(scope) ?? []), ...allowed]);
  const stack = Stack.of(scope);
  if (!stacksWithAspect.has(stack)) {
    stacksWithAspect.add(stack);
    Aspects.of(stack).add(new AcknowledgeAllowedWildcards());
  }
}

/** The AwsSolutions-IAM5 findings of one IAM resource, as cdk-nag computes them. */
export function iamWildcardFindings(resource: CfnResource): string[] {
  const result = rules.iam.IAMNoWildcardPermissions(resource);
  return Array.isArray(result) ? result : [];
}

class AcknowledgeAllowedWildcards implements IAspect {
  visit(node: IConstruct): void {
    if (!CfnResource.isCfnResource(node) || !node.cfnResourceType.startsWith('AWS::IAM::')) return;
    const allowed: WildcardAllowance[] = [];
    for (let scope: IConstruct | undefined = node; scope; scope = scope.node.scope) {
      allowed.push(...(allowances.get(scope) ?? []));
    }
    if (allowed.length === 0) return;
    for (const finding of iamWildcardFindings(node)) {
      const allowance = allowed.find((a) => a.finding.test(finding));
      if (allowance)
        Validations.of(node).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason: allowance.reason });
    }
  }
}

/**
 * Runs the AwsSolutions checks over the app at synth: an unacknowledged finding stops the synth.
 * @example addNagChecks(app)
 */
export function addNagChecks(app: App): AwsSolutionsChecks {
  const checks = new AwsSolutionsChecks(app);
  Validations.of(app).addPlugins(checks);
  return checks;
}

/** One acknowledgement recorded in the construct tree. */
export interface Acknowledgement {
  /** Construct path it was recorded on. */
  path: string;
  id: string;
  reason: string;
}

/**
 * Every acknowledgement recorded below `scope` (for reports and tests).
 * @example listAcknowledgements(app).map((a) => `${a.id}: ${a.reason}`)
 */
export function listAcknowledgements(scope: IConstruct): Acknowledgement[] {
  const found: Acknowledgement[] = [];
  for (const construct of scope.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY || !entry.data) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        found.push({ path: construct.node.path, id: id.replace(/^annotation::/i, ''), reason });
      }
    }
  }
  return found;
}
