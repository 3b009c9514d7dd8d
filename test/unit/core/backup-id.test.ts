import { describe, expect, it } from 'vitest';
import { backupIdTime, isBackupId, newBackupId } from '#core/backup-id';

describe('newBackupId', () => {
  it('spells the start time in UTC, to the second, then the suffix', () => {
    // Prepare
    const startedAt = new Date('2024-12-06T02:00:00.789Z');

    // Act
    const id = newBackupId(startedAt, 'a1b2c3');

    // Assess
    expect(id).toBe('20241206T020000Z-a1b2c3');
  });

  it('makes ids that sort by start time', () => {
    // Prepare
    const times = [
      '2025-01-01T00:00:00Z',
      '2024-12-31T23:59:59Z',
      '2024-02-29T12:00:00Z',
      '2024-12-31T23:59:58Z',
    ];

    // Act
    const ids = times.map((t) => newBackupId(new Date(t), 'ffffff'));

    // Assess
    expect([...ids].sort()).toEqual([...times].sort().map((t) => newBackupId(new Date(t), 'ffffff')));
  });

  it.each(['', 'a1b2c', 'a1b2c3d', 'A1B2C3', 'g1b2c3', '-1b2c3'])('rejects the suffix %j', (suffix) => {
    // Act
    const act = () => newBackupId(new Date('2024-12-06T02:00:00Z'), suffix);

    // Assess
    expect(act).toThrow(RangeError);
  });
});

describe('isBackupId', () => {
  it.each(['20241206T020000Z-3f9a1c', '20240229T235959Z-000000', '19991231T000000Z-ffffff'])(
    'accepts %s',
    (id) => {
      // Act
      const ok = isBackupId(id);

      // Assess
      expect(ok).toBe(true);
    },
  );

  it.each([
    ['an empty string', ''],
    ['no suffix', '20241206T020000Z'],
    ['a short suffix', '20241206T020000Z-3f9a1'],
    ['an upper-case suffix', '20241206T020000Z-3F9A1C'],
    ['no Z', '20241206T020000-3f9a1c'],
    ['separators', '2024-12-06T02:00:00Z-3f9a1c'],
    ['milliseconds', '20241206T020000.000Z-3f9a1c'],
    ['a prefix', 'x20241206T020000Z-3f9a1c'],
    ['a trailing slash', '20241206T020000Z-3f9a1c/'],
    ['month 13', '20241306T020000Z-3f9a1c'],
    ['30 February', '20240230T020000Z-3f9a1c'],
    ['29 February of a common year', '20230229T020000Z-3f9a1c'],
    ['hour 24', '20241206T240000Z-3f9a1c'],
    ['second 60', '20241206T235960Z-3f9a1c'],
    ['a two-digit year', '00501206T020000Z-3f9a1c'],
  ])('rejects %s', (_, id) => {
    // Act
    const ok = isBackupId(id);

    // Assess
    expect(ok).toBe(false);
  });
});

describe('backupIdTime', () => {
  it('reads back the start time of an id', () => {
    // Prepare
    const startedAt = new Date('2024-02-29T23:59:59Z');

    // Act
    const time = backupIdTime(newBackupId(startedAt, '00ff00'));

    // Assess
    expect(time).toEqual(startedAt);
  });

  it.each(['latest', '20241340T020000Z-3f9a1c'])('names what it expected when given %j', (id) => {
    // Act
    const act = () => backupIdTime(id);

    // Assess
    expect(act).toThrow(new RangeError(`'${id}' is not a backup id (expected e.g. 20241206T020000Z-3f9a1c)`));
  });
});
