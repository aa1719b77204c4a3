// When a policy's records are parked instead of holding the shard's
// checkpoint (docs/design.md, "Parking"): their account's IAM has been
// unavailable (the account's circuit breaker open, the faults of IAM itself
// its trial calls meet, its role refused by STS) for IPS_PARK_AFTER_MS
// without a break. Any other fault (the ledger, read
// lag, a claim held elsewhere) is the stream's own business and keeps the
// records waiting as before: parking them would only move the wait.
import { EventEmitter, once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { IamFaultError, StoppedError, TransientError } from '../faults/errors.js';
import { splitPolicyKey } from '../contract/policy-key.js';
import type { AccountHold } from './batch-hold.js';
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
   * Whether a target account is rate-bound lately (its IAM throttled a call,
   * or the account's shared gate held one for its turn): a policy of it whose
   * records have waited IPS_PARK_AFTER_MS is then given up and parked
   * (SlowAccount). Absent: only an unavailable account parks.
   */
  rateBoundLately?: (account: string) => boolean;
  /**
   * Calls per second the host's gate for a target account allows now, learned
   * from its throttles by every record processor of the host (Infinity: no
   * limit learned; undefined: not known). Absent: a slow account is judged by
   * its pace in the batch alone.
   */
  allowedRate?: (account: string) => number | undefined;
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

/** The key of a policy's account in AccountOutages: the account its key names, or `own`. */
export function outageKey(policy: string): string {
  return splitPolicyKey(policy).account ?? 'own';
}

/**
 * How long an account stays known as unavailable without a redrive of it
 * succeeding or failing: then a policy of it tries again. At least two of the
 * redriver's rounds (outagesRememberedMs), so that its probes renew it.
 */
export const OUTAGE_REMEMBERED_MS = 60_000;

/** How long a process remembers an outage: OUTAGE_REMEMBERED_MS, or two redriver rounds (IPS_REDRIVE_EVERY_MS) if longer. */
export function outagesRememberedMs(redriveEveryMs: number): number {
  return Math.max(OUTAGE_REMEMBERED_MS, 2 * redriveEveryMs);
}

/**
 * The accounts whose policies were parked lately because the account (not the
 * policy) could not be used: its breaker open, its role refused, its IAM too
 * slow. A policy of such an account met later, a new one included, is parked
 * at once rather than after IPS_PARK_AFTER_MS of its own: each batch bringing
 * new policies of a failing account would otherwise hold the shard, and every
 * other account behind it, that long again. The redriver is the account's
 * probe: a redrive of it that fails renews the outage, one that succeeds
 * forgets it (unless the account is still rate-bound, or was parked for
 * being slow); time forgets it too
 * (outagesRememberedMs: two of the redriver's rounds at least), after which a
 * policy of it tries again. Keyed by account; the worker's own under `own`.
 */
export class AccountOutages {
  private readonly outages = new Map<string, { reason: string; detail: string; at: number }>();
  /** Tells, by account, that the account was found down: its policies waiting between tries follow at once. */
  private readonly news = new EventEmitter().setMaxListeners(0);

  constructor(
    private readonly now: () => number = Date.now,
    private readonly rememberMs = OUTAGE_REMEMBERED_MS,
  ) {}

  /** A policy of `account` was parked for the account's sake. */
  down(account: string, why: { reason: string; detail: string }): void {
    if (why.reason === BEHIND_PARKED) return; // the policy's own order, not the account's health
    this.outages.set(account, { reason: why.reason, detail: why.detail, at: this.now() });
    this.news.emit(account);
  }

  /**
   * Waits `ms` between two tries of a policy of `account`, or less: until the
   * account is found down. A policy failing for its account follows a park
   * made for the account's sake at its next failure; its backoff after some
   * tries is seconds long (full jitter, up to IPS_RETRY_BACKOFF_CAP_MS), and
   * the batch, every other account's records behind it, would wait that long.
   * Rejects with StoppedError when `signal` (the processor stopping) aborts.
   */
  async sleepUnlessDown(account: string, ms: number, signal?: AbortSignal): Promise<void> {
    const ended = new AbortController();
    const until = signal ? AbortSignal.any([signal, ended.signal]) : ended.signal;
    try {
      await Promise.race([sleep(ms, undefined, { signal: until }), once(this.news, account, { signal: until })]);
    } catch (error) {
      if (signal?.aborted) throw new StoppedError('processor stopping');
      throw error;
    } finally {
      ended.abort();
    }
  }

  /**
   * A redrive of `account` succeeded: its IAM works again. An account still
   * rate-bound stays known as it was (its breaker opened by throttling): its
   * redrive succeeds at the account's pace, which says nothing of that pace.
   * Nor does any redrive of an account parked for being slow: the redriver
   * makes one call at a time, which even a slow account's rate lets through
   * without a wait; such an outage is forgotten in time only.
   */
  up(account: string, rateBoundStill = false): void {
    if (rateBoundStill || this.outages.get(account)?.reason === 'account-slow') return;
    this.outages.delete(account);
  }

  /** Why a policy of `account` is to be parked at once; undefined: try it. */
  of(account: string): { reason: string; detail: string } | undefined {
    const outage = this.outages.get(account);
    if (!outage) return undefined;
    if (this.now() - outage.at >= this.rememberMs) {
      this.outages.delete(account);
      return undefined;
    }
    return { reason: outage.reason, detail: `${outage.detail} (the account's IAM was found unavailable ${this.now() - outage.at} ms ago: parked at once)` };
  }
}

/** How often a policy's wait is looked at against IPS_PARK_AFTER_MS and its account's throttling. */
const SLOW_CHECK_MS = 1_000;

/**
 * Slow, not busy: an account is given up for being slow only while it settles
 * its policies at less than this share of the pace the batch's other accounts
 * settled theirs at, and (where the host's gates know the rates) IAM allows
 * it less than this share of the fastest of theirs. An account as fast as
 * the others, with more of its records in the batch, is busy with its share:
 * parking it would send its records through the redriver, one policy at a
 * time, and its next ones after them (the benchmark parked such an account
 * when its rate alone was judged, and again, at its full rate, when its pace
 * in one record processor was: the account's rate is shared by the host's).
 */
export const SLOWER_THAN_OTHERS = 0.25;

/**
 * `account`'s rate against the fastest of `others` (the host's gates: what
 * IAM allows each account, not this process's share of it); undefined when
 * its own or every other's is not known.
 */
function rateAgainstOthers(account: string, others: string[], allowedRate: (account: string) => number | undefined): { ratio: number; mine: number; fastest: number } | undefined {
  const mine = allowedRate(account);
  const known = others.map(allowedRate).filter((rate): rate is number => rate !== undefined);
  if (mine === undefined || known.length === 0) return undefined;
  const fastest = Math.max(...known);
  // No limit learned for it: not slow for want of rate; none learned for another: faster than any limit.
  const ratio = mine === Infinity ? 1 : fastest === Infinity ? 0 : mine / fastest;
  return { ratio, mine, fastest };
}

/**
 * A target account whose IAM is slow rather than down: its calls succeed, at
 * the rate its throttling lets through, so no fault ever says "unavailable",
 * and a batch with many of its policies would hold the shard's checkpoint,
 * and every other account's records behind it, for as long as they take.
 * Once the account alone has held the batch (every other account's records
 * settled: batch-hold.ts) for IPS_PARK_AFTER_MS while it was rate-bound
 * lately (IAM throttled it, or the host's gate for it held a call),
 * settled its policies at a fraction of the other accounts' pace and is
 * allowed a fraction of their rate by IAM (SLOWER_THAN_OTHERS), or
 * sooner once the pace of its policies settled in the batch says that even
 * at twice that pace they would hold it that long, `signal` aborts with
 * `account-slow`: the step stops as if
 * its claim were lost (a call in flight may still land: the policy is marked
 * for re-verification) and the records are parked, to be applied at the
 * account's own pace by the redriver. The worker's own account is never
 * given up: all of its records would only move from the shard to the park.
 */
export class SlowAccount {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;

  /**
   * `hold`: since when the account alone holds the batch (BatchHold.aloneSince;
   * undefined while others hold it too), how much longer its unsettled
   * policies would hold it at their pace so far (BatchHold.projectedMs),
   * that pace against the other accounts' (BatchHold.paceAgainstOthers), and
   * which other accounts settled policies of the batch (BatchHold.othersSettled).
   */
  constructor(
    private readonly account: string,
    private readonly hold: AccountHold,
    private readonly options: ParkingOptions & { rateBoundLately: (account: string) => boolean },
  ) {
    this.timer = setInterval(() => this.look(), Math.min(SLOW_CHECK_MS, options.afterMs));
    this.timer.unref();
    this.look();
  }

  /** Aborts with `account-slow` once the records have waited long enough and the account is rate-bound. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Looks at the wait (on a timer, every second at most): aborts once the account is to be given up. */
  look(): void {
    if (this.controller.signal.aborted) return;
    const since = this.hold.aloneSince();
    if (since === undefined || !this.options.rateBoundLately(this.account)) return;
    // Busy like the others, not slow: it waits as theirs did (no other account to compare with: judged by time alone).
    const pace = this.hold.paceAgainstOthers();
    if (pace !== undefined && pace >= SLOWER_THAN_OTHERS) return;
    // A pace is this record processor's, and the account's rate is shared by the host's: a busy
    // account's share here can be a fraction of the others', whose few records of the batch went in a
    // burst (the benchmark parked such an account at its full rate). Slow is what IAM allows it, host-wide.
    const rate = this.options.allowedRate ? rateAgainstOthers(this.account, this.hold.othersSettled(), this.options.allowedRate) : undefined;
    if (rate !== undefined && rate.ratio >= SLOWER_THAN_OTHERS) return;
    const held = (this.options.now ?? Date.now)() - since;
    // Alone for a look at least, and even at twice its pace so far it would hold the batch past
    // IPS_PARK_AFTER_MS: waiting that long first would only keep the other accounts' next records
    // waiting for the same end. (At its pace alone, a busy account near the limit was given up in
    // the benchmark: a pace is a guess, so only a clear case is judged before its time.)
    const projected = this.hold.projectedMs();
    const hopeless = held >= Math.min(SLOW_CHECK_MS, this.options.afterMs) && held + projected / 2 >= this.options.afterMs;
    if (held < this.options.afterMs && !hopeless) return;
    this.stop();
    const why = held < this.options.afterMs ? `would at its pace so far hold it ${Math.round(projected)} ms more` : `alone held it ${held} ms`;
    const rates = rate ? `; IAM allows it ${round(rate.mine)} calls/s on this host, the batch's other accounts up to ${round(rate.fastest)}` : '';
    this.controller.abort(
      new TransientError(
        'account-slow',
        `account ${this.account}'s IAM is rate-bound (throttled, or its calls held by the host's gate for its rate) and its records ${why} (IPS_PARK_AFTER_MS ${this.options.afterMs})${rates}: parked, to be applied at the account's pace`,
      ),
    );
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** A rate as a log line says it: two decimals at most, `no limit` for Infinity. */
function round(perSecond: number): string {
  return perSecond === Infinity ? 'no limit' : String(Math.round(perSecond * 100) / 100);
}
