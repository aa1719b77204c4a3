// When a policy's records are parked instead of holding the shard's
// checkpoint (docs/design.md, "Parking"): their account's IAM has been
// unavailable (the account's circuit breaker open, the faults of IAM itself
// its trial calls meet, its role refused by STS) for IPS_PARK_AFTER_MS
// without a break. Any other fault (the ledger, read
// lag, a claim held elsewhere) is the stream's own business and keeps the
// records waiting as before: parking them would only move the wait.
import { IamFaultError, TransientError } from '../faults/errors.js';
import type { ParkStore } from './park-store.js';

/**
 * Transient reasons that say the account's IAM cannot be used now (the breaker
 * opens on IAM's persistent 5xx and throttling), or (`account-slow`) that it
 * throttled the policy's step for IPS_PARK_AFTER_MS (SlowAccount).
 */
const ACCOUNT_UNAVAILABLE = new Set<string>(['circuit-open', 'assume-role-failed', 'account-slow']);

export function accountUnavailable(error: unknown): error is TransientError {
  return error instanceof IamFaultError || (error instanceof TransientError && ACCOUNT_UNAVAILABLE.has(error.reason));
}

/** Why a record joined a park it did not start: its policy already had records parked, and order holds. */
export const BEHIND_PARKED = 'behind-parked';

export interface ParkingOptions {
  store: ParkStore;
  /** The accounts found unavailable lately: a new policy of theirs is parked at once (AccountOutages). */
  outages?: AccountOutages;
  /** IPS_PARK_AFTER_MS (> 0). */
  afterMs: number;
  now?: () => number;
  /**
   * Whether a target account's IAM has throttled a call lately: a policy of it
   * whose records have waited IPS_PARK_AFTER_MS is then given up and parked
   * (SlowAccount). Absent: only an unavailable account parks.
   */
  throttledLately?: (account: string) => boolean;
}

/** Measures how long a policy's account has been unavailable without a break; says when its records are to be parked. */
export class UnavailableFor {
  private since: number | undefined;

  constructor(private readonly options: ParkingOptions) {}

  /** Whether this failure, with the ones before it, is reason to park. */
  parks(error: unknown): boolean {
    // Given up by SlowAccount: it has waited IPS_PARK_AFTER_MS already.
    if (error instanceof TransientError && error.reason === 'account-slow') return true;
    if (!accountUnavailable(error)) {
      this.since = undefined;
      return false;
    }
    const now = (this.options.now ?? Date.now)();
    this.since ??= now;
    return now - this.since >= this.options.afterMs;
  }
}

/** How long an account stays known as unavailable without a redrive of it succeeding: then a policy of it tries again. */
export const OUTAGE_REMEMBERED_MS = 60_000;

/**
 * The accounts whose policies were parked lately because the account (not the
 * policy) could not be used: its breaker open, its role refused, its IAM too
 * slow. A policy of such an account met later, a new one included, is parked
 * at once rather than after IPS_PARK_AFTER_MS of its own: each batch bringing
 * new policies of a failing account would otherwise hold the shard, and every
 * other account behind it, that long again. A redrive of the account that
 * succeeds (the redriver is its probe) forgets the outage; so does time
 * (OUTAGE_REMEMBERED_MS), after which a policy of it tries again. Keyed by
 * account; the worker's own under `own`.
 */
export class AccountOutages {
  private readonly outages = new Map<string, { reason: string; detail: string; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A policy of `account` was parked for the account's sake. */
  down(account: string, why: { reason: string; detail: string }): void {
    if (why.reason === BEHIND_PARKED) return; // the policy's own order, not the account's health
    this.outages.set(account, { reason: why.reason, detail: why.detail, at: this.now() });
  }

  /**
   * A redrive of `account` succeeded: its IAM works again. An account parked
   * for being slow stays known as slow while it still throttles: its redrive
   * succeeds at the account's pace, which says nothing of that pace.
   */
  up(account: string, throttlesStill = false): void {
    if (throttlesStill && this.outages.get(account)?.reason === 'account-slow') return;
    this.outages.delete(account);
  }

  /** Why a policy of `account` is to be parked at once; undefined: try it. */
  of(account: string): { reason: string; detail: string } | undefined {
    const outage = this.outages.get(account);
    if (!outage) return undefined;
    if (this.now() - outage.at >= OUTAGE_REMEMBERED_MS) {
      this.outages.delete(account);
      return undefined;
    }
    return { reason: outage.reason, detail: `${outage.detail} (the account's IAM was found unavailable ${this.now() - outage.at} ms ago: parked at once)` };
  }
}

/** How often a policy's wait is looked at against IPS_PARK_AFTER_MS and its account's throttling. */
const SLOW_CHECK_MS = 1_000;

/**
 * A target account whose IAM is slow rather than down: its calls succeed, at
 * the rate its throttling lets through, so no fault ever says "unavailable",
 * and a batch with many of its policies would hold the shard's checkpoint,
 * and every other account's records behind it, for as long as they take.
 * Once the account alone has held the batch (every other account's records
 * settled: batch-hold.ts) for IPS_PARK_AFTER_MS while it throttled lately,
 * `signal` aborts with `account-slow`: the step stops as if
 * its claim were lost (a call in flight may still land: the policy is marked
 * for re-verification) and the records are parked, to be applied at the
 * account's own pace by the redriver. The worker's own account is never
 * given up: all of its records would only move from the shard to the park.
 */
export class SlowAccount {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;

  /** `aloneSince`: since when the account alone holds the batch (BatchHold.aloneSince); undefined while others hold it too. */
  constructor(
    private readonly account: string,
    private readonly aloneSince: () => number | undefined,
    private readonly options: ParkingOptions & { throttledLately: (account: string) => boolean },
  ) {
    this.timer = setInterval(() => this.check(), Math.min(SLOW_CHECK_MS, options.afterMs));
    this.timer.unref();
    this.check();
  }

  /** Aborts with `account-slow` once the records have waited long enough and the account throttles. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  private check(): void {
    if (this.controller.signal.aborted) return;
    const since = this.aloneSince();
    const held = since === undefined ? 0 : (this.options.now ?? Date.now)() - since;
    if (held < this.options.afterMs || !this.options.throttledLately(this.account)) return;
    this.stop();
    this.controller.abort(
      new TransientError(
        'account-slow',
        `account ${this.account}'s IAM throttled while its records alone held the batch for ${held} ms (IPS_PARK_AFTER_MS ${this.options.afterMs}): parked, to be applied at the account's pace`,
      ),
    );
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
