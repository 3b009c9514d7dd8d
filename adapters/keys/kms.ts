/**
 * Data keys from AWS KMS: GenerateDataKey (AES_256) for each backup, bound to its encryption context
 * (job and backup id, in clear in CloudTrail: ids only), and Decrypt with the same key id and context.
 * One KMS call per backup, not per chunk. The key reference records the ARN KMS returns, so restores
 * work after the plan's alias moves to another key.
 */
import {
  DecryptCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  type GenerateDataKeyCommandOutput,
  KMSClient,
} from '@aws-sdk/client-kms';
import { KeyError } from '#core/errors';
import type { KeyRef } from '#core/manifest';
import type { KeyConfig } from '#core/plan';
import type { DataKey, KeyProvider } from '#core/ports';
import { DATA_KEY_BYTES } from '#core/stream-format';

/** A plan's KMS key. */
export type KmsKeyConfig = Extract<KeyConfig, { type: 'kms' }>;

/** Options of a KMS key provider. */
export interface KmsKeyProviderOptions {
  /** A client to use instead of one for `config.region` (tests, Lambdas with a module-scope client). */
  client?: KMSClient;
}

/** Wraps and unwraps data keys with an AWS KMS key. */
export class KmsKeyProvider implements KeyProvider {
  readonly keyId: string;
  readonly client: KMSClient;

  constructor(config: KmsKeyConfig, options: KmsKeyProviderOptions = {}) {
    this.keyId = config.keyId;
    this.client = options.client ?? new KMSClient(config.region ? { region: config.region } : {});
  }

  async generateDataKey(context: Record<string, string>): Promise<DataKey> {
    let response: GenerateDataKeyCommandOutput;
    try {
      response = await this.client.send(
        new GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: context }),
      );
    } catch (error) {
      throw kmsError(error, `cannot generate a data key with KMS key ${this.keyId}`);
    }
    const { Plaintext, CiphertextBlob, KeyId } = response;
    if (!Plaintext || Plaintext.length !== DATA_KEY_BYTES || !CiphertextBlob) {
      throw new KeyError(`KMS returned no usable data key for ${this.keyId}`);
    }
    return {
      plaintext: Buffer.from(Plaintext),
      wrapped: Buffer.from(CiphertextBlob).toString('base64'),
      key: { type: 'kms', keyId: KeyId ?? this.keyId },
    };
  }

  /** KMS Encrypt of the data key under this key, with the context; one call per copied backup. */
  async wrapDataKey(plaintext: Buffer, context: Record<string, string>): Promise<Omit<DataKey, 'plaintext'>> {
    if (plaintext.length !== DATA_KEY_BYTES) throw new KeyError(`a data key is ${DATA_KEY_BYTES} bytes`);
    let blob: Uint8Array | undefined;
    let keyId: string | undefined;
    try {
      const response = await this.client.send(
        new EncryptCommand({ KeyId: this.keyId, Plaintext: plaintext, EncryptionContext: context }),
      );
      blob = response.CiphertextBlob;
      keyId = response.KeyId;
    } catch (error) {
      throw kmsError(error, `cannot wrap a data key with KMS key ${this.keyId}`);
    }
    if (!blob || blob.length === 0) throw new KeyError(`KMS returned no wrapped data key for ${this.keyId}`);
    return {
      wrapped: Buffer.from(blob).toString('base64'),
      key: { type: 'kms', keyId: keyId ?? this.keyId },
    };
  }

  async decryptDataKey(wrapped: string, ref: KeyRef, context: Record<string, string>): Promise<Buffer> {
    if (ref.type !== 'kms') {
      throw new KeyError(
        `the data key was wrapped by local master key ${ref.fingerprint}, but the plan names KMS key ${this.keyId}`,
      );
    }
    let plaintext: Uint8Array | undefined;
    try {
      const response = await this.client.send(
        new DecryptCommand({
          KeyId: ref.keyId,
          CiphertextBlob: Buffer.from(wrapped, 'base64'),
          EncryptionContext: context,
        }),
      );
      plaintext = response.Plaintext;
    } catch (error) {
      throw kmsError(error, `cannot decrypt the data key with KMS key ${ref.keyId}`);
    }
    if (!plaintext || plaintext.length !== DATA_KEY_BYTES) {
      throw new KeyError(`KMS returned no usable data key from ${ref.keyId}`);
    }
    return Buffer.from(plaintext);
  }
}

const HINTS: Record<string, string> = {
  InvalidCiphertextException:
    'the encryption context (job, backup id) differs from the one the key was made for, or the wrapped key is corrupt',
  IncorrectKeyException: 'the data key was wrapped by another KMS key',
  AccessDeniedException:
    'this host or function may not use the key (key policy, IAM, or the context condition)',
  NotFoundException: 'the key does not exist in this account and region',
  DisabledException: 'the key is disabled',
  KMSInvalidStateException: 'the key is disabled or pending deletion',
  KeyUnavailableException: 'the key is unavailable now; try again',
  DependencyTimeoutException: 'KMS timed out; try again',
  KMSInternalException: 'KMS failed internally; try again',
  ThrottlingException: 'KMS throttled the request; try again',
};

function kmsError(error: unknown, what: string): KeyError {
  const name = (error as { name?: string } | undefined)?.name ?? 'Error';
  const hint = HINTS[name] ?? (error instanceof Error ? error.message : String(error));
  return new KeyError(`${what}: ${name}: ${hint}`, { cause: error });
}
