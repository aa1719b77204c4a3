// A record's identity in the stream: (shard, sequence number, subsequence
// number). A KPL-aggregated Kinesis record carries many user records; the KCL
// hands each one over with the aggregate's sequence number and its own
// subsequence number (0 for a record that was not aggregated). Every place
// that names a record (dead letters, outcome lines, the ledger's position,
// the checkpoint tracker, the invariant checker) names it by this identity.

export interface RecordPosition {
  shardId: string;
  /** The Kinesis sequence number, a decimal string (see ledger/sequence.ts). */
  sequenceNumber: string;
  /** The user record's place in its aggregate; 0 when not aggregated. */
  subSequenceNumber: number;
}

/** `<shardId>#<sequenceNumber>#<subSequenceNumber>`: `#` appears in none of the three. */
export function recordId(position: RecordPosition): string {
  return `${position.shardId}#${position.sequenceNumber}#${position.subSequenceNumber}`;
}

/**
 * Reads an id back. `<shardId>#<sequenceNumber>` (dead letters stored before
 * subsequence numbers were part of the id) reads as subsequence 0.
 */
export function parseRecordId(id: string): RecordPosition | undefined {
  const match = /^([^#]+)#(\d{1,129})(?:#(\d{1,19}))?$/.exec(id);
  if (!match) return undefined;
  return { shardId: match[1]!, sequenceNumber: match[2]!, subSequenceNumber: match[3] === undefined ? 0 : Number(match[3]) };
}
