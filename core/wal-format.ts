/**
 * The `strongbox-wal-v1` object format (docs/format.md "WAL archive"): one archived WAL file per object
 * under `wal/<job>/<timeline>/<name>`, each with its own data key.
 *
 * ```
 * 8 bytes   magic "SBXWAL1\n"
 * 4 bytes   N, the length of the header, big-endian
 * N bytes   header: UTF-8 JSON { format, name, compression, key, wrappedKey, context }
 * rest      the file compressed with `compression`, then sealed as strongbox-stream-v1 with the data key
 * ```
 *
 * The header is not encrypted; it is authenticated through the data key: the key is unwrapped with the
 * context a reader computes itself from the job, the name it asked for and the header's compression
 * ({@link walEncryptionContext}), so a header moved from another file, another job or with another
 * compression does not unwrap, and every chunk of the body is authenticated by AES-GCM.
 */
import { z } from 'zod';
import { IntegrityError } from './errors';
import { COMPRESSIONS, keyRefSchema } from './manifest';

export const WAL_FORMAT = 'strongbox-wal-v1';
export const WAL_MAGIC = Buffer.from('SBXWAL1\n', 'latin1');
/** Largest header a reader accepts. */
export const WAL_HEADER_MAX_BYTES = 64 * 1024;

const headerSchema = z.strictObject({
  format: z.literal(WAL_FORMAT),
  name: z.string(),
  compression: z.enum(COMPRESSIONS),
  key: keyRefSchema,
  wrappedKey: z.string(),
  context: z.record(z.string(), z.string()),
});

/** The header of an archived WAL file. */
export type WalHeader = z.output<typeof headerSchema>;

/** The encryption context of one archived WAL file's data key. */
export function walEncryptionContext(job: string, name: string, compression: string): Record<string, string> {
  return { 'strongbox:job': job, 'strongbox:wal': name, 'strongbox:compression': compression };
}

/** The bytes before the body: magic, length, header. */
export function encodeWalHeader(header: WalHeader): Buffer {
  const json = Buffer.from(JSON.stringify(headerSchema.parse(header)), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  return Buffer.concat([WAL_MAGIC, length, json]);
}

/**
 * How many bytes the prefix takes, once `head` holds at least its first 12 bytes; undefined before.
 * @throws IntegrityError when the magic is wrong or the length is out of bounds.
 */
export function walHeaderLength(head: Buffer, what: string): number | undefined {
  if (head.length < WAL_MAGIC.length + 4) return undefined;
  if (!head.subarray(0, WAL_MAGIC.length).equals(WAL_MAGIC))
    throw new IntegrityError(`${what} is not a strongbox-wal-v1 object (bad magic)`);
  const n = head.readUInt32BE(WAL_MAGIC.length);
  if (n === 0 || n > WAL_HEADER_MAX_BYTES) throw new IntegrityError(`${what} has a header of ${n} bytes`);
  return WAL_MAGIC.length + 4 + n;
}

/**
 * The header of `prefix` (magic, length, JSON), checked to describe `name` of `job`.
 * @throws IntegrityError when it does not parse or names another file or job.
 */
export function decodeWalHeader(prefix: Buffer, job: string, name: string, what: string): WalHeader {
  let data: unknown;
  try {
    data = JSON.parse(prefix.subarray(WAL_MAGIC.length + 4).toString('utf8'));
  } catch {
    throw new IntegrityError(`${what} has a header that is not JSON`);
  }
  const parsed = headerSchema.safeParse(data);
  if (!parsed.success) throw new IntegrityError(`${what} has an invalid header`);
  const expected = walEncryptionContext(job, name, parsed.data.compression);
  if (parsed.data.name !== name || JSON.stringify(parsed.data.context) !== JSON.stringify(expected))
    throw new IntegrityError(`${what} holds ${parsed.data.name} of another job or name, not ${name}`);
  return parsed.data;
}
