/**
 * Backup ids sort by the time the backup started: `20241206T020000Z-3f9a1c`. The suffix keeps two
 * backups of the same second apart.
 */
const BACKUP_ID = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-([0-9a-f]{6})$/;

/**
 * Makes a backup id from a start time and six hex digits of entropy.
 * @example newBackupId(new Date('2024-12-06T02:00:00Z'), 'a1b2c3') // '20241206T020000Z-a1b2c3'
 */
export function newBackupId(startedAt: Date, suffix: string): string {
  if (!/^[0-9a-f]{6}$/.test(suffix))
    throw new RangeError(`backup id suffix must be 6 hex digits, got '${suffix}'`);
  const stamp = startedAt
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  return `${stamp}-${suffix}`;
}

/** Whether a string is a backup id: the pattern, and a time that exists (no month 13, no 30 February). */
export function isBackupId(value: string): boolean {
  return startOf(value) !== undefined;
}

/** The start time a backup id carries. @throws RangeError for a string that is not a backup id. */
export function backupIdTime(id: string): Date {
  const start = startOf(id);
  if (!start) throw new RangeError(`'${id}' is not a backup id (expected e.g. 20241206T020000Z-3f9a1c)`);
  return start;
}

/** The time of an id, or undefined when it does not match or names a time that does not exist. */
function startOf(id: string): Date | undefined {
  const m = BACKUP_ID.exec(id);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const start = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  // Date.UTC rolls 2024-02-30 over to 1 March and maps years 0-99 to 1900-1999: such ids are not ids.
  return newBackupId(start, m[7] as string) === id ? start : undefined;
}
