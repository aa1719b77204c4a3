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
 * How long a token must have kept an attempt waiting to count as the gate
 * holding it for IAM's rate (the gate lets everything through until IAM
 * throttles someone on the host): more than a socket round trip to the
 * holder or an event loop's hiccup.
 */
export const HELD_FOR_RATE_MS = 200;

/**
 * Puts `limiter` in front of every attempt of every call of `client`: inside
 * the SDK's retry loop, just before the request is signed (so a wait never
 * ages a signature), so that a retry waits for a token too, and every answer
 * tells the limiter whether IAM throttled. `onHeld` hears, every
 * HELD_FOR_RATE_MS, of each attempt the gate holds for a token that long:
 * the account is rate-bound though this process may never meet IAM's
 * throttle itself, its calls paced by a gate that others' throttles taught.
 */
export function limitCalls(client: MiddlewareClient, limiter: RateLimiter, name: string, onHeld?: () => void): void {
  const middleware = (next: (args: unknown) => Promise<unknown>, context: Record<string, unknown>) => async (args: unknown) => {
    const signal = (context.__smithy_context as { abortSignal?: AbortSignal } | undefined)?.abortSignal;
    // Told while the attempt still waits, and again every HELD_FOR_RATE_MS: a
    // gate shared by many callers may hold one attempt for many seconds.
    const held = onHeld ? setInterval(onHeld, HELD_FOR_RATE_MS) : undefined;
    held?.unref();
    try {
      await limiter.acquire(signal);
    } finally {
      clearInterval(held);
    }
    try {
      const result = await next(args);
      limiter.report(false);
      return result;
    } catch (error) {
      limiter.report(isThrottle(error));
      throw error;
    }
  };
  client.middlewareStack.addRelativeTo(middleware as never, { relation: 'before', toMiddleware: 'httpSigningMiddleware', name, override: true });
}
