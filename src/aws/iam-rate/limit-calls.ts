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
 * Puts `limiter` in front of every attempt of every call of `client`: inside
 * the SDK's retry loop, just before the request is signed (so a wait never
 * ages a signature), so that a retry waits for a token too, and every answer
 * tells the limiter whether IAM throttled. `onHeld` hears of each attempt
 * the gate holds for its turn at the learned rate, as soon as it is held:
 * the account is rate-bound though this process may never meet IAM's
 * throttle itself, its calls paced by a gate that others' throttles taught.
 * (Not any slow token: an election, or a holder gone silent, is no rate.)
 */
export function limitCalls(client: MiddlewareClient, limiter: RateLimiter, name: string, onHeld?: () => void): void {
  const middleware = (next: (args: unknown) => Promise<unknown>, context: Record<string, unknown>) => async (args: unknown) => {
    const signal = (context.__smithy_context as { abortSignal?: AbortSignal } | undefined)?.abortSignal;
    await limiter.acquire(signal, onHeld);
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
