/**
 * The S3 vault's multipart writer fills a small pool of reused part buffers (adapters/vaults/s3.ts
 * PartWriter): an object of many more parts than buffers arrives byte for byte, with never more than
 * `queueSize` parts in flight, against s3rver.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client, S3Vault } from '#adapters/vaults/s3';
import type { VaultConfig } from '#core/plan';
import { S3RVER_CREDENTIALS, type S3rverInstance, startS3rver } from '#test/support/s3rver';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

let s3: S3rverInstance;
beforeAll(async () => {
  s3 = await startS3rver('part-pool');
});
afterAll(() => s3?.stop());

describe('S3Vault multipart part buffers', () => {
  it('reuses part buffers only after their upload answered: many parts arrive intact, queueSize in flight', async () => {
    const config: VaultConfig = {
      url: `s3://${s3.bucket}/pool`,
      endpoint: s3.endpoint,
      region: 'us-east-1',
      checksums: 'when-required',
      partSizeMiB: 5,
      queueSize: 1,
      storageClass: 'STANDARD',
    };
    const client = createS3Client(config, {
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    });
    let inFlight = 0;
    let maxInFlight = 0;
    let parts = 0;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'UploadPartCommand') return next(args);
        parts += 1;
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          return await next(args);
        } finally {
          inFlight -= 1;
        }
      },
      { step: 'finalizeRequest', name: 'countParts' },
    );
    const vault = new S3Vault(config, { client });
    // 5 parts and a tail through 2 buffers, in pieces that straddle the part boundaries.
    const data = randomBytes(26 * MiB + 4321);
    const pieces: Buffer[] = [];
    for (let at = 0; at < data.length; at += 700 * 1024 + 13)
      pieces.push(data.subarray(at, at + 700 * 1024 + 13));

    const { sizeBytes } = await vault.put('big/object', Readable.from(pieces));

    expect(sizeBytes).toBe(data.length);
    expect(parts).toBe(6);
    expect(maxInFlight).toBe(1);
    const got: Buffer[] = [];
    for await (const chunk of await vault.get('big/object')) got.push(chunk as Buffer);
    expect(sha256(Buffer.concat(got))).toBe(sha256(data));
  });
});
