/**
 * Where a started point-in-time copy's recovery ended, from what PostgreSQL itself wrote: the newest
 * timeline history file in its pg_wal (its last line is the switch point, `<parent tli>\t<LSN>\t<reason>`)
 * and the server log's `last completed transaction was at log time …` line (the commit time of the last
 * transaction replayed). Nothing is asked of the running copy, so no credentials are needed.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RecoveryPoint } from '#core/ports';
import { WAL_HISTORY_NAME } from '#core/wal';
import { RESTORE_LOG } from './restore';

/**
 * The recovery point of the copy in `dir` (empty fields for what PostgreSQL did not write).
 * @example await recoveryPointOf('/tmp/strongbox-pgdata-drill-…') // { lsn: '0/3000148', time: '2026-12-02T01:47:28.123456Z', timeline: 2 }
 */
export async function recoveryPointOf(dir: string): Promise<RecoveryPoint> {
  const point: RecoveryPoint = {};
  const history = (await readdir(join(dir, 'pg_wal')).catch(() => [] as string[]))
    .filter((name) => WAL_HISTORY_NAME.test(name))
    .sort()
    .at(-1);
  if (history) {
    point.timeline = Number.parseInt(history.slice(0, 8), 16);
    const lines = (await readFile(join(dir, 'pg_wal', history), 'utf8')).trim().split('\n');
    const last = /^\d+\s+([0-9A-F]+\/[0-9A-F]+)/i.exec(lines.at(-1) ?? '');
    if (last) point.lsn = last[1];
  }
  const log = await readFile(join(dir, RESTORE_LOG), 'utf8').catch(() => '');
  const times = [...log.matchAll(/last completed transaction was at log time (\S+ \S+?)(?:\s|$)/g)];
  const time = times.at(-1)?.[1];
  if (time) point.time = isoOf(time);
  return point;
}

/** `2026-12-02 01:47:28.123456+00` (PostgreSQL's timestamptz text) as ISO 8601. */
function isoOf(text: string): string {
  const match = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)([+-]\d{2})(?::?(\d{2}))?$/.exec(text);
  if (!match) return text;
  const offset = match[3] === '+00' && !match[4] ? 'Z' : `${match[3]}:${match[4] ?? '00'}`;
  return `${match[1]}T${match[2]}${offset}`;
}
