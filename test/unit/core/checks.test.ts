import { describe, expect, it } from 'vitest';
import {
  checkAge,
  checkObjects,
  checkSize,
  exitCodeOf,
  type Finding,
  medianOf,
  type Severity,
  sourceBytesOf,
} from '#core/checks';
import { objectKey } from '#core/layout';
import type { Manifest } from '#core/manifest';
import type { StoredObject } from '#core/ports';
import { completeManifest, jobWith } from './fixtures';

const HOUR_MS = 3_600_000;

describe('checkAge', () => {
  // Default limits: warning at 25h, critical at 30h.
  const job = jobWith();
  const newest = completeManifest();
  const finished = Date.parse(newest.finishedAt);
  const agedBy = (ms: number) => new Date(finished + ms);

  it.each<[string, number, Severity | undefined]>([
    ['just finished', 0, undefined],
    ['a second short of the warning', 25 * HOUR_MS - 1000, undefined],
    ['exactly at the warning', 25 * HOUR_MS, 'warning'],
    ['a second short of critical', 30 * HOUR_MS - 1000, 'warning'],
    ['exactly at critical', 30 * HOUR_MS, 'critical'],
    ['days old', 96 * HOUR_MS, 'critical'],
  ])('finds a backup that is %s', (_, ageMs, severity) => {
    // Act
    const findings = checkAge(job, newest, agedBy(ageMs));

    // Assess
    expect(findings.map((f) => f.severity)).toEqual(severity ? [severity] : []);
  });

  it('counts age from when the backup finished, not when it started', () => {
    // Prepare: started 25h ago, finished 4 minutes later
    const now = new Date(Date.parse(newest.startedAt) + 25 * HOUR_MS);

    // Act
    const findings = checkAge(job, newest, now);

    // Assess
    expect(findings).toEqual([]);
  });

  it('says how old the backup is and which limit it crossed', () => {
    // Act
    const findings = checkAge(job, newest, agedBy(26 * HOUR_MS + 30 * 60_000));

    // Assess
    expect(findings).toEqual([
      {
        severity: 'warning',
        job: 'app-db',
        check: 'backup-age',
        backupId: newest.backupId,
        message: 'newest backup is 1d 2h old (warning at 1d 1h)',
      },
    ]);
  });

  it('uses the job’s own limits', () => {
    // Prepare
    const strict = jobWith({ limits: { warnAge: '1h', criticalAge: '2h' } });

    // Act
    const findings = checkAge(strict, newest, agedBy(2 * HOUR_MS));

    // Assess
    expect(findings[0]?.message).toBe('newest backup is 2h 0m old (critical at 2h 0m)');
  });

  it('is critical when there is no complete backup at all', () => {
    // Act
    const findings = checkAge(job, undefined, agedBy(0));

    // Assess
    expect(findings).toEqual([
      { severity: 'critical', job: 'app-db', check: 'no-backup', message: 'no complete backup exists' },
    ]);
  });
});

describe('checkObjects', () => {
  const manifest = completeManifest();
  const keyOf = (name: string) => objectKey(manifest.job, manifest.backupId, name);
  const key = keyOf('data.zst.sbx');
  const stored = (sizeBytes: number): Map<string, StoredObject> =>
    new Map([
      [key, { key, sizeBytes, lastModified: new Date(manifest.finishedAt), storageClass: 'STANDARD' }],
    ]);

  it('finds nothing when every object is stored with its recorded size', () => {
    // Act
    const findings = checkObjects(manifest, stored(48_213_904), keyOf);

    // Assess
    expect(findings).toEqual([]);
  });

  it('is critical when an object is missing', () => {
    // Act
    const findings = checkObjects(manifest, new Map(), keyOf);

    // Assess
    expect(findings).toEqual([
      {
        severity: 'critical',
        job: 'app-db',
        backupId: manifest.backupId,
        check: 'object-missing',
        message: `${key} is missing`,
      },
    ]);
  });

  it.each([48_213_903, 48_213_905, 0])(
    'is critical when an object holds %i bytes instead of the recorded size',
    (size) => {
      // Act
      const findings = checkObjects(manifest, stored(size), keyOf);

      // Assess
      expect(findings).toEqual([
        {
          severity: 'critical',
          job: 'app-db',
          backupId: manifest.backupId,
          check: 'object-size',
          message: `${key} holds ${size} bytes, manifest says 48213904`,
        },
      ]);
    },
  );

  it('reports each bad object of a backup', () => {
    // Prepare
    const two = completeManifest({
      objects: [
        { name: 'a.sbx', storedBytes: 10, sha256: 'a'.repeat(64), sourceBytes: 20 },
        { name: 'b.sbx', storedBytes: 10, sha256: 'b'.repeat(64), sourceBytes: 20 },
      ],
    });
    const bKey = keyOf('b.sbx');
    const store = new Map([
      [bKey, { key: bKey, sizeBytes: 9, lastModified: new Date(), storageClass: 'GLACIER' }],
    ]);

    // Act
    const findings = checkObjects(two, store, keyOf);

    // Assess
    expect(findings.map((f) => f.check)).toEqual(['object-missing', 'object-size']);
  });
});

