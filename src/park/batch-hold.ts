// Which account holds a batch: a batch is answered (and the shard's
// checkpoint moves) only once every record in it has an outcome, so the
// account whose policies are still unsettled after every other account's
// have settled is the one the other accounts' next records wait for. A slow
// account is given up only then (parking.ts, SlowAccount): an account that
// is merely busy, its policies settling beside the others', is never parked
// for being slow.

/** One account's view of the batch (BatchHold.seenBy). */
export interface AccountHold {
  aloneSince(): number | undefined;
  projectedMs(): number;
  paceAgainstOthers(): number | undefined;
  othersSettled(): string[];
}

export class BatchHold {
  /** Unsettled policies per account ('' for the worker's own, or for records that are not a policy's). */
  private readonly pending = new Map<string, number>();
  /** When an account's last policy of the batch settled. */
  private readonly doneAt = new Map<string, number>();
  /** Policies settled by a step of their own, per account (parked ones are not). */
  private readonly done = new Map<string, number>();

  constructor(
    accounts: string[],
    private readonly started: number,
    private readonly now: () => number = Date.now,
  ) {
    for (const account of accounts) this.pending.set(account, (this.pending.get(account) ?? 0) + 1);
  }

  /**
   * A policy (or a record that is not a policy's) of `account` has its
   * outcome; `stepped`: by a step of its own (a parked one says nothing of
   * the account's pace).
   */
  settled(account: string, stepped = true): void {
    const left = (this.pending.get(account) ?? 1) - 1;
    this.pending.set(account, left);
    if (stepped) this.done.set(account, (this.done.get(account) ?? 0) + 1);
    if (left === 0) this.doneAt.set(account, this.now());
  }

  /**
   * How much longer `account`'s unsettled policies would hold the batch at the
   * pace it settled its others in it (ms). Before it settled one, as if one
   * settled now: the most its pace can be.
   */
  projectedMs(account: string): number {
    const done = Math.max(1, this.done.get(account) ?? 0);
    return ((this.pending.get(account) ?? 0) * (this.now() - this.started)) / done;
  }

  /**
   * `account`'s pace in the batch against the other accounts': its policies
   * settled per second so far (as if one settled now, before any did), over
   * theirs per account until the last of them settled. Target accounts only
   * (the own account's key '' also counts the batch's invalid records, which
   * settle at once). Undefined without another account that settled a policy.
   */
  paceAgainstOthers(account: string): number | undefined {
    const others = this.othersSettled(account);
    if (others.length === 0) return undefined;
    const othersDone = others.reduce((sum, other) => sum + this.done.get(other)!, 0);
    const now = this.now();
    const theirs = othersDone / others.length / Math.max(1, (this.aloneSince(account) ?? now) - this.started);
    const mine = Math.max(1, this.done.get(account) ?? 0) / Math.max(1, now - this.started);
    return mine / theirs;
  }

  /** The target accounts other than `account` that settled a policy of the batch by a step: its yardstick. */
  othersSettled(account: string): string[] {
    return [...this.done].filter(([other, done]) => other !== account && other !== '' && done > 0).map(([other]) => other);
  }

  /** The batch as one account sees it: what SlowAccount judges it by. */
  seenBy(account: string): AccountHold {
    return {
      aloneSince: () => this.aloneSince(account),
      projectedMs: () => this.projectedMs(account),
      paceAgainstOthers: () => this.paceAgainstOthers(account),
      othersSettled: () => this.othersSettled(account),
    };
  }

  /** Since when `account` alone holds the batch (every other account's policies settled); undefined while another's are unsettled. */
  aloneSince(account: string): number | undefined {
    let since = this.started;
    for (const [other, left] of this.pending) {
      if (other === account) continue;
      if (left > 0) return undefined;
      since = Math.max(since, this.doneAt.get(other) ?? this.started);
    }
    return since;
  }
}
