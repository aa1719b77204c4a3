// The limiter's place in the SDK: in front of every attempt of every call,
// inside the SDK's retry loop, so that retries wait their turn too.
import type { RateLimiter } from './token-gate.js';

/** Throttling as IAM and the SDK name it (not LimitExceeded: that is IAM's version limit, not its rate). */
export function isThrottle(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return ['Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'RequestThrottled'].includes(e?.name ?? '') || e?.$metadata?.httpStatusCode === 429;
}

/**
 * Tells `onThrottle` of every attempt IAM throttled, in any retry mode: inside
 * the SDK's retry loop, so the throttles its retries absorb count too.
 */
export function watchThrottles(client: MiddlewareClient, onThrottle: () => void): void {
  const middleware = (next: (args: unknown) => Promise<unknown>) => async (args: unknown) => {
    try {
      return await next(args);
    } catch (error) {
      if (isThrottle(error)) onThrottle();
      throw error;
    }
  };
  client.middlewareStack.addRelativeTo(middleware as never, { relation: 'before', toMiddleware: 'httpSigningMiddleware', name: 'iam-throttle-watch', override: true });
}

interface MiddlewareClient {
  middlewareStack: { addRelativeTo(middleware: never, options: { relation: 'before' | 'after'; toMiddleware: string; name?: string; override?: boolean }): void };
}

/**
 * How many times a throttled attempt goes back to the gate before the SDK's
 * own retry (and its backoff) hears of the throttle: enough for a burst
 * before the first throttle to be paced out, few enough that a gate that
 * cannot pace (no rate learned, a fallback) hands over soon.
 */
export const THROTTLE_REQUEUES = 8;

/**
 * Puts `limiter` in front of every attempt of every call of `client`: inside
 * the SDK's retry loop, just before the request is signed (so a wait never
 * ages a signature), so that a retry waits for a token too, and every answer
 * tells the limiter whether IAM throttled. `onHeld` hears of each attempt
 * the gate holds for its turn at the learned rate, as soon as it is held:
 * the account is rate-bound though this process may never meet IAM's
 * throttle itself, its calls paced by a gate that others' throttles taught.
 * (Not any slow token: an election, or a holder gone silent, is no rate.)
 *
 * A throttled attempt goes back to the gate, which has just lowered its rate,
 * rather than into the SDK's backoff: that backoff is blind to the gate and
 * grows to seconds after a few throttles (a base of 1 s, doubled each time),
 * so a burst that met IAM's limit at once (a shard's first batch, every call
 * sent before any throttle taught the rate) would sit out seconds with tokens
 * unused. Other failures, and a throttle past THROTTLE_REQUEUES, are the SDK's.
 */
export function limitCalls(client: MiddlewareClient, limiter: RateLimiter, name: string, onHeld?: () => void): void {
  const middleware = (next: (args: unknown) => Promise<unknown>, context: Record<string, unknown>) => async (args: unknown) => {
    const signal = (context.__smithy_context as { abortSignal?: AbortSignal } | undefined)?.abortSignal;
    for (let requeued = 0; ; requeued++) {
      await limiter.acquire(signal, onHeld);
      try {
        const result = await next(args);
        limiter.report(false);
        return result;
      } catch (error) {
        const throttled = isThrottle(error);
        limiter.report(throttled);
        if (!throttled || requeued >= THROTTLE_REQUEUES || signal?.aborted) throw error;
      }
    }
  };
  client.middlewareStack.addRelativeTo(middleware as never, { relation: 'before', toMiddleware: 'httpSigningMiddleware', name, override: true });
}
