/** agent/progress: the terminal's progress line, drawn while something is tracked and cleared after. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { progressText, terminalProgress } from '#agent/progress';

describe('progressText', () => {
  it.each<[string, number, number, number | undefined, string]>([
    [
      'bytes, rate and elapsed',
      3 * 1024 * 1024,
      2,
      undefined,
      'backup app-db: 3.00 MiB, 1.50 MiB/s, 0:02 elapsed',
    ],
    [
      'the ETA when the total is known',
      1_048_576,
      2,
      4_194_304,
      'backup app-db: 1.00 MiB of 4.00 MiB, 512.0 KiB/s, 0:02 elapsed, ETA 0:06',
    ],
    ['hours', 0, 3725, undefined, 'backup app-db: 0 B, 0 B/s, 1:02:05 elapsed'],
  ])('shows %s', (_what, bytes, seconds, total, text) => {
    expect(progressText('backup app-db', bytes, seconds, total)).toBe(text);
  });
});

describe('terminalProgress', () => {
  let written: string[];
  let nowMs: number;
  const stream = { isTTY: true, write: (text: string) => written.push(text) > 0 };
  beforeEach(() => {
    vi.useFakeTimers();
    written = [];
    nowMs = 0;
  });
  afterEach(() => vi.useRealTimers());

  it('redraws one line in place while work runs, and clears it when the work stops', () => {
    const progress = terminalProgress(stream, { intervalMs: 500, now: () => nowMs });
    let bytes = 0;
    const stop = progress.track('backup app-db', () => bytes);

    bytes = 1024 * 1024;
    nowMs = 500;
    vi.advanceTimersByTime(500);
    bytes = 2 * 1024 * 1024;
    nowMs = 1000;
    vi.advanceTimersByTime(500);
    stop();
    vi.advanceTimersByTime(5000);

    expect(written).toEqual([
      '\r\x1b[Kbackup app-db: 1.00 MiB, 2.00 MiB/s, 0:01 elapsed',
      '\r\x1b[Kbackup app-db: 2.00 MiB, 2.00 MiB/s, 0:01 elapsed',
      '\r\x1b[K',
    ]);
  });

  it('draws nothing for work shorter than one interval, and close stops every tracker', () => {
    const progress = terminalProgress(stream, { intervalMs: 500, now: () => nowMs });
    progress.track('read app-db', () => 10, 100)();
    progress.track('backup media', () => 10);
    progress.close();
    vi.advanceTimersByTime(5000);
    expect(written).toEqual([]);
  });

  it('in a log writes a whole line every ten seconds, never a carriage return, and none once stopped', () => {
    const progress = terminalProgress({ write: stream.write }, { mode: 'lines', now: () => nowMs });
    let bytes = 0;
    const stop = progress.track('backup app-db', () => bytes);

    vi.advanceTimersByTime(9_999);
    expect(written).toEqual([]);
    bytes = 10 * 1024 * 1024;
    nowMs = 10_000;
    vi.advanceTimersByTime(1);
    stop();
    vi.advanceTimersByTime(60_000);

    expect(written).toEqual(['strongbox: progress: backup app-db: 10.0 MiB, 1.00 MiB/s, 0:10 elapsed\n']);
  });
});
