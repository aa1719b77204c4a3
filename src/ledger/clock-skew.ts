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

/**
 * Refuses a claim (TransientError `clock-skew`: the record stays unsettled and
 * is tried again) while the measured offset exceeds `boundMs`; publishes the
 * offset as the `clock_offset_ms` gauge.
 *
 * An offset past the bound is measured again (`remeasure`, a read whose
 * answer carries AWS's Date) before a claim is refused on it, and decided on
 * the fresh sample. The SDK's sample is AWS's Date minus the time this
 * process read the answer: a delay in reading it (a busy event loop, a
 * process thawed after a pause with answers waiting) makes this host look
 * ahead of AWS, never behind. So a sample that says "ahead" gets a second
 * one, and a clock that is really off fails both. Without measuring again, a
 * refused claim (which writes nothing) would also see a clock put right only
 * at the next call of another kind.
 */
export class ClockSkewGuard {
  private skewed = false;
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
      if (this.skewed) this.watch.logger?.info({ clockOffsetMs: offset, boundMs: this.boundMs }, "clock back within the bound of AWS's: claims resume");
      this.skewed = false;
      return;
    }
    this.watch.metrics?.increment(METRIC.claimsRefused, { because: 'clock-skew' });
    if (!this.skewed) {
      this.watch.logger?.error(
        { clockOffsetMs: offset, boundMs: this.boundMs },
        "this host's clock is too far from AWS's to claim safely: no claim is made until it is back within the bound (fix the host's time sync); records wait unsettled",
      );
    }
    this.skewed = true;
    throw new TransientError(
      'clock-skew',
      `${what} of ${policy} refused: this host's clock is ${Math.abs(offset)} ms ${offset > 0 ? 'behind' : 'ahead of'} AWS's, more than the ${this.boundMs} ms a claim tolerates`,
    );
  }

  private within(): boolean {
    return Math.abs(this.offsetMs) <= this.boundMs;
  }

  /** Fresh samples, shared by the claims that wait on them: one, or two while the sample says this host is ahead. */
  private measureAgain(): Promise<void> {
    if (!this.remeasure) return Promise.resolve();
    this.measuring ??= this.sample().finally(() => (this.measuring = undefined));
    return this.measuring;
  }

  private async sample(): Promise<void> {
    for (let samples = 0; samples < 2 && !this.within(); samples++) {
      if (samples === 1 && this.offsetMs > 0) return; // behind: no delay makes a clock look behind
      await this.remeasure!().catch(() => undefined); // a failed read says nothing new; the refusal stands
    }
  }
}
