/**
 * One Strongbox Lambda: a handler file from functions/ bundled by esbuild (locally, no Docker) for the
 * current Node.js runtime on arm64, with its own role that holds nothing but its log stream writes until
 * the caller adds what the handler uses.
 */
import { join } from 'node:path';
import { Duration, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { FUNCTION_ENV, FUNCTIONS, METRICS_NAMESPACE } from '#core/deployment';
import { FUNCTIONS_DIR, REPO_ROOT } from '../paths';

/** A handler name of core/deployment FUNCTIONS (`run-backup`, …). */
export type FunctionName = (typeof FUNCTIONS)[keyof typeof FUNCTIONS];

/** Properties of a {@link StrongboxFunction}. */
export interface StrongboxFunctionProps {
  /** Which handler: `functions/<name>.ts`, exporting an async `handler`. */
  readonly name: FunctionName;
  /** Environment variables (core/deployment FUNCTION_ENV names); never secrets. */
  readonly environment: Record<string, string>;
  /**
   * Directory holding the handler files.
   * @default FUNCTIONS_DIR, this repository's functions/
   */
  readonly functionsDir?: string;
  /**
   * Longest run of one invocation.
   * @default Duration.minutes(1)
   */
  readonly timeout?: Duration;
  /**
   * Memory (and so CPU) of the function, in MiB.
   * @default 512
   */
  readonly memorySizeMiB?: number;
  /**
   * How long the function's logs (and its metrics, written as EMF log lines) stay.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * Where asynchronous invocations go after their retries failed (EventBridge and S3 events).
   * @default - dropped
   */
  readonly onFailure?: lambda.IDestination;
}

/**
 * A Strongbox function with its own role and log group.
 * @example const fn = new StrongboxFunction(this, 'RunBackup', { name: FUNCTIONS.runBackup, environment });
 */
export class StrongboxFunction extends Construct {
  /** The function. */
  readonly function: nodejs.NodejsFunction;
  /** Its role: add only what the handler calls. */
  readonly role: iam.Role;
  /** Its log group. */
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: StrongboxFunctionProps) {
    super(scope, id);
    if (!Object.values(FUNCTIONS).includes(props.name)) {
      throw new RangeError(
        `${this.node.path}: '${props.name}' is not one of ${Object.values(FUNCTIONS).join(', ')}`,
      );
    }
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Strongbox ${props.name} function`,
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    this.function = new nodejs.NodejsFunction(this, 'Function', {
      entry: join(props.functionsDir ?? FUNCTIONS_DIR, `${props.name}.ts`),
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySizeMiB ?? 512,
      timeout: props.timeout ?? Duration.minutes(1),
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
      environment: {
        ...props.environment,
        [FUNCTION_ENV.metricsNamespace]: METRICS_NAMESPACE,
        [FUNCTION_ENV.serviceName]: props.name,
        NODE_OPTIONS: '--enable-source-maps',
      },
      onFailure: props.onFailure,
      retryAttempts: props.onFailure ? 2 : undefined,
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: 'node22',
        platform: 'node',
        minify: true,
        sourceMap: true,
        // The SDK is bundled at the version package-lock.json pins, not the runtime's.
        externalModules: [],
        mainFields: ['module', 'main'],
        banner:
          "import { createRequire as __strongboxRequire } from 'node:module'; const require = __strongboxRequire(import.meta.url);",
      },
    });
    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Pinned to nodejs22.x, the runtime the handlers are bundled (esbuild target node22) and tested for; a newer runtime is a deliberate change with its own tests, not a side effect of upgrading CDK.',
    });
  }

  /** Adds statements to the function's role. */
  allow(...statements: iam.PolicyStatement[]): void {
    for (const statement of statements) this.role.addToPolicy(statement);
  }
}
