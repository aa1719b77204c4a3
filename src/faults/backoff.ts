// The one backoff formula: exponential with full jitter (a uniform delay
// between 0 and min(cap, base * 2^attempt)), so that workers that failed
// together do not retry together. Its base and cap come from a named retry
// policy (faults/retry-policies.ts); the pipeline's from Config.

export interface Backoff {
  baseMs: number;
  capMs: number;
}

export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
