/**
 * The plan as an S3 asset: written at synth to a file in the cloud assembly's directory (`cdk.out`,
 * where CDK stages it; nothing is left in the temp dir) and uploaded by `cdk deploy`, read by the
 * Lambdas (STRONGBOX_PLAN_BUCKET/KEY) and downloaded by hosts to HOST_PATHS.plan.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Aws, Stage } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Asset } from 'aws-cdk-lib/aws-s3-assets';
import { Construct } from 'constructs';
import { type Plan, validatePlan } from '#core/plan';

/** Properties of a {@link PlanAsset}. */
export interface PlanAssetProps {
  /**
   * The plan as written: its YAML document parsed into plain data, defaults not filled in. (The
   * validated `Plan` would not do: its durations are seconds already and would read back as days.)
   */
  readonly document: unknown;
}

/**
 * The plan, validated and shipped as one JSON object in the CDK assets bucket.
 * @example const plan = new PlanAsset(this, 'Plan', { document: parseYaml(text) });
 */
export class PlanAsset extends Construct {
  /** The validated plan. */
  readonly plan: Plan;
  /** The uploaded JSON file. */
  readonly asset: Asset;
  /** SHA-256 (hex) of the JSON file, which hosts check after downloading it. */
  readonly sha256: string;
  /** HTTPS URL of the object (virtual-hosted style), for SSM `aws:downloadContent`. */
  readonly httpsUrl: string;
  /** File name the object downloads as. */
  readonly fileName: string;

  /** @throws PlanError naming every invalid field, before anything is created. */
  constructor(scope: Construct, id: string, props: PlanAssetProps) {
    super(scope, id);
    this.plan = validatePlan(props.document);
    const json = `${JSON.stringify(props.document, null, 2)}\n`;
    this.sha256 = createHash('sha256').update(json).digest('hex');
    const outdir = Stage.of(this)?.outdir;
    if (outdir === undefined) throw new Error('the plan asset must be inside a CDK App or Stage');
    const dir = join(outdir, `strongbox-plan-${this.sha256.slice(0, 16)}`);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'plan.json');
    writeFileSync(path, json);
    this.asset = new Asset(this, 'Asset', { path });
    this.fileName = this.asset.s3ObjectKey;
    this.httpsUrl = assetHttpsUrl(this.asset);
  }

  /** Lets a principal read the plan object (s3:GetObject on that one key). */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:GetObject'],
      resourceArns: [assetObjectArn(this.asset)],
    });
  }
}

/** ARN of an asset's object. */
export function assetObjectArn(asset: Asset): string {
  return `arn:${Aws.PARTITION}:s3:::${asset.s3BucketName}/${asset.s3ObjectKey}`;
}

/** Virtual-hosted-style HTTPS URL of an asset's object. */
export function assetHttpsUrl(asset: Asset): string {
  return `https://${asset.s3BucketName}.s3.${Aws.REGION}.${Aws.URL_SUFFIX}/${asset.s3ObjectKey}`;
}
