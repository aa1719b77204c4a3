// Where a policy's stream stands in the ledger: the last settled record of the
// policy, and the lineage of the shard it came from.
//
// Sequence numbers order records within one shard only. Across shards they are
// not comparable: after a reshard a child's numbers may run lower than its
// parent's last one. The order that does hold is the shard lineage the KCL
// enforces: a child is processed only after its parents reached SHARD_END. So
// the position keeps the ancestors of its shard, and a record is covered
// (already settled) when it lies on the same shard at or before the position,
// or on one of the position's ancestor shards (a replay of a parent after its
// child moved on). A record on a descendant shard, or on a shard unrelated to
// the position's, is new: with the partition key required to be the policy
// name, a policy's records only ever move from a shard to its descendants.
import type { RecordPosition } from '../contract/record-id.js';
import { compareSequence } from './sequence.js';

export interface LedgerPosition extends RecordPosition {
  /** Ancestor shard ids of `shardId` (parents, their parents, ...), as far as the stream still lists them. */
  lineage: string[];
}

/** True when `record` lies at or before `position` in the policy's stream order. */
export function covers(position: LedgerPosition | undefined, record: RecordPosition): boolean {
  if (!position) return false;
  if (position.shardId === record.shardId) return compareWithin(position, record) >= 0;
  return position.lineage.includes(record.shardId);
}

/** Order of two positions on the same shard: sequence number, then subsequence number. */
export function compareWithin(a: RecordPosition, b: RecordPosition): number {
  return compareSequence(a.sequenceNumber, b.sequenceNumber) || Math.sign(a.subSequenceNumber - b.subSequenceNumber);
}
