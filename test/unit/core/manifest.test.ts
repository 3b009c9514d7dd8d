import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '#core/errors';
import {
  encryptionContext,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  type Manifest,
  parseManifest,
  serializeManifest,
  sourceObjectName,
  storedObjectName,
} from '#core/manifest';
import { completeManifest } from './fixtures';

const KEY = 'backups/app-db/20241206T020000Z-3f9a1c/manifest.json';

const REMOVE = Symbol('remove');

/** A complete manifest as stored, with the field at `path` replaced by `value` (or removed). */
function storedWith(path: readonly (string | number)[], value: unknown): string {
  const data = JSON.parse(serializeManifest(completeManifest())) as Record<string | number, unknown>;
  const parent = path
    .slice(0, -1)
    .reduce<Record<string | number, unknown>>(
      (node, part) => node[part] as Record<string | number, unknown>,
      data,
    );
  const last = path.at(-1) as string | number;
  if (value === REMOVE) delete parent[last];
  else parent[last] = value;
  return JSON.stringify(data);
}

/** What parseManifest throws for `text`. */
function parseError(text: string): IntegrityError {
  try {
    parseManifest(text, KEY);
  } catch (error) {
    if (error instanceof IntegrityError) return error;
    throw error;
  }
  throw new Error('expected the manifest to be rejected');
}

describe('serializeManifest and parseManifest', () => {
  it('round-trips a complete logical PostgreSQL manifest', () => {
    // Prepare
    const manifest = completeManifest();

    // Act
    const parsed = parseManifest(serializeManifest(manifest), KEY);

    // Assess
    expect(parsed).toEqual(manifest);
  });

  it('round-trips a files manifest with a local key', () => {
    // Prepare
    const manifest = completeManifest({
      kind: 'files',
      tier: 'yearly',
      compression: { algorithm: 'none' },
      encryption: {
        ...completeManifest().encryption,
        key: { type: 'local', fingerprint: '0123456789abcdef' },
      },
      source: {
        kind: 'files',
        paths: ['/srv/media'],
        excluded: ['*.tmp'],
        fileCount: 1204,
        fileBytes: 9_823_100,
      },
    });

    // Act
    const parsed = parseManifest(serializeManifest(manifest), KEY);

    // Assess
    expect(parsed).toEqual(manifest);
  });

  it('stores indented JSON ending in a newline, fields in a stable order', () => {
    // Prepare
    const manifest = completeManifest();

    // Act
    const text = serializeManifest(manifest);

    // Assess
    expect(text.endsWith('}\n')).toBe(true);
    expect(
      text.startsWith('{\n  "format": "strongbox.manifest",\n  "version": 2,\n  "job": "app-db",\n'),
    ).toBe(true);
    expect(serializeManifest(JSON.parse(text) as Manifest)).toBe(text);
  });

  it('names its format and version', () => {
    // Assess
    expect([MANIFEST_FORMAT, MANIFEST_VERSION]).toEqual(['strongbox.manifest', 2]);
  });

  it('drops fields that version 2 does not define', () => {
    // Prepare
    const text = storedWith(['comment'], 'added by a newer writer');

    // Act
    const parsed = parseManifest(text, KEY);

    // Assess
    expect(parsed).not.toHaveProperty('comment');
    expect(parsed).toEqual(completeManifest());
  });

  it('refuses to store a manifest that is not valid', () => {
    // Prepare
    const manifest = completeManifest({ objects: [] });

    // Act
    const act = () => serializeManifest(manifest);

    // Assess
    expect(act).toThrow();
  });
});

