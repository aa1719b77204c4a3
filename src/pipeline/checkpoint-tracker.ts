// Knows how far a batch may be checkpointed: up to the last record of the
// longest settled prefix. A checkpoint means "processed up to and including
// this record", so it must never pass a record that has no outcome yet, even
// when later records (of other policies) settled first.
export class CheckpointTracker {
  private readonly settled: boolean[];
  private prefix = 0; // records [0, prefix) are settled

  constructor(private readonly sequenceNumbers: string[]) {
    this.settled = sequenceNumbers.map(() => false);
  }

  markSettled(index: number): void {
    this.settled[index] = true;
    while (this.prefix < this.settled.length && this.settled[this.prefix]) this.prefix++;
  }

  /** Sequence number of the last record of the settled prefix, if any. */
  safeSequenceNumber(): string | undefined {
    return this.prefix === 0 ? undefined : this.sequenceNumbers[this.prefix - 1];
  }

  get complete(): boolean {
    return this.prefix === this.settled.length;
  }
}
