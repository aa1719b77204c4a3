// Progress of a long command, on stderr (stdout is for results): a bar drawn
// by cli-progress on a terminal; without one, a plain line now and then (or
// nothing), so that logs and pipes are not filled with redraws.
import cliProgress from 'cli-progress';
import { note } from './render.js';

export interface Progress {
  /** Moves the count forward; `payload` fills the format's other {placeholders}. */
  increment(by?: number, payload?: Record<string, unknown>): void;
  /** Changes what the whole is (a count learned along the way). */
  setTotal(total: number): void;
  stop(): void;
}

export interface ProgressOptions {
  /** cli-progress format, e.g. `[{bar}] {value}/{total} {rate} rec/s`; {rate} is filled in per second. */
  format: string;
  /** Without a terminal: a line every this many ms (and one at the end); 0 for none. */
  plainEveryMs?: number;
  stream?: NodeJS.WriteStream;
}

/** Starts a progress display for `total` steps. */
export function startProgress(total: number, options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  const startedAt = Date.now();
  const rate = (value: number) => (value / Math.max((Date.now() - startedAt) / 1000, 0.001)).toFixed(0);
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar({ format: options.format, stream, barsize: 30, hideCursor: true, clearOnComplete: false, etaBuffer: 50 }, cliProgress.Presets.shades_classic);
    let value = 0;
    bar.start(total, 0, { rate: '0' });
    return {
      increment: (by = 1, payload = {}) => {
        value += by;
        bar.increment(by, { rate: rate(value), ...payload });
      },
      setTotal: (next) => bar.setTotal(next),
      stop: () => bar.stop(),
    };
  }
  // No terminal: the same words, filled in by hand, now and then.
  let value = 0;
  let whole = total;
  let lastLine = 0;
  let payload: Record<string, unknown> = {};
  const line = () => {
    const fields: Record<string, unknown> = { value, total: whole, percentage: whole > 0 ? Math.floor((value / whole) * 100) : 100, rate: rate(value), bar: '', ...payload };
    note(options.format.replace(/\{(\w+)\}/g, (_, name: string) => String(fields[name] ?? '')).replace(/\[\]\s*/, ''));
    lastLine = Date.now();
  };
  const every = options.plainEveryMs ?? 0;
  return {
    increment: (by = 1, more = {}) => {
      value += by;
      payload = { ...payload, ...more };
      if (every > 0 && Date.now() - lastLine >= every) line();
    },
    setTotal: (next) => {
      whole = next;
    },
    stop: () => {
      if (every > 0) line();
    },
  };
}
