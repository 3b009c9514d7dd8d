/**
 * Progress of long runs: bytes so far, rate, elapsed time and, when the total is known (restore, verify
 * --deep), the ETA. On a terminal one line on stderr, redrawn in place twice a second; in logs (cron
 * mail, journald, SSM output) a plain `strongbox: progress: …` line every ten seconds, so a short run
 * prints none and no carriage-return noise reaches a log. Never with `--quiet` or `--nagios`, and on a
 * terminal never with `--json` (agent/main decides). The counters are read on a timer, so the data path
 * does no extra work.
 */
import { formatBytes } from '#core/bytes';

/** Where long-running work reports how far it got. */
export interface Progress {
  /**
   * Shows `label` with the bytes `bytes()` counts so far (of `totalBytes` when known) until the returned
   * function is called. `bytes` is polled, never pushed: it should read a counter, not compute.
   * @example const stop = runtime.progress?.track('backup app-db', () => meter.bytes); … stop?.();
   */
  track(label: string, bytes: () => number, totalBytes?: number): () => void;
}

/** A stream to draw on: stderr. */
export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): boolean;
}

/** Options of {@link terminalProgress}. */
export interface TerminalProgressOptions {
  /** How often the line is redrawn (`lines`: written). @default 500, `lines` 10,000 */
  intervalMs?: number;
  /** `redraw` one line in place (a terminal), or write `lines` one after another (a log). @default redraw */
  mode?: 'redraw' | 'lines';
  /** Milliseconds now (tests). @default performance.now */
  now?: () => number;
}

/** The progress line of a terminal, and what the CLI does around it. */
export interface TerminalProgress extends Progress {
  /** Clears the line (before a log line is written; the next tick draws it again). */
  clear(): void;
  /** Stops every tracker and clears the line: the run is over. */
  close(): void;
}

const CLEAR = '\r\x1b[K';

interface Tracked {
  label: string;
  bytes: () => number;
  totalBytes?: number;
  startedMs: number;
}

/**
 * A progress line on `stream`, redrawn every `intervalMs` while something is tracked. The timer does not
 * keep the process alive.
 * @example const progress = terminalProgress(process.stderr); … progress.close();
 */
export function terminalProgress(
  stream: ProgressStream,
  options: TerminalProgressOptions = {},
): TerminalProgress {
  const now = options.now ?? (() => performance.now());
  const tracked = new Set<Tracked>();
  let drawn = false;
  let timer: NodeJS.Timeout | undefined;
  const lines = options.mode === 'lines';
  const clear = () => {
    if (drawn) stream.write(CLEAR);
    drawn = false;
  };
  const draw = () => {
    const line = [...tracked].map((t) =>
      progressText(t.label, t.bytes(), (now() - t.startedMs) / 1000, t.totalBytes),
    );
    if (lines) {
      if (line.length > 0) stream.write(`strongbox: progress: ${line.join(' | ')}\n`);
      return;
    }
    if (line.length === 0) return clear();
    stream.write(`${CLEAR}${line.join(' | ')}`);
    drawn = true;
  };
  const stopTimer = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
  };
  return {
    track(label, bytes, totalBytes) {
      const entry: Tracked = {
        label,
        bytes,
        startedMs: now(),
        ...(totalBytes !== undefined ? { totalBytes } : {}),
      };
      tracked.add(entry);
      if (!timer) {
        timer = setInterval(draw, options.intervalMs ?? (lines ? 10_000 : 500));
        timer.unref();
      }
      return () => {
        if (!tracked.delete(entry)) return;
        if (tracked.size === 0) {
          stopTimer();
          clear();
        }
      };
    },
    clear,
    close() {
      tracked.clear();
      stopTimer();
      clear();
    },
  };
}

/**
 * One tracker's part of the line: `backup app-db: 1.20 GiB, 45.3 MiB/s, 0:27 elapsed`, with
 * `of 2.00 GiB` and `ETA 0:18` when the total is known.
 * @example progressText('restore app-db', 1_048_576, 2, 4_194_304) // 'restore app-db: 1.00 MiB of 4.00 MiB, 512.0 KiB/s, 0:02 elapsed, ETA 0:06'
 */
export function progressText(
  label: string,
  bytes: number,
  elapsedSeconds: number,
  totalBytes?: number,
): string {
  const rate = elapsedSeconds > 0 ? bytes / elapsedSeconds : 0;
  const parts = [
    `${formatBytes(bytes)}${totalBytes !== undefined ? ` of ${formatBytes(totalBytes)}` : ''}`,
    `${formatBytes(Math.round(rate))}/s`,
    `${clock(elapsedSeconds)} elapsed`,
  ];
  if (totalBytes !== undefined && rate > 0 && bytes < totalBytes) {
    parts.push(`ETA ${clock((totalBytes - bytes) / rate)}`);
  }
  return `${label}: ${parts.join(', ')}`;
}

/** `m:ss`, or `h:mm:ss` from an hour. */
function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`;
}
