/**
 * Claims: small JSON objects in the vault bucket written with a create-only conditional put, so that of
 * several invocations for the same thing (a retried schedule, two "retrieval done" events) exactly one
 * goes on. Keys come from core/layout (`runClaimKey`, `drillClaimKey`, `restoreStartedKey`).
 */
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { awsErrorName, awsHttpStatus, describeAwsError, isRetryableAwsError } from '#adapters/aws/errors';
import { VaultError } from '#core/errors';

/** Create-only writes. */
export interface ClaimStore {
  /**
   * Creates `key` holding `body` unless it exists. Resolves true when this call created it and false
   * when it existed already. Concurrent calls for one key: exactly one resolves true.
   */
  claim(key: string, body: string): Promise<boolean>;
  /** Removes a claim its caller could not act on, so that a retry can claim it again. */
  release(key: string): Promise<void>;
}

/**
 * Claims in an S3 bucket: `PutObject` with `If-None-Match: *` (S3 answers 412 PreconditionFailed when
 * the key exists, 409 ConditionalRequestConflict while another conditional write of it is in flight —
 * retried once, then it is the other writer's). Claims are Standard-class JSON without a tier tag.
 */
export class S3ClaimStore implements ClaimStore {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  async claim(key: string, body: string): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: key,
            Body: body,
            ContentType: 'application/json',
            IfNoneMatch: '*',
          }),
        );
        return true;
      } catch (error) {
        const status = awsHttpStatus(error);
        if (status === 412 || awsErrorName(error) === 'PreconditionFailed') return false;
        if ((status === 409 || awsErrorName(error) === 'ConditionalRequestConflict') && attempt === 1) {
          await this.sleep(250);
          continue;
        }
        if (status === 409 || awsErrorName(error) === 'ConditionalRequestConflict') return false;
        throw new VaultError(`claim s3://${this.bucket}/${key} failed: ${describeAwsError(error)}`, {
          cause: error,
          retryable: isRetryableAwsError(error),
        });
      }
    }
  }

  async release(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (error) {
      throw new VaultError(`release of claim s3://${this.bucket}/${key} failed: ${describeAwsError(error)}`, {
        cause: error,
        retryable: isRetryableAwsError(error),
      });
    }
  }
}
