// The send rate IAM allows, learned from its throttling (CUBIC, as in the AWS
// SDKs' adaptive retry mode): down to 70% of the measured rate on a throttle,
// then back up along a cubic curve. At most one decrease per round trip: a
// burst of throttles answering one burst of calls is one signal.

const BETA = 0.7;
const SCALE = 0.4;
/** The slowest the gate ever goes, calls per second: a token at least every 2 s while calls wait. */
export const MIN_RATE = 0.5;

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
   * IAM throttled a call. One decrease per round trip: throttles within
   * `coalesceMs` of the last decrease answer the same burst.
   */
  throttled(coalesceMs = 500): void {
    const now = this.now();
    if (this.rate !== undefined && now - this.lastThrottle < coalesceMs) return;
    const base = this.rate === undefined ? Math.max(this.measured, MIN_RATE) : Math.min(this.current() ?? this.measured, Math.max(this.measured, MIN_RATE));
    this.lastMax = base;
    this.window = Math.cbrt((base * (1 - BETA)) / SCALE);
    this.lastThrottle = now;
    this.rate = Math.max(MIN_RATE, base * BETA);
  }
}
