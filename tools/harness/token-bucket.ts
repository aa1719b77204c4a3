// A token bucket, as a service's per-account rate limit works: `ratePerSecond`
// tokens flow in continuously up to `burst`; a call takes one or is refused.
// The fault proxy's rate-limit mode (fault-proxy.ts, `rateLimit`) keeps one per
// account, so every client of an account shares its limit, as with IAM.

export interface TokenBucketOptions {
  /** Tokens added per second (the sustained rate allowed). */
  ratePerSecond: number;
  /** Most tokens held at once (calls allowed in a burst after a quiet spell). Default: one second's worth, at least 1. */
  burst?: number;
  /** Clock in milliseconds (tests give their own). */
  now?: () => number;
}

export class TokenBucket {
  readonly ratePerSecond: number;
  readonly burst: number;
  private tokens: number;
  private last: number;
  private readonly now: () => number;

  constructor(options: TokenBucketOptions) {
    if (!(options.ratePerSecond > 0)) throw new Error(`a token bucket needs a rate above 0, got ${options.ratePerSecond}`);
    this.ratePerSecond = options.ratePerSecond;
    this.burst = Math.max(1, options.burst ?? options.ratePerSecond);
    this.now = options.now ?? Date.now;
    this.tokens = this.burst; // a quiet account starts full
    this.last = this.now();
  }

  /** Takes one token if there is one; false means the call is refused (throttled). */
  tryTake(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Tokens available now (fractional). */
  available(): number {
    this.refill();
    return this.tokens;
  }

  private refill(): void {
    const now = this.now();
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed / 1000) * this.ratePerSecond);
  }
}

/** One bucket per account, made on first use. */
export class AccountBuckets {
  private readonly buckets = new Map<string, TokenBucket>();
  /** Calls let through and refused, per account. */
  readonly counts = new Map<string, { allowed: number; refused: number }>();

  constructor(
    private readonly options: TokenBucketOptions,
    /** Accounts with a rate of their own (calls/s); the burst is then one second's worth of it. */
    private readonly perAccount: Record<string, number> = {},
  ) {}

  tryTake(account: string): boolean {
    let bucket = this.buckets.get(account);
    const own = this.perAccount[account];
    if (!bucket) this.buckets.set(account, (bucket = new TokenBucket(own !== undefined ? { ...this.options, ratePerSecond: own, burst: own } : this.options)));
    const ok = bucket.tryTake();
    const count = this.counts.get(account) ?? { allowed: 0, refused: 0 };
    if (ok) count.allowed++;
    else count.refused++;
    this.counts.set(account, count);
    return ok;
  }
}

/**
 * The account a signed AWS call is made as: the access key id of its SigV4
 * `Authorization` header (`Credential=<key id>/<date>/<region>/<service>/aws4_request`).
 * An access key belongs to one account, so calls under one key share its limit;
 * keys of one account are not told apart (a local stack has one key anyway).
 */
export function accountOf(authorization: string | undefined): string {
  return /Credential=([^/,\s]+)\//.exec(authorization ?? '')?.[1] ?? 'anonymous';
}
