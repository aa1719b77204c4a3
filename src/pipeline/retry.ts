// Runs a step until it settles. A transient fault (throttling, 5xx, a claim
// held elsewhere, DynamoDB unreachable) must never turn into `rejected`, and
// the batch cannot be answered before every record has an outcome, so the
// step is retried with exponential backoff and full jitter, capped, for as
// long as it takes, unless the processor is stopping.
//
// A programming error (TypeError and the like) will not pass by waiting: after
// a few tries it is logged as fatal, counted (`pipeline_bugs`), and the step
// waits for the processor to stop. The shard does not move past the record
// (no checkpoint passes it); a restart after a fix processes it again.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';

export interface RetryOptions {
  baseMs: number;
  capMs: number;
  signal?: AbortSignal;
  logger: Logger;
  metrics: Metrics;
  /** What is being retried, for logs. */
  what: Record<string, unknown>;
  random?: () => number;
}

export class StoppedError extends Error {
  override name = 'StoppedError';
}

/** Attempts before a programming error is declared a bug and the step stops retrying. */
export const BUG_ATTEMPTS = 5;

/** Errors that come from the code itself, not from the world outside it. */
export function isProgrammingError(error: unknown): boolean {
  return error instanceof TypeError || error instanceof ReferenceError || error instanceof RangeError || error instanceof SyntaxError;
}

/** Full jitter: a uniform delay between 0 and min(cap, base * 2^attempt). */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

export async function retryUntilSettled<T>(step: () => Promise<T>, options: RetryOptions): Promise<T> {
  let bugs = 0;
  for (let attempt = 0; ; attempt++) {
    if (options.signal?.aborted) throw new StoppedError('processor stopping');
    try {
      return await step();
    } catch (error) {
      if (error instanceof StoppedError) throw error;
      if (isProgrammingError(error) && ++bugs >= BUG_ATTEMPTS) {
        options.metrics.increment('pipeline_bugs', { error: (error as Error).name });
        options.logger.fatal(
          { ...options.what, attempts: bugs, err: error },
          'programming error: the shard stops here, before this record, until the processor is restarted with a fix',
        );
        await stopped(options.signal);
      }
      const delay = backoffDelay(attempt, options.baseMs, options.capMs, options.random);
      const reason = (error as { reason?: string }).reason ?? (error as Error).name ?? 'Error';
      options.metrics.increment('transient_retries', { reason });
      options.logger.warn({ ...options.what, attempt, delayMs: delay, reason, err: (error as Error).message }, 'transient fault, retrying');
      try {
        await sleep(delay, undefined, options.signal ? { signal: options.signal } : {});
      } catch {
        throw new StoppedError('processor stopping');
      }
    }
  }
}

/** Resolves never; rejects with StoppedError when the processor stops. */
function stopped(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    if (signal?.aborted) return reject(new StoppedError('processor stopping'));
    signal?.addEventListener('abort', () => reject(new StoppedError('processor stopping')), { once: true });
  });
}
