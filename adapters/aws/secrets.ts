/**
 * Secrets a plan names by reference, read from SSM Parameter Store (SecureString, decrypted). The SSM
 * client is created on first use: most hosts never read a parameter and never load it.
 */
import type { SSMClient } from '@aws-sdk/client-ssm';
import { PlanError, SourceError } from '#core/errors';
import type { SecretStore } from '#core/ports';
import { awsErrorName } from './errors';

/**
 * A SecretStore over SSM Parameter Store. Values are never logged or put in errors.
 * @example await new SsmSecretStore({ env }).read('/db/app/password')
 */
export class SsmSecretStore implements SecretStore {
  readonly #env: Readonly<Record<string, string | undefined>>;
  #client: SSMClient | undefined;

  /** @param options `client` to use (tests, Lambdas), else one for the environment's `AWS_REGION`. */
  constructor(options: { env?: Readonly<Record<string, string | undefined>>; client?: SSMClient } = {}) {
    this.#env = options.env ?? {};
    this.#client = options.client;
  }

  async read(name: string, options: { signal?: AbortSignal } = {}): Promise<string> {
    const { GetParameterCommand, SSMClient } = await import('@aws-sdk/client-ssm');
    this.#client ??= new SSMClient(this.#env.AWS_REGION ? { region: this.#env.AWS_REGION } : {});
    let value: string | undefined;
    try {
      const output = await this.#client.send(new GetParameterCommand({ Name: name, WithDecryption: true }), {
        abortSignal: options.signal,
      });
      value = output.Parameter?.Value;
    } catch (error) {
      if (awsErrorName(error) === 'ParameterNotFound') {
        throw new PlanError([`SSM parameter ${name} does not exist`], { cause: error });
      }
      throw new SourceError(`cannot read SSM parameter ${name} (${awsErrorName(error) ?? 'error'})`, {
        cause: error,
      });
    }
    if (value === undefined || value === '') throw new SourceError(`SSM parameter ${name} has no value`);
    return value;
  }
}
