/**
 * The S3 vault writes create-only: `If-None-Match: *` on every PutObject and CompleteMultipartUpload it
 * sends (read off the wire, as s3rver got it), and a second write of the same key fails loudly against a
 * server that enforces conditional writes as S3 does.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Vault } from '#adapters/vaults/s3';
import { VaultError } from '#core/errors';
import { type S3rverInstance, s3rverClient, s3rverVaultConfig, startS3rver } from '#test/support/s3rver';

const MiB = 1024 * 1024;

interface Sent {
  command: string;
  headers: Record<string, string>;
}

let s3: S3rverInstance;
let prefixNumber = 0;

beforeAll(async () => {
  s3 = await startS3rver('create-only', { conditionalWrites: true });
});
afterAll(() => s3?.stop());

function open(): { vault: S3Vault; sent: Sent[] } {
  prefixNumber += 1;
  const config = s3rverVaultConfig(s3, `p${prefixNumber}`);
  const sent: Sent[] = [];
  const client: S3Client = s3rverClient(config);
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      sent.push({ command: context.commandName ?? '?', headers: { ...request.headers } });
      return next(args);
    },
    { step: 'finalizeRequest', name: 'recordRequests', priority: 'low' },
  );
  return { vault: new S3Vault(config, { client }), sent };
}

const headerOf = (request: Sent, name: string) =>
  Object.entries(request.headers).find(([key]) => key.toLowerCase() === name)?.[1];

describe('S3Vault create-only writes', () => {
  it('sends If-None-Match: * on a single PutObject', async () => {
    const { vault, sent } = open();
    await vault.put('backups/db/1/manifest.json', Readable.from([Buffer.from('{}')]), {
      tags: { 'strongbox:tier': 'daily' },
    });
    const puts = sent.filter((r) => r.command === 'PutObjectCommand');
    expect(puts).toHaveLength(1);
    expect(headerOf(puts[0] as Sent, 'if-none-match')).toBe('*');
    // Tags go with the upload, never as a later PutObjectTagging (which the host policy denies).
    expect(sent.map((r) => r.command)).not.toContain('PutObjectTaggingCommand');
  });

  it('sends If-None-Match: * on CompleteMultipartUpload, and none on the parts', async () => {
    const { vault, sent } = open();
    await vault.put('backups/db/2/data.sbx', Readable.from([randomBytes(11 * MiB)]));
    const commands = sent.map((r) => r.command);
    expect(commands).toContain('UploadPartCommand');
    const complete = sent.filter((r) => r.command === 'CompleteMultipartUploadCommand');
    expect(complete).toHaveLength(1);
    expect(headerOf(complete[0] as Sent, 'if-none-match')).toBe('*');
    for (const part of sent.filter((r) => r.command === 'UploadPartCommand')) {
      expect(headerOf(part, 'if-none-match')).toBeUndefined();
    }
  });

  it.each([
    ['small', 1000],
    ['multipart', 11 * MiB],
  ])('refuses a second %s write of the same key loudly and keeps the first', async (_name, size) => {
    const { vault } = open();
    const first = randomBytes(size);
    await vault.put('backups/db/3/data.sbx', Readable.from([first]));
    const second = vault.put('backups/db/3/data.sbx', Readable.from([randomBytes(size)]));
    await expect(second).rejects.toBeInstanceOf(VaultError);
    await expect(second).rejects.toThrow(/already exists.*writes every object once/);
    const parts: Buffer[] = [];
    for await (const part of await vault.get('backups/db/3/data.sbx')) parts.push(part as Buffer);
    expect(Buffer.concat(parts).equals(first)).toBe(true);
  });
});
