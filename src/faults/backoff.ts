// The one backoff formula: exponential with full jitter (a uniform delay
// between 0 and min(cap, base * 2^attempt)), so that workers that failed
// together do not retry together. Each caller passes its base and cap; the
// processor's come from Config (one place for defaults), the tools' from
// TOOL_BACKOFF.

export interface Backoff {
  baseMs: number;
  capMs: number;
}

/** For the operator tools' own calls (a producer's throttled entries, lease writes). */
export const TOOL_BACKOFF: Backoff = { baseMs: 50, capMs: 2_000 };

export function backoffDelay(attempt: number, backoff: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