describe('parseManifest rejects what is not a manifest it can read', () => {
  it.each([
    ['text that is not JSON', 'not json {', `${KEY}: manifest is not valid JSON`],
    [
      'a truncated manifest',
      serializeManifest(completeManifest()).slice(0, 200),
      `${KEY}: manifest is not valid JSON`,
    ],
  ])('rejects %s', (_, text, message) => {
    // Act
    const error = parseError(text);

    // Assess
    expect(error.message).toBe(message);
    expect(error.cause).toBeInstanceOf(SyntaxError);
  });

  it.each<[string, (string | number)[], unknown, string]>([
    ['a version that does not exist', ['version'], 0, 'version:'],
    ['another format', ['format'], 'restic.snapshot', 'format:'],
    ['a missing job', ['job'], REMOVE, 'job:'],
    ['a bad backup id', ['backupId'], 'latest', 'backupId: is not a backup id'],
    ['an unknown tier', ['tier'], 'hourly', 'tier:'],
    ['a time with an offset', ['startedAt'], '2024-12-06T03:00:00+01:00', 'startedAt:'],
    ['no objects', ['objects'], [], 'objects:'],
    ['a SHA-256 in capitals', ['objects', 0, 'sha256'], 'A'.repeat(64), 'objects.0.sha256:'],
    [
      'an object named like a path',
      ['objects', 0, 'name'],
      '../data.sbx',
      'objects.0.name: is not an object name',
    ],
    [
      'an object named like the manifest',
      ['objects', 0, 'name'],
      'manifest.json',
      'objects.0.name: is not an object name',
    ],
    ['a negative size', ['objects', 0, 'storedBytes'], -1, 'objects.0.storedBytes:'],
    ['another encryption scheme', ['encryption', 'scheme'], 'aes-cbc', 'encryption.scheme:'],
    [
      'a short local key fingerprint',
      ['encryption', 'key'],
      { type: 'local', fingerprint: 'abc' },
      'encryption.key.fingerprint:',
    ],
    ['a source of another kind', ['source', 'kind'], 'mysql', 'source.kind:'],
  ])('rejects %s with an IntegrityError naming the key and the field', (_, path, value, field) => {
    // Prepare
    const text = storedWith(path, value);

    // Act
    const error = parseError(text);

    // Assess
    expect(error.message.startsWith(`${KEY}: not a strongbox manifest (${field}`)).toBe(true);
  });

  it.each([
    ['null', 'null'],
    ['a list', '[]'],
    ['a number', '42'],
  ])('rejects JSON %s', (_, text) => {
    // Act
    const error = parseError(text);

    // Assess
    expect(error.message.startsWith(`${KEY}: not a strongbox manifest`)).toBe(true);
  });
});

describe('manifest versions', () => {
  it('refuses a version newer than it reads, saying to upgrade', () => {
    const error = parseError(storedWith(['version'], 3));
    expect(error.message).toBe(
      `${KEY}: manifest version 3 is newer than this agent reads (1, 2): upgrade strongbox`,
    );
  });

  it('reads a version 1 manifest, which holds exactly one data object', () => {
    const v1 = storedWith(['version'], 1);
    expect(parseManifest(v1, KEY)).toEqual({ ...completeManifest(), version: 1 });
    const twoObjects = JSON.parse(v1) as Manifest;
    twoObjects.objects.push({
      ...(twoObjects.objects[0] as Manifest['objects'][number]),
      name: 'more.zst.sbx',
    });
    expect(parseError(JSON.stringify(twoObjects)).message).toMatch(
      /objects: a version 1 manifest has exactly one data object/,
    );
  });

  it('holds several named objects in version 2, each name once', () => {
    const manifest = completeManifest();
    const object = manifest.objects[0] as Manifest['objects'][number];
    const several = { ...manifest, objects: [object, { ...object, name: 'pg_wal.tar.zst.sbx' }] };
    expect(parseManifest(serializeManifest(several), KEY).objects.map((o) => o.name)).toEqual([
      'data.zst.sbx',
      'pg_wal.tar.zst.sbx',
    ]);
    const repeated = { ...manifest, objects: [object, object] };
    expect(parseError(JSON.stringify(repeated)).message).toMatch(/objects: object names repeat/);
  });

  it('refuses details of another kind than the manifest says', () => {
    const text = storedWith(['kind'], 'files');
    expect(parseError(text).message).toMatch(/source\.kind: differs from the manifest kind/);
  });
});

describe('object names', () => {
  it.each([
    ['data', 'zstd', 'data.zst.sbx'],
    ['base.tar', 'gzip', 'base.tar.gz.sbx'],
    ['16384.tar', 'none', '16384.tar.sbx'],
  ] as const)(
    'stores %s compressed with %s as %s and reads the source name back',
    (name, algorithm, stored) => {
      expect(storedObjectName(name, algorithm)).toBe(stored);
      expect(sourceObjectName(stored, algorithm)).toBe(name);
    },
  );
});

describe('encryptionContext', () => {
  it('binds a data key to the job and the backup id', () => {
    // Act
    const context = encryptionContext('app-db', '20241206T020000Z-3f9a1c');

    // Assess
    expect(context).toEqual({ 'strongbox:job': 'app-db', 'strongbox:backup': '20241206T020000Z-3f9a1c' });
  });
});

describe('the complete example in docs/format.md', () => {
  it('is a valid manifest that the serializer writes byte for byte', () => {
    // Prepare
    const spec = readFileSync(new URL('../../../docs/format.md', import.meta.url), 'utf8');
    const block = /<!-- manifest-example[^>]*-->\n```json\n([\s\S]*?)```/.exec(spec)?.[1];

    // Act
    const manifest = parseManifest(block ?? '', 'docs/format.md');

    // Assess
    expect(serializeManifest(manifest)).toBe(block);
  });
});
