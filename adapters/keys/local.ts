/**
 * A local master key: 32 random bytes in a file (base64 text, mode 0600), for sites without KMS.
 *
 * Each backup's data key is wrapped with AES-256-GCM under the master key; the encryption context
 * (job and backup id) as canonical JSON is the associated data, so a wrapped key only unwraps for the
 * backup it was made for. Wrapped form: base64 of 12-byte nonce ‖ ciphertext (32 bytes) ‖ 16-byte tag.
 * The key reference names the master key by its fingerprint, the first 16 hex digits of its SHA-256.
 * Losing the file loses every backup made with it: keep a copy off the host.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KeyError } from '#core/errors';
import type { KeyRef } from '#core/manifest';
import type { DataKey, KeyProvider } from '#core/ports';
import { DATA_KEY_BYTES } from '#core/stream-format';

const MASTER_KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** Fingerprint of a master key: the first 16 hex digits of its SHA-256. */
export function keyFingerprint(masterKey: Buffer): string {
  return createHash('sha256').update(masterKey).digest('hex').slice(0, 16);
}

/**
 * The encryption context as canonical JSON: keys sorted, no whitespace.
 * @example canonicalContext({ b: '2', a: '1' }) // '{"a":"1","b":"2"}'
 */
export function canonicalContext(context: Record<string, string>): string {
  const sorted = Object.keys(context)
    .sort()
    .map((key) => [key, context[key]] as const);
  return JSON.stringify(Object.fromEntries(sorted));
}

/**
 * Writes a new master key file (mode 0600), creating missing parent directories (mode 0700).
 * @throws KeyError when the file already exists: a key is never overwritten.
 * @example const { fingerprint } = await generateMasterKeyFile('/etc/strongbox/master.key')
 */
export async function generateMasterKeyFile(path: string): Promise<{ fingerprint: string }> {
  const key = randomBytes(MASTER_KEY_BYTES);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'wx', 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      throw new KeyError(
        `refusing to overwrite the existing key file ${path}: backups made with it need it`,
        {
          cause: error,
        },
      );
    }
    throw new KeyError(`cannot create key file ${path}: ${code ?? String(error)}`, { cause: error });
  }
  try {
    await handle.writeFile(`${key.toString('base64')}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { fingerprint: keyFingerprint(key) };
}

/**
 * Reads a master key file.
 * @throws KeyError when it is missing, readable or writable by group or others, or not 32 bytes of base64.
 */
export async function readMasterKeyFile(path: string): Promise<Buffer> {
  let mode: number;
  let text: string;
  try {
    mode = (await stat(path)).mode & 0o777;
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'does not exist (create one with `strongbox keygen`)' : code;
    throw new KeyError(`cannot read key file ${path}: ${reason ?? String(error)}`, { cause: error });
  }
  if ((mode & 0o077) !== 0) {
    throw new KeyError(
      `key file ${path} is accessible by group or others (mode ${mode.toString(8).padStart(4, '0')}): run chmod 600 ${path}`,
    );
  }
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (key.length !== MASTER_KEY_BYTES || key.toString('base64') !== trimmed) {
    throw new KeyError(`key file ${path} does not hold a key: expected ${MASTER_KEY_BYTES} bytes as base64`);
  }
  return key;
}

/** Wraps and unwraps data keys with a local master key file. */
export class LocalKeyProvider implements KeyProvider {
  readonly path: string;
  #key: Promise<{ key: Buffer; fingerprint: string }> | undefined;

  /** @param path the key file; read (and its mode checked) on first use. */
  constructor(path: string) {
    this.path = path;
  }

  /** Fingerprint of the master key. @throws KeyError when the key file is unusable. */
  async fingerprint(): Promise<string> {
    return (await this.#load()).fingerprint;
  }

  async generateDataKey(context: Record<string, string>): Promise<DataKey> {
    const plaintext = randomBytes(DATA_KEY_BYTES);
    return { plaintext, ...(await this.wrapDataKey(plaintext, context)) };
  }

  async wrapDataKey(plaintext: Buffer, context: Record<string, string>): Promise<Omit<DataKey, 'plaintext'>> {
    const { key, fingerprint } = await this.#load();
    if (plaintext.length !== DATA_KEY_BYTES) throw new KeyError(`a data key is ${DATA_KEY_BYTES} bytes`);
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(Buffer.from(canonicalContext(context)));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const wrapped = Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
    return { wrapped, key: { type: 'local', fingerprint } };
  }

  async decryptDataKey(wrapped: string, ref: KeyRef, context: Record<string, string>): Promise<Buffer> {
    const { key, fingerprint } = await this.#load();
    if (ref.type !== 'local') {
      throw new KeyError(
        `the data key was wrapped by KMS key ${ref.keyId}, but the plan names the local key ${this.path}`,
      );
    }
    if (ref.fingerprint !== fingerprint) {
      throw new KeyError(
        `the data key was wrapped by master key ${ref.fingerprint}, but ${this.path} holds key ${fingerprint}: use the key file the backup was made with`,
      );
    }
    const bytes = Buffer.from(wrapped, 'base64');
    if (bytes.length !== NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES) {
      throw new KeyError(`the wrapped data key is malformed (${bytes.length} bytes)`);
    }
    const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, NONCE_BYTES));
    decipher.setAAD(Buffer.from(canonicalContext(context)));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    try {
      return Buffer.concat([
        decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)),
        decipher.final(),
      ]);
    } catch (error) {
      throw new KeyError(
        `the wrapped data key does not authenticate under master key ${fingerprint} with context ${canonicalContext(context)}: the context (job, backup id) differs from the one it was made for, or the wrapped key is corrupt`,
        { cause: error },
      );
    }
  }

  #load(): Promise<{ key: Buffer; fingerprint: string }> {
    this.#key ??= readMasterKeyFile(this.path).then((key) => ({ key, fingerprint: keyFingerprint(key) }));
    // A failed read is not cached: the operator may fix the file and retry in the same process.
    this.#key.catch(() => {
      this.#key = undefined;
    });
    return this.#key;
  }
}
