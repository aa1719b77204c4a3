// Knows how far a batch may be checkpointed: up to the last record of the
// longest settled prefix. A checkpoint means "processed up to and including
// this record", so it must never pass a record that has no outcome yet, even
// when later records (of other policies) settled first.
//
// Records are user records: one KPL aggregate is several records with one
// sequence number. The daemon's protocol, as the Node library speaks it,
// checkpoints a sequence number alone, which the KCL records as (sequence
// number, subsequence 0). Checkpointing the sequence number of a prefix that
// ends inside an aggregate is therefore never past an unsettled record; after
// a restart the aggregate's later user records are delivered again, and the
// ledger, whose position counts subsequences, settles those already applied
// as duplicates (docs/design.md, "Checkpoints and KPL aggregates").
import type { RecordPosition } from '../contract/record-id.js';

export class CheckpointTracker {
  private readonly settled: boolean[];
  private prefix = 0; // records [0, prefix) are settled

  constructor(private readonly records: readonly RecordPosition[]) {
    this.settled = records.map(() => false);
  }

  markSettled(index: number): void {
    this.settled[index] = true;
    while (this.prefix < this.settled.length && this.settled[this.prefix]) this.prefix++;
  }

  /** The last record of the settled prefix, if any. */
  safePosition(): RecordPosition | undefined {
    return this.prefix === 0 ? undefined : this.records[this.prefix - 1];
  }

  get complete(): boolean {
    return this.prefix === this.settled.length;
  }

  /** The index of the first record without an outcome (the oldest unsettled one), if any. */
  firstUnsettled(): number | undefined {
    return this.prefix < this.settled.length ? this.prefix : undefined;
  }

  /** How many records of the batch have their outcome. */
  get settledCount(): number {
    return this.settled.reduce((count, settled) => count + (settled ? 1 : 0), 0);
  }
}
