import { TransientError } from '../faults/errors.js';
// Stops hammering IAM while it fails. After `threshold` consecutive IAM
// faults the breaker opens: calls fail fast (the pipeline waits and retries
// the policy later) until `cooldownMs` has passed; then exactly one trial call
// goes through, and its result closes the breaker (IAM answered, even with a
// refusal) or opens it again (another fault). While the trial is in flight
// every other call fails fast.
//
// Calls run concurrently, so a call let through while the breaker was closed
// may settle long after it opened. Its result is old news: only calls started
// since the last opening move the state, and only the trial ends the trial.

export type BreakerState = 'closed' | 'open' | 'half-open';

/** What a call was let through as: a call of a closed period (which one), or the trial. */
interface Ticket {
  period: number;
  trial: boolean;
}

export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  /** Counts openings: a closed-period call from an earlier period does not move the state. */
  private period = 0;
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

  /** Runs the call unless the breaker refuses it; `isFault` tells IAM failing from IAM answering. */
  async run<T>(call: () => Promise<T>, isFault: (error: unknown) => boolean): Promise<T> {
    const ticket = this.admit();
    let result: 'answered' | 'fault' = 'answered';
    try {
      return await call();
    } catch (error) {
      if (isFault(error)) result = 'fault';
      throw error;
    } finally {
      this.settle(ticket, result);
    }
  }

  /** Lets the call through, as a closed-period call or as the one trial, or refuses it. */
  private admit(): Ticket {
    if (this.currentState === 'closed') return { period: this.period, trial: false };
    if (this.trialInFlight) throw new TransientError('circuit-open', 'a trial call to IAM is in flight');
    if (this.now() - this.openedAt < this.cooldownMs) throw new TransientError('circuit-open', 'IAM is failing; waiting before the next try');
    // Synchronous up to here: of calls arriving together, the first is the trial.
    this.trialInFlight = true;
    this.set('half-open');
    return { period: this.period, trial: true };
  }

  private settle(ticket: Ticket, result: 'answered' | 'fault'): void {
    if (ticket.trial) {
      this.trialInFlight = false;
      if (result === 'fault') this.open();
      else this.close();
      return;
    }
    if (ticket.period !== this.period || this.currentState !== 'closed') return;
    if (result === 'answered') this.failures = 0;
    else if (++this.failures >= this.threshold) this.open();
  }

  private open(): void {
    this.period++;
    this.failures = 0;
    this.openedAt = this.now();
    this.set('open');
  }

  private close(): void {
    this.failures = 0;
    this.set('closed');
  }

  private set(state: BreakerState): void {
    this.currentState = state;
    this.onChange(state);
  }
}
