// The one retrier. Every retry of the processor and its tools goes through
// `retry` (or the AWS SDK's own, for one call), with a named policy from
// faults/retry-policies.ts: a policy is a value (how many tries, the backoff's
// base and cap), and each call says what is retriable for it. An attempt may
// also return AGAIN: a look-again round that is a decision, not a fault (a
// stale list read again, an unprocessed remainder sent again).
//
// `retryUntilSettled` is the pipeline's use of it. A retriable fault
// (throttling, 5xx, a claim held elsewhere, DynamoDB unreachable, credentials)
// must never turn into `rejected`, and the batch cannot be answered before
// every record has an outcome, so the step is retried with backoff
// (faults/backoff.ts) for as long as it takes, unless the processor is
// stopping.
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

/** How often and how patiently to try: a value, named in faults/retry-policies.ts. */
export interface RetryPolicy extends Backoff {
  /** Tries in all, the first included; Infinity: until it works, a fault is not retriable, or the signal stops it. */
  readonly attempts: number;
}

/** Returned by an attempt that asks for another round (not a fault). On the last attempt, `retry` resolves undefined. */
export const AGAIN: unique symbol = Symbol('again');

export interface Attempt {
  /** 0 for the first try. */
  index: number;
  /** No try follows this one. */
  last: boolean;
}

export interface RetryCall {
  /** Whether a failure may be tried again (default: the error model's `retriable`, faults/classify.ts). Any other failure goes up at once. */
  retriable?: (error: unknown, attempt: Attempt) => boolean;
  /** Stops the retrying: checked before each try and while waiting; then StoppedError. */
  signal?: AbortSignal;
  /** Before each wait; may throw to end the retrying. */
  onRetry?: (error: unknown, attempt: Attempt, delayMs: number) => void | Promise<void>;
  random?: () => number;
  /** How to wait between tries (default: a timer); a simulation passes its virtual clock's. */
  sleep?: (ms: number) => Promise<unknown>;
}

/**
 * Runs `attempt` until it returns a value (not AGAIN), a failure is not
 * retriable, or the policy's attempts are used up; between tries it waits
 * backoffDelay(index, policy). The last failure goes up as it is.
 */
export async function retry<T>(policy: RetryPolicy, attempt: (attempt: Attempt) => Promise<T | typeof AGAIN>, call: RetryCall = {}): Promise<T | undefined> {
  const retriable = call.retriable ?? isRetriable;
  for (let index = 0; ; index++) {
    if (call.signal?.aborted) throw new StoppedError('processor stopping');
    const now: Attempt = { index, last: index + 1 >= policy.attempts };
    let failure: { error: unknown } | undefined;
    try {
      const result = await attempt(now);
      if (result !== AGAIN) return result;
      if (now.last) return undefined;
    } catch (error) {
      if (error instanceof StoppedError || now.last || !retriable(error, now)) throw error;
      failure = { error };
    }
    // A policy without backoff (cap 0) looks again at once; any other waits, even when the jitter drew 0.
    const delayMs = policy.capMs > 0 ? backoffDelay(index, policy, call.random) : 0;
    if (failure) await call.onRetry?.(failure.error, now, delayMs);
    if (policy.capMs > 0) await (call.sleep ? call.sleep(delayMs) : wait(delayMs, call.signal));
  }
}

async function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, signal ? { signal } : {});
  } catch {
    throw new StoppedError('processor stopping');
  }
}

export interface RetryOptions extends Backoff {
  signal?: AbortSignal;
  logger: Logger;
  metrics: Metrics;
  /** What is being retried, for logs. */
  what: Record<string, unknown>;
  random?: () => number;
  /** How to wait between tries (default: a timer that `signal` stops); see RetryCall. */
  sleep?: (ms: number) => Promise<unknown>;
}

/** Attempts before an error that is not retriable is declared a bug and the step stops retrying. */
export const BUG_ATTEMPTS = 5;

export async function retryUntilSettled<T>(step: () => Promise<T>, options: RetryOptions): Promise<T> {
  let bugs = 0;
  const settled = await retry({ attempts: Infinity, baseMs: options.baseMs, capMs: options.capMs }, step, {
    retriable: () => true,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.random ? { random: options.random } : {}),
    ...(options.sleep ? { sleep: options.sleep } : {}),
    onRetry: async (error, { index }, delayMs) => {
      if (!isRetriable(error) && ++bugs >= BUG_ATTEMPTS) {
        options.metrics.increment(METRIC.pipelineBugs, { error: (error as Error).name });
        options.logger.fatal(
          { ...options.what, attempts: bugs, err: error },
          'an error that waiting cannot fix (a bug): the shard stops here, before this record, until the processor is restarted with a fix',
        );
        await stopped(options.signal);
      }
      const reason = (error as { reason?: string }).reason ?? (error as Error).name ?? 'Error';
      options.metrics.increment(METRIC.transientRetries, { reason });
      options.logger.warn({ ...options.what, attempt: index, delayMs, reason, err: (error as Error).message }, 'transient fault, retrying');
    },
  });
  return settled as T;
}

/** Resolves never; rejects with StoppedError when the processor stops. */
function stopped(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    if (signal?.aborted) return reject(new StoppedError('processor stopping'));
    signal?.addEventListener('abort', () => reject(new StoppedError('processor stopping')), { once: true });
  });
}
