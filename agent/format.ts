/** Plain-text output helpers for the CLI: tables and sizes. */

export { formatBytes } from '#core/bytes';

import { formatBytes } from '#core/bytes';

/** Left-aligned columns separated by two spaces; the first row is the header. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * Bytes per second over a duration, readable: `12.3 MiB/s`; `-` when nothing was timed.
 * @example formatRate(1_048_576, 2) // '512.0 KiB/s'
 */
export function formatRate(bytes: number, seconds: number): string {
  if (!(seconds > 0)) return '-';
  return `${formatBytes(Math.round(bytes / seconds))}/s`;
}
