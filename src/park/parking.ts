// When a policy's records are parked instead of holding the shard's
// checkpoint (docs/design.md, "Parking"): their account's IAM has been
// unavailable (the account's circuit breaker open, the faults of IAM itself
// its trial calls meet, its role refused by STS) for IPS_PARK_AFTER_MS
// without a break. Any other fault (the ledger, read
// lag, a claim held elsewhere) is the stream's own business and keeps the
// records waiting as before: parking them would only move the wait.
import { IamFaultError, TransientError } from '../faults/errors.js';
import type { ParkStore } from './park-store.js';

/** Transient reasons that say the account's IAM cannot be used now (the breaker opens on IAM's persistent 5xx and throttling). */
const ACCOUNT_UNAVAILABLE = new Set<string>(['circuit-open', 'assume-role-failed']);

export function accountUnavailable(error: unknown): error is TransientError {
  return error instanceof IamFaultError || (error instanceof TransientError && ACCOUNT_UNAVAILABLE.has(error.reason));
}

/** Why a record joined a park it did not start: its policy already had records parked, and order holds. */
export const BEHIND_PARKED = 'behind-parked';

export interface ParkingOptions {
  store: ParkStore;
  /** IPS_PARK_AFTER_MS (> 0). */
  afterMs: number;
  now?: () => number;
}

/** Measures how long a policy's account has been unavailable without a break; says when its records are to be parked. */
export class UnavailableFor {
  private since: number | undefined;

  constructor(private readonly options: ParkingOptions) {}

  /** Whether this failure, with the ones before it, is reason to park. */
  parks(error: unknown): boolean {
    if (!accountUnavailable(error)) {
      this.since = undefined;
      return false;
    }
    const now = (this.options.now ?? Date.now)();
    this.since ??= now;
    return now - this.since >= this.options.afterMs;
  }
}
