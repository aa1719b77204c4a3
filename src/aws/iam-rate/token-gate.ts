// Lets calls through at the rate CubicRate learned, first come first served;
// unlimited until the first throttle.
import { CubicRate } from './cubic-rate.js';

/** What a rate limiter offers an SDK client: a token before each attempt, and what IAM answered it. */
export interface RateLimiter {
  /** Resolves when the call may go; `onHeld` hears that the gate holds it for the rate IAM allows (it waits its turn). */
  acquire(signal?: AbortSignal, onHeld?: () => void): Promise<void>;
  report(throttled: boolean): void;
}

export class TokenGate {
  private tokens = 0;
  private last: number;
  private readonly waiting: { resolve: () => void; keepAlive: boolean }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly rate: CubicRate = new CubicRate(),
    private readonly now: () => number = Date.now,
  ) {
    this.last = now();
  }

  /**
   * Resolves when the call may go. `keepAlive`: the process must live until
   * then (a caller of its own); false for a token owed to another process.
   * `onHeld`: told at once when the call must wait its turn at the learned
   * rate (never before IAM throttled: until then everything goes).
   */
  acquire(keepAlive = true, onHeld?: () => void): Promise<void> {
    return new Promise((resolve) => {
      const waiter = { resolve, keepAlive };
      this.waiting.push(waiter);
      this.drain();
      if (onHeld && this.waiting.includes(waiter)) onHeld();
    });
  }

  /** Calls waiting for a token. */
  get queued(): number {
    return this.waiting.length;
  }

  report(throttled: boolean): void {
    if (throttled) this.rate.throttled();
    else this.rate.answered();
  }

  private drain(): void {
    const rate = this.rate.current();
    const now = this.now();
    if (rate === undefined) {
      // No throttle seen yet: no limit.
      this.last = now;
      for (const waiter of this.waiting.splice(0)) this.grant(waiter);
      return;
    }
    this.tokens = Math.min(Math.max(1, rate), this.tokens + ((now - this.last) / 1000) * rate);
    this.last = now;
    while (this.waiting.length > 0 && this.tokens >= 1) {
      this.tokens -= 1;
      this.grant(this.waiting.shift()!);
    }
    if (this.waiting.length > 0 && !this.timer) {
      this.timer = setTimeout(
        () => {
          this.timer = undefined;
          this.drain();
        },
        Math.max(1, ((1 - this.tokens) / rate) * 1000),
      );
    }
    // Referenced while a caller of this process waits: a process whose only work is that
    // caller (a CLI run) must not exit before it is served; tokens owed to others do not hold it.
    if (this.timer && !this.waiting.some((waiter) => waiter.keepAlive)) this.timer.unref();
    else this.timer?.ref();
  }

  private grant(waiter: { resolve: () => void }): void {
    this.rate.sent();
    waiter.resolve();
  }
}
