// Keeps a won ledger claim alive while its IAM step runs, and says when the
// step must stop touching IAM.
//
// A claim protects an event for IPS_CLAIM_TTL_MS. A step may run longer (IAM
// throttling, retries), and a worker may pause (GC, CPU starvation, SIGSTOP)
// while another worker takes the expired claim over and applies a later
// event. So the claim is renewed every third of its time to live, and the
// step is bounded by a deadline a margin before the claim's expiry: once the
// deadline passes without a renewal, `signal` aborts (the SDK cancels a call
// in flight) and `check()` refuses to start another IAM call. A renewal
// that finds the claim gone aborts at once.
import type { Ledger } from '../ledger/ledger.js';
import { ClaimLostError, TransientError } from '../faults/errors.js';
import type { TransientReason } from '../faults/errors.js';
import { claimMarginMs } from '../ledger/clock-skew.js';

export class ClaimKeeper {
  private readonly controller = new AbortController();
  private deadline: number;
  private readonly renewal: NodeJS.Timeout;
  private readonly expiry: { timer?: NodeJS.Timeout } = {};
  private renewing = false;

  constructor(
    private readonly ledger: Ledger,
    private readonly policy: string,
    private readonly token: string,
    expiresAt: number,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.deadline = this.deadlineFor(expiresAt);
    this.armExpiry();
    this.renewal = setInterval(() => void this.renew(), Math.max(100, Math.floor(ttlMs / 3)));
    this.renewal.unref();
  }

  /** Aborts when the claim can no longer be trusted: pass it to every IAM call. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Throws before an IAM call that would start after the deadline or after the claim was lost. */
  check(): void {
    if (!this.controller.signal.aborted && this.now() >= this.deadline) this.abort('claim-deadline', 'the claim could not be renewed before its deadline');
    if (this.controller.signal.aborted) throw this.controller.signal.reason as Error;
  }

  get lost(): boolean {
    return this.controller.signal.aborted;
  }

  /**
   * The step is given up (its records are parked): it stops as if the claim
   * were lost, a call in flight is cancelled (it may still land), and no
   * other starts. The caller marks the policy for re-verification.
   */
  giveUp(error: TransientError): void {
    if (this.controller.signal.aborted) return;
    this.stop();
    this.controller.abort(error);
  }

  stop(): void {
    clearInterval(this.renewal);
    if (this.expiry.timer) clearTimeout(this.expiry.timer);
  }

  /** A margin before expiry for clocks that differ (docs/ledger.md, "Clocks"): a tenth of the time to live, at most 10 s. */
  private deadlineFor(expiresAt: number): number {
    return expiresAt - claimMarginMs(this.ttlMs);
  }

  private armExpiry(): void {
    if (this.expiry.timer) clearTimeout(this.expiry.timer);
    this.expiry.timer = setTimeout(() => this.check_(), Math.max(0, this.deadline - this.now()));
    this.expiry.timer.unref();
  }

  private check_(): void {
    try {
      this.check();
    } catch {
      /* aborted: the step sees it through the signal */
    }
  }

  private async renew(): Promise<void> {
    if (this.renewing || this.controller.signal.aborted) return;
    // A paused worker wakes up past its deadline: it must not renew its way back in.
    if (this.now() >= this.deadline) return this.check_();
    this.renewing = true;
    try {
      const expiresAt = await this.ledger.renew(this.policy, this.token);
      if (!this.controller.signal.aborted) {
        this.deadline = this.deadlineFor(expiresAt);
        this.armExpiry();
      }
    } catch (error) {
      if (error instanceof ClaimLostError) this.abort('claim-lost', error.message);
      // Any other failure (DynamoDB throttled, unreachable): the deadline decides.
    } finally {
      this.renewing = false;
    }
  }

  private abort(reason: TransientReason, message: string): void {
    this.stop();
    this.controller.abort(new TransientError(reason, `${message} (policy ${this.policy})`));
  }
}

/**
 * The step, or the give-up once it comes, whichever is first. A call of a
 * step given up (SlowAccount) may not hear the abort for a while (the SDK's
 * wait between two attempts after a throttle, up to seconds): it is not
 * waited for. It starts no attempt after the abort (limitCalls), a call
 * already sent may still land (hence the re-verification the caller asks
 * for), and the abandoned step records nothing: each of its IAM steps checks
 * the claim keeper first, and a refusal it meets is not dead-lettered
 * (PolicyBatch.applyOne).
 */
export function untilGivenUp<T>(running: Promise<T>, giveUp: AbortSignal | undefined): Promise<T> {
  if (!giveUp) return running;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(giveUp.reason);
    giveUp.addEventListener('abort', onAbort, { once: true });
    if (giveUp.aborted) onAbort();
    running.then(resolve, reject).finally(() => giveUp.removeEventListener('abort', onAbort));
  });
}
