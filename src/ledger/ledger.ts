// The ledger's contract: one entry per policy, claimed before IAM is touched
// and completed (fenced by the claim token) after. DynamoDbLedger is the real
// store; unit tests use an in-memory one with the same semantics.

export type PolicyState = 'present' | 'deleted' | 'retained-in-use' | 'unknown';

export interface LedgerEntry {
  policy: string;
  /** Ledger generation; a re-apply replay moves the ledger to a new epoch. */
  epoch: number;
  /** High-water mark: the highest settled sequence number, zero-padded (sequence.ts). */
  hwm?: string;
  /** Last applied revision, when events carry one. */
  revision?: number;
  /** eventIds applied most recently, oldest first (bounded). */
  eventIds: string[];
  docHash?: string;
  state?: PolicyState;
  claim?: { owner: string; token: string; expiresAt: number; sequence: string };
}

export interface ClaimRequest {
  policy: string;
  /** Raw Kinesis sequence number of the event to apply. */
  sequenceNumber: string;
  eventId: string;
  revision?: number;
  /** Who claims: worker, shard and process; a re-claim by the same owner extends its claim. */
  owner: string;
  epoch: number;
}

export type ClaimRefusal = 'duplicate-sequence' | 'duplicate-event-id' | 'stale-revision' | 'claimed-elsewhere';

export type ClaimResult =
  | { won: true; token: string; previous: LedgerEntry | undefined; takenOver: boolean }
  | { won: false; because: ClaimRefusal; entry: LedgerEntry };

export interface CompletionRequest {
  policy: string;
  token: string;
  epoch: number;
  /** Raw sequence number the high-water mark moves to (the last settled record of the policy). */
  sequenceNumber: string;
  shardId: string;
  revision?: number;
  eventIds: string[];
  docHash?: string;
  state: PolicyState;
  outcome: string;
}

export interface Ledger {
  currentEpoch(): Promise<number>;
  claim(request: ClaimRequest): Promise<ClaimResult>;
  /** Throws ClaimLostError when the claim is no longer ours (expired and taken over). */
  complete(request: CompletionRequest): Promise<void>;
}

/** The claim was taken over by another owner: this worker must not record the outcome. */
export class ClaimLostError extends Error {
  override name = 'ClaimLostError';
}

/** Why a claim was refused, judged from the entry that refused it. */
export function explainRefusal(entry: LedgerEntry, request: ClaimRequest, now: number, paddedSequence: string): ClaimRefusal {
  if (entry.claim && entry.claim.owner !== request.owner && entry.claim.expiresAt >= now) return 'claimed-elsewhere';
  if (entry.epoch >= request.epoch) {
    if (entry.hwm !== undefined && entry.hwm >= paddedSequence) return 'duplicate-sequence';
    if (entry.eventIds.includes(request.eventId)) return 'duplicate-event-id';
    if (request.revision !== undefined && entry.revision !== undefined && entry.revision >= request.revision) return 'stale-revision';
  }
  // The condition failed but nothing explains it: the entry changed between the
  // write and its returned image. Treat it as a held claim and try again later.
  return 'claimed-elsewhere';
}

/** The eventIds list after applying `applied`, bounded to `limit`, oldest dropped first. */
export function rememberEventIds(previous: string[], applied: string[], limit: number): string[] {
  const merged = [...previous.filter((id) => !applied.includes(id)), ...applied];
  return merged.slice(Math.max(0, merged.length - limit));
}
