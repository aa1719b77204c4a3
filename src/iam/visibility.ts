// IAM's eventual consistency, as the IAM step weighs it: a policy the ledger
// says is present that IAM does not show is read lag (a policy just created
// is invisible for seconds), for a bounded window; past it, the policy is
// taken as gone (deleted out of band).
import { TransientError } from '../faults/errors.js';

/** Policies remembered as "not visible yet" at most; the oldest is forgotten first. */
const MAX_UNSEEN = 10_000;

export class Visibility {
  /** ARN -> when IAM first denied a policy the ledger says is present. */
  private readonly unseenSince = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  /** IAM showed the policy. */
  seen(arn: string): void {
    this.unseenSince.delete(arn);
  }

  /**
   * IAM does not show the policy: throws (TransientError
   * iam-not-yet-visible) while that is read lag, that is while the ledger
   * says it is present (`ledgerSaysPresent`) and the window has not passed.
   */
  await(arn: string, ledgerSaysPresent: boolean): void {
    if (!ledgerSaysPresent) return;
    const now = this.now();
    const since = this.unseenSince.get(arn);
    if (since === undefined) {
      if (this.unseenSince.size >= MAX_UNSEEN) this.unseenSince.delete(this.unseenSince.keys().next().value!);
      this.unseenSince.set(arn, now);
    } else if (now - since >= this.windowMs) {
      this.unseenSince.delete(arn);
      return;
    }
    throw new TransientError('iam-not-yet-visible', `${arn}: IAM does not show the policy yet, the ledger says it is present`);
  }

  /**
   * Whether `key` is still inside its window, the first call opening it.
   * Unlike await(), a window that has passed stays passed until seen(key):
   * every later step gets the verdict at once, not a new window each.
   */
  within(key: string): boolean {
    const now = this.now();
    const since = this.unseenSince.get(key);
    if (since !== undefined) return now - since < this.windowMs;
    if (this.unseenSince.size >= MAX_UNSEEN) this.unseenSince.delete(this.unseenSince.keys().next().value!);
    this.unseenSince.set(key, now);
    return true;
  }
}
