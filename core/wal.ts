/**
 * PostgreSQL's WAL vocabulary, purely: log sequence numbers (`0/2000028`), segment file names
 * (`000000010000000000000002`: timeline, log, segment in hex) and which segment holds an LSN.
 */

/** Names of WAL segment files. */
export const WAL_SEGMENT_NAME = /^[0-9A-F]{24}$/;
/** Names of timeline history files (`00000002.history`). */
export const WAL_HISTORY_NAME = /^[0-9A-F]{8}\.history$/;
/** Any file `archive_command` may be asked to archive: a segment, a history file, a backup history file or a partial segment. */
export const WAL_FILE_NAME = /^[0-9A-F]{8}(?:[0-9A-F]{16}(?:\.[0-9A-F]{8}\.backup|\.partial)?|\.history)$/;

/**
 * An LSN as a number (exact up to 2^53, i.e. 8 PiB of WAL).
 * @example parseLsn('0/2000028') // 33554472
 * @throws RangeError for text that is not an LSN.
 */
export function parseLsn(text: string): number {
  const match = /^([0-9A-F]{1,8})\/([0-9A-F]{1,8})$/i.exec(text.trim());
  if (!match) throw new RangeError(`'${text}' is not a WAL location (like 0/2000028)`);
  return Number.parseInt(match[1] as string, 16) * 0x1_0000_0000 + Number.parseInt(match[2] as string, 16);
}

/** The LSN text of a number: `formatLsn(33554472)` is `0/2000028`. */
export function formatLsn(lsn: number): string {
  const high = Math.floor(lsn / 0x1_0000_0000);
  const low = lsn % 0x1_0000_0000;
  return `${high.toString(16).toUpperCase()}/${low.toString(16).toUpperCase()}`;
}

/**
 * The name of the segment file that holds the byte at `lsn` on `timeline`.
 * @example segmentOf(1, parseLsn('0/2000028'), 16 * 1024 * 1024) // '000000010000000000000002'
 */
export function segmentOf(timeline: number, lsn: number, segmentBytes: number): string {
  const segmentsPerLog = 0x1_0000_0000 / segmentBytes;
  const number = Math.floor(lsn / segmentBytes);
  return segmentName(timeline, number, segmentsPerLog);
}

/** The segment name of a timeline and a segment number (counted from LSN 0). */
export function segmentName(timeline: number, number: number, segmentsPerLog: number): string {
  return [timeline, Math.floor(number / segmentsPerLog), number % segmentsPerLog]
    .map((v) => v.toString(16).toUpperCase().padStart(8, '0'))
    .join('');
}

/**
 * Timeline and segment number of a segment file name.
 * @example parseSegment('000000010000000000000002', 16 * 1024 * 1024) // { timeline: 1, number: 2 }
 */
export function parseSegment(name: string, segmentBytes: number): { timeline: number; number: number } {
  if (!WAL_SEGMENT_NAME.test(name)) throw new RangeError(`'${name}' is not a WAL segment name`);
  const segmentsPerLog = 0x1_0000_0000 / segmentBytes;
  const timeline = Number.parseInt(name.slice(0, 8), 16);
  const log = Number.parseInt(name.slice(8, 16), 16);
  const segment = Number.parseInt(name.slice(16, 24), 16);
  return { timeline, number: log * segmentsPerLog + segment };
}

/** The timeline a WAL file name belongs to (its first 8 hex digits). */
export function timelineOfWalFile(name: string): number {
  return Number.parseInt(name.slice(0, 8), 16);
}
