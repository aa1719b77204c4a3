// The claim protocol compares clocks of different hosts: a claim's expiry
// (stamped by its owner) against a taker's `now`, a `verifyAfter` (stamped
// from the owner's expiry) against a verifier's `now`. So a host whose clock
// is far from AWS's must not claim. The SDK measures how far each client's
// clock is from AWS's, from the Date header of every answer
// (`config.systemClockOffset`, AWS's clock minus this host's, in ms); the
// ledger's DynamoDB client is the one that talks to the clock the claims
// live by. docs/ledger.md ("Clocks") derives the bound from the claim's time
// to live; this module is the one place that applies it.
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { METRIC } from '../metrics/metrics.js';
import { TransientError } from '../faults/errors.js';

/**
 * How far two hosts' clocks may differ without harm: the margin a claim's
 * owner keeps before its expiry (it starts no IAM call past
 * `expiry - margin`, pipeline/claim-keeper.ts), a tenth of the time to live,
 * at most 10 s.
 */
export function claimMarginMs(claimTtlMs: number): number {
  return Math.min(10_000, Math.floor(claimTtlMs / 10));
}

/** The Date header counts whole seconds: a measured offset may be a second (and a round trip) from the truth. */
const DATE_HEADER_RESOLUTION_MS = 1_000;
/** Never below what a host whose clock is right may measure (a second, plus a round trip under load). */
const MIN_BOUND_MS = 2 * DATE_HEADER_RESOLUTION_MS;

/**
 * The largest offset from AWS's clock a host may claim with: each of two
 * hosts within half the margin of AWS's clock are within the margin of each
 * other, less the Date header's resolution (docs/ledger.md, "Clocks").
 */
export function clockOffsetBoundMs(claimTtlMs: number): number {
  return Math.max(MIN_BOUND_MS, Math.floor(claimMarginMs(claimTtlMs) / 2) - DATE_HEADER_RESOLUTION_MS);
}

/** A client whose clock offset the SDK measures (a DynamoDBClient). */
export interface MeasuredClock {
  config: { systemClockOffset?: number };
}

export interface ClockSkewWatch {
  metrics?: Metrics;
  logger?: Logger;
}

/** While the clock is past the bound, how often a refusal measures again (a read whose answer carries AWS's Date). */
const REMEASURE_MS = 1_000;

/**
 * Refuses a claim (TransientError `clock-skew`: the record stays unsettled and
 * is tried again) while the measured offset exceeds `boundMs`; publishes the
 * offset as the `clock_offset_ms` gauge. A refusal first measures again with
 * `remeasure` (at most once a second): a refused claim writes nothing, so
 * without it a clock put right would be seen only at the next call of another
 * kind.
 */
export class ClockSkewGuard {
  private skewed = false;
  private lastMeasured = -Infinity;
  private measuring: Promise<void> | undefined;

  constructor(
    private readonly clock: MeasuredClock,
    readonly boundMs: number,
    private readonly watch: ClockSkewWatch = {},
    private readonly remeasure?: () => Promise<unknown>,
  ) {
    watch.metrics?.gauge(METRIC.clockOffsetMs, () => this.offsetMs);
  }

  /** AWS's clock minus this host's, as last measured (0 before any answer). */
  get offsetMs(): number {
    return this.clock.config.systemClockOffset ?? 0;
  }

  /** Throws while this host may not claim; `what` names the write refused (claim, verification claim, renewal). */
  async check(what: string, policy: string): Promise<void> {
    if (!this.within()) await this.measureAgain();
    const offset = this.offsetMs;
    if (this.within()) {
      if (this.skewed) this.watch.logger?.info({ clockOffsetMs: offset, boundMs: this.boundMs }, 'clock back within the bound of AWS\'s: claims resume');
      this.skewed = false;
      return;
    }
    this.watch.metrics?.increment(METRIC.claimsRefused, { because: 'clock-skew' });
    if (!this.skewed) {
      this.watch.logger?.error(
        { clockOffsetMs: offset, boundMs: this.boundMs },
        'this host\'s clock is too far from AWS\'s to claim safely: no claim is made until it is back within the bound (fix the host\'s time sync); records wait unsettled',
      );
    }
    this.skewed = true;
    throw new TransientError('clock-skew', `${what} of ${policy} refused: this host's clock is ${Math.abs(offset)} ms ${offset > 0 ? 'behind' : 'ahead of'} AWS's, more than the ${this.boundMs} ms a claim tolerates`);
  }

  private within(): boolean {
    return Math.abs(this.offsetMs) <= this.boundMs;
  }

  /** One measurement at a time, at most one a second (a monotonic clock: the wall clock is the suspect). */
  private measureAgain(): Promise<void> {
    if (!this.remeasure) return Promise.resolve();
    if (this.measuring) return this.measuring;
    if (performance.now() - this.lastMeasured < REMEASURE_MS) return Promise.resolve();
    this.lastMeasured = performance.now();
    this.measuring = this.remeasure()
      .then(() => undefined, () => undefined) // a failed read says nothing new; the refusal stands
      .finally(() => (this.measuring = undefined));
    return this.measuring;
  }
}
