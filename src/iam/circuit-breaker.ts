// Stops hammering IAM while it fails. After `threshold` consecutive transient
// failures the breaker opens: calls fail fast (the pipeline waits and retries
// the policy later) until `cooldownMs` has passed; then one trial call goes
// through, and its result closes or re-opens the breaker.
import { TransientError } from '../contract/errors.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private trialInFlight = false;
  private currentState: BreakerState = 'closed';

  constructor(
    private readonly threshold: number,
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
    private readonly onChange: (state: BreakerState) => void = () => {},
  ) {}

  get state(): BreakerState {
    return this.currentState;
  }

  async run<T>(call: () => Promise<T>, isTransient: (error: unknown) => boolean): Promise<T> {
    if (this.currentState === 'open') {
      if (this.now() - this.openedAt < this.cooldownMs || this.trialInFlight) throw new TransientError('circuit-open', 'IAM is failing; waiting before the next try');
      this.set('half-open');
    }
    if (this.currentState === 'half-open') {
      if (this.trialInFlight) throw new TransientError('circuit-open', 'a trial call to IAM is in flight');
      this.trialInFlight = true;
    }
    try {
      const result = await call();
      this.failures = 0;
      if (this.currentState !== 'closed') this.set('closed');
      return result;
    } catch (error) {
      if (isTransient(error)) {
        this.failures++;
        if (this.currentState === 'half-open' || this.failures >= this.threshold) {
          this.openedAt = this.now();
          this.set('open');
        }
      }
      throw error;
    } finally {
      this.trialInFlight = false;
    }
  }

  private set(state: BreakerState): void {
    this.currentState = state;
    this.onChange(state);
  }
}
