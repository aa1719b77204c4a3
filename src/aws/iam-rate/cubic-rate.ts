// The send rate IAM allows, learned from its throttling (CUBIC, as in the AWS
// SDKs' adaptive retry mode): down to 70% of the measured rate on a throttle,
// then back up along a cubic curve. At most one decrease per round trip: a
// burst of throttles answering one burst of calls is one signal.

const BETA = 0.7;
const SCALE = 0.4;
/** The slowest the gate ever goes, calls per second: a token at least every 2 s while calls wait. */
export const MIN_RATE = 0.5;

/** How long after the first throttle IAM's acceptances of the burst it answered still count (the round trip of an accepted call). */
const FIRST_ANSWERS_MS = 500;

/** Undefined until the first throttle: no limit. */
export class CubicRate {
  private rate: number | undefined;
  private lastMax = 0;
  private lastThrottle = 0;
  private window = 0;
  /** Calls counted per half-second bucket, smoothed: the rate actually sent. */
  private measured = 0;
  private bucketStart = 0;
  private bucketCount = 0;
  /** When the calls IAM accepted in the last second were answered: the first throttle's measure. */
  private readonly accepted: number[] = [];
  /** When IAM first throttled: answers to the burst it answered may still come in for a while (FIRST_ANSWERS_MS). */
  private firstThrottle: number | undefined;

  constructor(private readonly now: () => number = Date.now) {
    this.bucketStart = now();
  }

  /** Calls per second allowed now; undefined while no throttle was seen. */
  current(): number | undefined {
    if (this.rate === undefined) return undefined;
    // Between throttles the rate climbs back along the cubic curve, then beyond the last maximum.
    const t = (this.now() - this.lastThrottle) / 1000;
    const cubic = SCALE * (t - this.window) ** 3 + this.lastMax;
    // Never more than twice what is actually sent: an idle spell does not open the gate wide.
    return Math.max(MIN_RATE, Math.min(cubic, Math.max(2 * this.measured, this.rate)));
  }

  /** A call was sent. */
  sent(): void {
    const now = this.now();
    this.bucketCount++;
    if (now - this.bucketStart >= 500) {
      const rate = this.bucketCount / ((now - this.bucketStart) / 1000);
      this.measured = 0.8 * rate + 0.2 * this.measured;
      this.bucketStart = now;
      this.bucketCount = 0;
    }
  }

  /**
   * IAM answered a call without throttling it. Until the first throttle the gate sends without a
   * limit, often one burst (a shard's first batch) in less time than the
   * half-second measure takes: what IAM accepted in the last second is then
   * the rate it allows, not the burst sent (mostly refused) nor a measure
   * not yet taken (no rate: the gate would drop to its floor and leave the
   * account's tokens unused for the seconds it takes to climb back). IAM
   * answers a throttle at once and an accepted call in its own time, so the
   * first throttle often comes before the acceptances of its burst: those
   * that come within FIRST_ANSWERS_MS raise the first decrease's measure.
   */
  answered(): void {
    const now = this.now();
    this.accepted.push(now);
    while (this.accepted[0]! <= now - 1_000) this.accepted.shift();
    if (this.firstThrottle !== undefined && now - this.firstThrottle < FIRST_ANSWERS_MS && this.accepted.length > this.lastMax) this.decrease(this.accepted.length, this.firstThrottle);
  }

  /**
   * IAM throttled a call. One decrease per round trip: throttles within
   * `coalesceMs` of the last decrease answer the same burst.
   */
  throttled(coalesceMs = 500): void {
    const now = this.now();
    if (this.rate !== undefined && now - this.lastThrottle < coalesceMs) return;
    if (this.rate === undefined) {
      this.firstThrottle = now;
      this.decrease(Math.max(this.measured, this.accepted.filter((at) => at > now - 1_000).length, MIN_RATE), now);
      return;
    }
    this.decrease(Math.min(this.current() ?? this.measured, Math.max(this.measured, MIN_RATE)), now);
  }

  /** To BETA of `base` at `at`, from where the rate climbs back along the cubic curve. */
  private decrease(base: number, at: number): void {
    this.lastMax = base;
    this.window = Math.cbrt((base * (1 - BETA)) / SCALE);
    this.lastThrottle = at;
    this.rate = Math.max(MIN_RATE, base * BETA);
  }
}
