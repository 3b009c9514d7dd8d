import { describe, expect, it } from 'vitest';
import {
  backupPrefix,
  drillClaimKey,
  jobPrefix,
  MANIFEST_NAME,
  manifestKey,
  OBJECT_TAGS,
  objectKey,
  parseBackupKey,
  parseRunClaimKey,
  parseWalKey,
  restoreRequestKey,
  restoreRequestPrefix,
  restoreStartedKey,
  runClaimKey,
  runClaimPrefix,
  walKey,
  walPrefix,
} from '#core/layout';

const ID = '20241206T020000Z-3f9a1c';

describe('backup keys', () => {
  it('puts every backup of a job below backups/<job>/', () => {
    // Act
    const prefixes = [jobPrefix('app-db'), backupPrefix('app-db', ID)];

    // Assess
    expect(prefixes).toEqual(['backups/app-db/', `backups/app-db/${ID}/`]);
  });

  it('puts the manifest beside the data objects, named manifest.json', () => {
    // Act
    const key = manifestKey('app-db', ID);

    // Assess
    expect(key).toBe(`backups/app-db/${ID}/manifest.json`);
    expect(MANIFEST_NAME).toBe('manifest.json');
  });

  it.each(['data.sbx', 'data.zst.sbx', 'data.gz.sbx', 'part_0001.sbx', 'Tables-2.sbx', 'x'])(
    'names the data object %s below the backup prefix',
    (name) => {
      // Act
      const key = objectKey('app-db', ID, name);

      // Assess
      expect(key).toBe(`backups/app-db/${ID}/${name}`);
    },
  );

  it.each([
    ['the manifest name', 'manifest.json'],
    ['an empty name', ''],
    ['a path', 'sub/data.sbx'],
    ['the parent directory', '..'],
    ['the directory itself', '.'],
    ['a hidden file', '.data.sbx'],
    ['a space', 'data 1.sbx'],
    ['a backslash', 'data\\1.sbx'],
    ['a non-ASCII letter', 'dätä.sbx'],
  ])('refuses %s as an object name', (_, name) => {
    // Act
    const act = () => objectKey('app-db', ID, name);

    // Assess
    expect(act).toThrow(RangeError);
  });
});

describe('parseBackupKey', () => {
  it.each([
    [`backups/app-db/${ID}/data.zst.sbx`, { job: 'app-db', backupId: ID, name: 'data.zst.sbx' }],
    [`backups/app-db/${ID}/manifest.json`, { job: 'app-db', backupId: ID, name: 'manifest.json' }],
  ])('reads %s', (key, expected) => {
    // Act
    const parsed = parseBackupKey(key);

    // Assess
    expect(parsed).toEqual(expected);
  });

  it('reads back every key objectKey and manifestKey make', () => {
    // Prepare
    const keys = [objectKey('media', ID, 'data.sbx'), manifestKey('media', ID)];

    // Act
    const parsed = keys.map(parseBackupKey);

    // Assess
    expect(parsed).toEqual([
      { job: 'media', backupId: ID, name: 'data.sbx' },
      { job: 'media', backupId: ID, name: 'manifest.json' },
    ]);
  });

  it.each([
    ['a WAL key', 'wal/app-db/00000001/000000010000000000000001'],
    ['a job prefix', 'backups/app-db/'],
    ['a backup prefix', `backups/app-db/${ID}/`],
    ['an object nested deeper', `backups/app-db/${ID}/sub/data.sbx`],
    ['a backup id that is not one', 'backups/app-db/latest/data.sbx'],
    ['a backup id with an impossible date', 'backups/app-db/20241341T020000Z-3f9a1c/data.sbx'],
    ['an empty job', `backups//${ID}/data.sbx`],
    ['another top folder', `runs/app-db/${ID}/data.sbx`],
    ['a leading slash', `/backups/app-db/${ID}/data.sbx`],
    ['an empty key', ''],
  ])('does not read %s as part of a backup', (_, key) => {
    // Act
    const parsed = parseBackupKey(key);

    // Assess
    expect(parsed).toBeUndefined();
  });
});

describe('WAL keys', () => {
  it('keeps WAL by job and timeline', () => {
    // Act
    const key = walKey('app-db', '00000002', '000000020000000A000000FF');

    // Assess
    expect(key).toBe('wal/app-db/00000002/000000020000000A000000FF');
    expect(key.startsWith(walPrefix('app-db'))).toBe(true);
  });

  it('reads back a WAL key', () => {
    // Prepare
    const key = walKey('app-db', '00000002', '00000002.history');

    // Act
    const parsed = parseWalKey(key);

    // Assess
    expect(parsed).toEqual({ job: 'app-db', timeline: '00000002', segment: '00000002.history' });
  });

  it.each([
    ['a backup key', `backups/app-db/${ID}/data.sbx`],
    ['a timeline prefix', 'wal/app-db/00000001/'],
    ['a key nested deeper', 'wal/app-db/00000001/x/y'],
    ['an empty job', 'wal//00000001/000000010000000000000001'],
  ])('does not read %s as WAL', (_, key) => {
    // Act
    const parsed = parseWalKey(key);

    // Assess
    expect(parsed).toBeUndefined();
  });
});

describe('claims and pending restores', () => {
  it('names a run claim by job and backup id, and reads it back', () => {
    // Act
    const key = runClaimKey('app-db', ID);

    // Assess
    expect(key).toBe(`runs/app-db/${ID}.json`);
    expect(key.startsWith(runClaimPrefix('app-db'))).toBe(true);
    expect(parseRunClaimKey(key)).toEqual({ job: 'app-db', backupId: ID });
  });

  it.each([
    'runs/app-db/latest.json',
    `runs/app-db/${ID}.txt`,
    `runs/app-db/x/${ID}.json`,
    `backups/app-db/${ID}.json`,
  ])('does not read %s as a run claim', (key) => {
    // Act
    const parsed = parseRunClaimKey(key);

    // Assess
    expect(parsed).toBeUndefined();
  });

  it.each([
    ['a run claim', () => runClaimKey('app-db', 'latest')],
    ['a drill claim', () => drillClaimKey('app-db', '2024-12-06')],
  ])('refuses %s for an id that is not a backup id', (_, act) => {
    // Assess
    expect(act).toThrow(RangeError);
  });

  it('names a drill claim by job and drill id', () => {
    // Act
    const key = drillClaimKey('app-db', ID);

    // Assess
    expect(key).toBe(`drills/app-db/${ID}.json`);
  });

  it('keeps a pending restore request and its started marker below the backup’s restore prefix', () => {
    // Act
    const keys = [restoreRequestKey('app-db', ID, 'req-42'), restoreStartedKey('app-db', ID, 'req-42')];

    // Assess
    expect(keys).toEqual([`restores/app-db/${ID}/req-42.json`, `restores/app-db/${ID}/req-42.started`]);
    expect(keys.every((k) => k.startsWith(restoreRequestPrefix('app-db', ID)))).toBe(true);
  });

  it.each(['', 'a/b', 'req.1', 'x'.repeat(65)])('refuses the restore request id %j', (requestId) => {
    // Act
    const act = () => restoreRequestKey('app-db', ID, requestId);

    // Assess
    expect(act).toThrow(RangeError);
  });
});

describe('OBJECT_TAGS', () => {
  it('names the tags lifecycle rules and policies filter on', () => {
    // Assess
    expect(OBJECT_TAGS).toEqual({ tier: 'strongbox:tier', job: 'strongbox:job' });
  });
});
