// The one retrier. It reads whether an error is retriable (faults/classify.ts)
// and nothing else. A retriable fault (throttling, 5xx, a claim held
// elsewhere, DynamoDB unreachable, credentials) must never turn into
// `rejected`, and the batch cannot be answered before every record has an
// outcome, so the step is retried with backoff (faults/backoff.ts) for as long
// as it takes, unless the processor is stopping.
//
// Anything else (a programming error such as a TypeError, an error nobody
// classified) will not pass by waiting: after a few tries it is logged as
// fatal, counted (`pipeline_bugs`), and the step waits for the processor to
// stop. The shard does not move past the record (no checkpoint passes it); a
// restart after a fix processes it again.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { METRIC } from '../metrics/metrics.js';
import type { Backoff } from './backoff.js';
import { backoffDelay } from './backoff.js';
import { isRetriable } from './classify.js';
import { StoppedError } from './errors.js';

export interface RetryOptions extends Backoff {
  signal?: AbortSignal;
  logger: Logger;
  metrics: Metrics;
  /** What is being retried, for logs. */
  what: Record<string, unknown>;
  random?: () => number;
}

/** Attempts before an error that is not retriable is declared a bug and the step stops retrying. */
export const BUG_ATTEMPTS = 5;

export async function retryUntilSettled<T>(step: () => Promise<T>, options: RetryOptions): Promise<T> {
  let bugs = 0;
  for (let attempt = 0; ; attempt++) {
    if (options.signal?.aborted) throw new StoppedError('processor stopping');
    try {
      return await step();
    } catch (error) {
      if (error instanceof StoppedError) throw error;
      if (!isRetriable(error) && ++bugs >= BUG_ATTEMPTS) {
        options.metrics.increment(METRIC.pipelineBugs, { error: (error as Error).name });
        options.logger.fatal(
          { ...options.what, attempts: bugs, err: error },
          'an error that waiting cannot fix (a bug): the shard stops here, before this record, until the processor is restarted with a fix',
        );
        await stopped(options.signal);
      }
      const delay = backoffDelay(attempt, options, options.random);
      const reason = (error as { reason?: string }).reason ?? (error as Error).name ?? 'Error';
      options.metrics.increment(METRIC.transientRetries, { reason });
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
