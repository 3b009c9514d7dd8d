/**
 * The S3 vault's multipart writer fills a small pool of reused part buffers (adapters/vaults/s3.ts
 * PartWriter): an object of many more parts than buffers arrives byte for byte, with never more than
 * `queueSize` parts in flight, against s3rver; and an object larger than its parts were chosen for grows
 * them, so it still fits S3's 10,000 parts.
 */
import { constants as bufferConstants } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_PART_BYTES, MAX_PARTS, partSizeAt, S3Vault } from '#adapters/vaults/s3';
import type { VaultConfig } from '#core/plan';
import { type S3rverInstance, s3rverClient, s3rverVaultConfig, startS3rver } from '#test/support/s3rver';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

let s3: S3rverInstance;
beforeAll(async () => {
  s3 = await startS3rver('part-pool');
});
afterAll(() => s3?.stop());

/** A client of `config` that records the ContentLength of every UploadPart and how many are in flight. */
function countingClient(config: VaultConfig) {
  const client = s3rverClient(config);
  const seen = { partLengths: [] as number[], inFlight: 0, maxInFlight: 0 };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== 'UploadPartCommand') return next(args);
      seen.partLengths.push(Number((args.input as { ContentLength?: number }).ContentLength));
      seen.inFlight += 1;
      seen.maxInFlight = Math.max(seen.maxInFlight, seen.inFlight);
      try {
        return await next(args);
      } finally {
        seen.inFlight -= 1;
      }
    },
    { step: 'initialize', name: 'countParts' },
  );
  return { client, seen };
}

/** `data` in pieces that straddle the part boundaries. */
function pieces(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += 700 * 1024 + 13) out.push(data.subarray(at, at + 700 * 1024 + 13));
  return out;
}

describe('S3Vault multipart part sizes', () => {
  it('grows the parts of an object larger than they were chosen for, and it arrives intact', async () => {
    // Prepare: parts of 5 MiB for two parts, then doubling every part (the real schedule: 5,000 and 400).
    const config = s3rverVaultConfig(s3, 'grow', { queueSize: 1 });
    const { client, seen } = countingClient(config);
    const vault = new S3Vault(config, { client, partGrowth: { afterParts: 2, everyParts: 1 } });
    const data = randomBytes(40 * MiB + 4321);

    // Act
    const { sizeBytes } = await vault.put('big/grown', Readable.from(pieces(data)));

    // Assess
    expect(sizeBytes).toBe(data.length);
    expect(seen.partLengths).toEqual([5 * MiB, 5 * MiB, 10 * MiB, 20 * MiB, 4321]);
    expect(seen.maxInFlight).toBe(1);
    expect(sha256(await buffer(await vault.get('big/grown')))).toBe(sha256(data));
  });

  it("the real schedule keeps the first half of the parts and reaches S3's 5 TiB object in 10,000 parts", () => {
    const TiB = 1024 ** 4;
    let total = 0;
    for (let n = 1; n <= MAX_PARTS; n++) total += partSizeAt(5 * MiB, n);
    expect(total).toBeGreaterThanOrEqual(5 * TiB);
    expect(partSizeAt(8 * MiB, MAX_PARTS / 2)).toBe(8 * MiB);
    expect(partSizeAt(8 * MiB, MAX_PARTS / 2 + 1)).toBe(16 * MiB);
    expect(partSizeAt(5 * MiB, MAX_PARTS)).toBe(MAX_PART_BYTES);
    // Every part fits in one Node Buffer.
    expect(MAX_PART_BYTES).toBeLessThanOrEqual(bufferConstants.MAX_LENGTH);
  });
});

describe('S3Vault multipart part buffers', () => {
  it('reuses part buffers only after their upload answered: many parts arrive intact, queueSize in flight', async () => {
    const config = s3rverVaultConfig(s3, 'pool', { queueSize: 1 });
    const { client, seen } = countingClient(config);
    const vault = new S3Vault(config, { client });
    // 5 parts and a tail through 2 buffers.
    const data = randomBytes(26 * MiB + 4321);

    const { sizeBytes } = await vault.put('big/object', Readable.from(pieces(data)));

    expect(sizeBytes).toBe(data.length);
    expect(seen.partLengths).toEqual([...Array(5).fill(5 * MiB), MiB + 4321]);
    expect(seen.maxInFlight).toBe(1);
    expect(sha256(await buffer(await vault.get('big/object')))).toBe(sha256(data));
  });
});
