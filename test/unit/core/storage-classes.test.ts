import { describe, expect, it } from 'vitest';
import { STORAGE_LADDER } from '#core/retention';
import {
  ARCHIVE_CLASSES,
  coldnessOf,
  needsRetrieval,
  RETRIEVAL_HOURS,
  STORAGE_CLASSES,
  storageClassFacts,
  UPLOAD_CLASSES,
} from '#core/storage-classes';

describe('storage classes', () => {
  it('names the archive classes and their retrieval hours as the restore function reads them', () => {
    expect(ARCHIVE_CLASSES).toEqual(['GLACIER', 'DEEP_ARCHIVE']);
    expect(RETRIEVAL_HOURS).toEqual({
      GLACIER: { Expedited: 5 / 60, Standard: 5, Bulk: 12 },
      DEEP_ARCHIVE: { Standard: 12, Bulk: 48 },
    });
  });

  it.each([
    ['STANDARD', 0],
    ['INTELLIGENT_TIERING', 0],
    ['STANDARD_IA', 30],
    ['ONEZONE_IA', 30],
    ['GLACIER_IR', 90],
    ['GLACIER', 90],
    ['DEEP_ARCHIVE', 180],
  ])('charges %s for at least %i days, as S3 does', (name, days) => {
    expect(storageClassFacts(name)?.minimumDays).toBe(days);
  });

  it.each([
    ['STANDARD', 'STANDARD_IA'],
    ['INTELLIGENT_TIERING', 'ONEZONE_IA'],
    ['GLACIER_IR', 'GLACIER'],
    ['GLACIER', 'DEEP_ARCHIVE'],
  ])('ranks %s warmer than %s', (warmer, colder) => {
    expect(coldnessOf(warmer)).toBeLessThan(coldnessOf(colder));
  });

  it('counts a class it does not know as warm and needing no retrieval', () => {
    for (const name of ['REDUCED_REDUNDANCY', 'EXPRESS_ONEZONE', 'toString', '']) {
      expect(storageClassFacts(name)).toBeUndefined();
      expect(coldnessOf(name)).toBe(0);
      expect(needsRetrieval(name)).toBe(false);
    }
  });

  it('needs a retrieval exactly for the classes with retrieval hours', () => {
    for (const [name, facts] of Object.entries(STORAGE_CLASSES)) {
      expect(needsRetrieval(name), name).toBe('retrievalHours' in facts);
    }
    expect(needsRetrieval('GLACIER_IR')).toBe(false);
  });

  it('uploads only into classes that are read at once', () => {
    expect(UPLOAD_CLASSES.filter(needsRetrieval)).toEqual([]);
  });

  it('gives the lifecycle ladder the minimum charges of its classes, each rung colder than the last', () => {
    for (const step of STORAGE_LADDER) {
      expect(step.minimumDays, step.storageClass).toBe(STORAGE_CLASSES[step.storageClass].minimumDays);
    }
    const ranks = STORAGE_LADDER.map((step) => coldnessOf(step.storageClass));
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    expect(new Set(ranks).size).toBe(ranks.length);
  });
});