describe('checkSize', () => {
  /** A manifest whose data object had `sourceBytes` before compression. */
  const sized = (id: string, sourceBytes: number): Manifest =>
    completeManifest({
      backupId: id,
      objects: [{ name: 'data.sbx', storedBytes: 1, sha256: 'c'.repeat(64), sourceBytes }],
    });
  const ids = ['20241201T020000Z-000001', '20241202T020000Z-000002', '20241203T020000Z-000003'];
  const recent = [sized(ids[0] as string, 1000), sized(ids[1] as string, 1200), sized(ids[2] as string, 900)];
  const newestId = '20241204T020000Z-000004';
  const job = jobWith(); // shrinkRatio 0.5, no floor

  it.each([
    ['the same size as usual', 1000, []],
    ['exactly half the median', 500, []],
    ['a byte under half the median', 499, ['warning']],
    ['empty', 0, ['warning']],
    ['four times the median', 4000, []],
    ['a byte over four times the median', 4001, ['warning']],
  ])('judges a backup that is %s', (_, bytes, severities) => {
    // Act
    const findings = checkSize(job, sized(newestId, bytes), recent);

    // Assess
    expect(findings.map((f) => f.severity)).toEqual(severities);
  });

  it('says how far under the median the backup is', () => {
    // Act
    const findings = checkSize(job, sized(newestId, 400), recent);

    // Assess
    expect(findings).toEqual([
      {
        severity: 'warning',
        job: 'app-db',
        check: 'backup-size',
        backupId: newestId,
        message:
          'newest backup has 400 B of source data, under 50% of the median 1000 B of the 3 backups before it (source bytes, before compression): was the source empty or cut short?',
      },
    ]);
  });

  it('leaves the newest backup out of the median it is compared with', () => {
    // Prepare: with itself counted, the median of [1000, 1200, 900, 100, 100] would be 900
    const newest = sized(newestId, 100);
    const withNewest = [...recent, newest, newest];

    // Act
    const findings = checkSize(job, newest, withNewest);

    // Assess
    expect(findings[0]?.message).toContain('the median 1000 B of the 3 backups');
  });

  it.each([
    ['no earlier backups', []],
    ['one earlier backup', [sized(ids[0] as string, 1000)]],
  ])('does not compare with a median of %s', (_, earlier) => {
    // Act
    const findings = checkSize(job, sized(newestId, 1), earlier);

    // Assess
    expect(findings).toEqual([]);
  });

  it.each([
    ['under the floor', 1023, ['critical']],
    ['at the floor', 1024, []],
  ])('is critical for a backup %s, however few backups came before', (_, bytes, severities) => {
    // Prepare
    const floored = jobWith({ limits: { minBytes: 1024 } });

    // Act
    const findings = checkSize(floored, sized(newestId, bytes), []);

    // Assess
    expect(findings.map((f) => f.severity)).toEqual(severities);
  });

  it('names the floor it went under', () => {
    // Prepare
    const floored = jobWith({ limits: { minBytes: 1024 } });

    // Act
    const findings = checkSize(floored, sized(newestId, 10), recent);

    // Assess
    expect(findings).toEqual([
      {
        severity: 'critical',
        job: 'app-db',
        check: 'backup-size',
        backupId: newestId,
        message:
          'newest backup has 10 B of source data, below the floor of 1.00 KiB (limits.minBytes; source bytes, before compression)',
      },
    ]);
  });

  it('says how far over the median a backup that grew is, and follows limits.growthRatio', () => {
    // Act: the 7.7× jump of the issue
    const findings = checkSize(job, sized(newestId, 7700), recent);
    const relaxed = checkSize(jobWith({ limits: { growthRatio: 10 } }), sized(newestId, 7700), recent);

    // Assess
    expect(findings).toEqual([
      {
        severity: 'warning',
        job: 'app-db',
        check: 'backup-size',
        backupId: newestId,
        message:
          'newest backup has 7.52 KiB of source data, 7.7× the median 1000 B of the 3 backups before it (source bytes, before compression), more than the 4× limits.growthRatio allows',
      },
    ]);
    expect(relaxed).toEqual([]);
  });

  it('finds nothing without a backup', () => {
    // Act
    const findings = checkSize(job, undefined, recent);

    // Assess
    expect(findings).toEqual([]);
  });
});

describe('sourceBytesOf', () => {
  it('adds up the source bytes of every object', () => {
    // Prepare
    const manifest = completeManifest({
      objects: [
        { name: 'a.sbx', storedBytes: 1, sha256: 'a'.repeat(64), sourceBytes: 300 },
        { name: 'b.sbx', storedBytes: 1, sha256: 'b'.repeat(64), sourceBytes: 45 },
      ],
    });

    // Act
    const bytes = sourceBytesOf(manifest);

    // Assess
    expect(bytes).toBe(345);
  });
});

describe('medianOf', () => {
  it.each([
    [[7], 7],
    [[3, 1, 2], 2],
    [[4, 1, 3, 2], 2.5],
    [[10, 10, 1000], 10],
  ])('of %j is %d', (values, median) => {
    // Act
    const result = medianOf(values);

    // Assess
    expect(result).toBe(median);
  });

  it('does not reorder its input', () => {
    // Prepare
    const values = [3, 1, 2];

    // Act
    medianOf(values);

    // Assess
    expect(values).toEqual([3, 1, 2]);
  });
});

describe('exitCodeOf', () => {
  const finding = (severity: Severity): Finding => ({ severity, job: 'app-db', check: 'x', message: 'x' });

  it.each<[Severity[], number]>([
    [[], 0],
    [['info'], 0],
    [['info', 'warning'], 1],
    [['warning', 'critical', 'info'], 2],
    [['critical'], 2],
  ])('exits for %j with %i', (severities, code) => {
    // Act
    const exit = exitCodeOf(severities.map(finding));

    // Assess
    expect(exit).toBe(code);
  });
});
