import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { openKeyProvider } from '#adapters/keys/index';
import { KmsKeyProvider } from '#adapters/keys/kms';
import { KeyError } from '#core/errors';
import { encryptionContext } from '#core/manifest';

const kms = mockClient(KMSClient);
const context = encryptionContext('db', '20241206T020000Z-3f9a1c');
const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const plaintext = Buffer.alloc(32, 7);
const blob = Buffer.from('wrapped-by-kms');

function awsError(name: string, message = name): Error {
  return Object.assign(new Error(message), { name, $metadata: { httpStatusCode: 400 } });
}

beforeEach(() => {
  kms.reset();
});

describe('KmsKeyProvider', () => {
  it('asks KMS for an AES-256 data key bound to the context and records the key ARN', async () => {
    kms.on(GenerateDataKeyCommand).resolves({ Plaintext: plaintext, CiphertextBlob: blob, KeyId: keyArn });
    const keys = new KmsKeyProvider({ type: 'kms', keyId: 'alias/strongbox' }, { client: new KMSClient({}) });

    const dataKey = await keys.generateDataKey(context);

    expect(kms.commandCalls(GenerateDataKeyCommand)[0]?.args[0].input).toEqual({
      KeyId: 'alias/strongbox',
      KeySpec: 'AES_256',
      EncryptionContext: context,
    });
    expect(dataKey.plaintext.equals(plaintext)).toBe(true);
    expect(dataKey.wrapped).toBe(blob.toString('base64'));
    expect(dataKey.key).toEqual({ type: 'kms', keyId: keyArn });
  });

  it('decrypts with the recorded key id and the same context', async () => {
    kms.on(DecryptCommand).resolves({ Plaintext: plaintext, KeyId: keyArn });
    const keys = new KmsKeyProvider({ type: 'kms', keyId: 'alias/strongbox' }, { client: new KMSClient({}) });

    const result = await keys.decryptDataKey(
      blob.toString('base64'),
      { type: 'kms', keyId: keyArn },
      context,
    );

    const input = kms.commandCalls(DecryptCommand)[0]?.args[0].input;
    expect(input?.KeyId).toBe(keyArn);
    expect(input?.EncryptionContext).toEqual(context);
    expect(Buffer.from(input?.CiphertextBlob as Uint8Array).equals(blob)).toBe(true);
    expect(result.equals(plaintext)).toBe(true);
  });

  it.each([
    ['InvalidCiphertextException', /encryption context .* differs/],
    ['IncorrectKeyException', /wrapped by another KMS key/],
    ['AccessDeniedException', /may not use the key/],
    ['KMSInvalidStateException', /disabled or pending deletion/],
    ['SomethingNew', /SomethingNew/],
  ])('maps %s on decrypt to a KeyError that says why', async (name, message) => {
    kms.on(DecryptCommand).rejects(awsError(name));
    const keys = new KmsKeyProvider({ type: 'kms', keyId: keyArn }, { client: new KMSClient({}) });
    const error = await keys
      .decryptDataKey('AAAA', { type: 'kms', keyId: keyArn }, context)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain(keyArn);
    expect((error as Error).cause).toMatchObject({ name });
  });

  it('maps a failed GenerateDataKey to a KeyError', async () => {
    kms.on(GenerateDataKeyCommand).rejects(awsError('NotFoundException'));
    const keys = new KmsKeyProvider({ type: 'kms', keyId: 'alias/gone' }, { client: new KMSClient({}) });
    await expect(keys.generateDataKey(context)).rejects.toThrow(
      /alias\/gone: NotFoundException: the key does not exist/,
    );
  });

  it('rejects a response without a 32-byte key', async () => {
    kms
      .on(GenerateDataKeyCommand)
      .resolves({ Plaintext: Buffer.alloc(16), CiphertextBlob: blob, KeyId: keyArn });
    const keys = new KmsKeyProvider({ type: 'kms', keyId: keyArn }, { client: new KMSClient({}) });
    await expect(keys.generateDataKey(context)).rejects.toBeInstanceOf(KeyError);
  });

  it('refuses a data key wrapped by a local master key', async () => {
    const keys = new KmsKeyProvider({ type: 'kms', keyId: keyArn }, { client: new KMSClient({}) });
    await expect(
      keys.decryptDataKey('AAAA', { type: 'local', fingerprint: '0123456789abcdef' }, context),
    ).rejects.toThrow(/local master key 0123456789abcdef/);
    expect(kms.calls()).toHaveLength(0);
  });

  it('is what openKeyProvider returns for a kms key', async () => {
    const keys = await openKeyProvider({ type: 'kms', keyId: keyArn, region: 'eu-west-1' }, { baseDir: '/' });
    expect(keys).toBeInstanceOf(KmsKeyProvider);
  });
});

describe('KmsKeyProvider.wrapDataKey (copies with their own key)', () => {
  it('encrypts the data key under the copy key with the context and records the key ARN', async () => {
    // Prepare
    kms.on(EncryptCommand).resolves({ CiphertextBlob: blob, KeyId: keyArn });
    const keys = new KmsKeyProvider({ type: 'kms', keyId: 'alias/offsite' }, { client: new KMSClient({}) });

    // Act
    const wrapped = await keys.wrapDataKey(plaintext, context);

    // Assess
    expect(kms.commandCalls(EncryptCommand)[0]?.args[0].input).toEqual({
      KeyId: 'alias/offsite',
      Plaintext: plaintext,
      EncryptionContext: context,
    });
    expect(wrapped).toEqual({ wrapped: blob.toString('base64'), key: { type: 'kms', keyId: keyArn } });
  });

  it('names the key and what KMS said when it refuses', async () => {
    kms.on(EncryptCommand).rejects(awsError('AccessDeniedException'));
    const keys = new KmsKeyProvider({ type: 'kms', keyId: 'alias/offsite' }, { client: new KMSClient({}) });
    await expect(keys.wrapDataKey(plaintext, context)).rejects.toThrow(
      /cannot wrap a data key with KMS key alias\/offsite: AccessDeniedException/,
    );
  });
});
