// Which account holds a batch: a batch is answered (and the shard's
// checkpoint moves) only once every record in it has an outcome, so the
// account whose policies are still unsettled after every other account's
// have settled is the one the other accounts' next records wait for. A slow
// account is given up only then (parking.ts, SlowAccount): an account that
// is merely busy, its policies settling beside the others', is never parked
// for being slow.

export class BatchHold {
  /** Unsettled policies per account ('' for the worker's own, or for records that are not a policy's). */
  private readonly pending = new Map<string, number>();
  /** When an account's last policy of the batch settled. */
  private readonly doneAt = new Map<string, number>();
  /** Settled policies per account. */
  private readonly done = new Map<string, number>();

  constructor(
    accounts: string[],
    private readonly started: number,
    private readonly now: () => number = Date.now,
  ) {
    for (const account of accounts) this.pending.set(account, (this.pending.get(account) ?? 0) + 1);
  }

  /** A policy (or a record that is not a policy's) of `account` has its outcome. */
  settled(account: string): void {
    const left = (this.pending.get(account) ?? 1) - 1;
    this.pending.set(account, left);
    this.done.set(account, (this.done.get(account) ?? 0) + 1);
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
