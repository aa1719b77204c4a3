import type { PolicyEvent } from '../contract/event.js';
import type { AppliedStep, Outcome } from '../contract/outcome.js';
import type { RecordPosition } from '../contract/record-id.js';
import type { DeadLetterSink } from '../deadletter/dead-letter-store.js';
import type { DedupCache } from '../ledger/dedup-cache.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { StepHint } from '../iam/reconciler.js';

/**
 * One record as the pipeline sees it: a Kinesis record, or one user record of
 * a KPL aggregate (same sequence number, its own subsequence number).
 */
export interface StreamRecord extends RecordPosition {
  partitionKey: string;
  data: Buffer;
  /** Position in its batch. */
  index: number;
  /** When the record reached the stream (approximateArrivalTimestamp), epoch ms. */
  arrivedAt?: number;
  /** When this process received it, epoch ms. */
  receivedAt: number;
}

/** A record that passed validation, with its event. */
export interface ValidRecord {
  record: StreamRecord;
  event: PolicyEvent;
  /** Hash of the event's canonical payload (contract/payload-hash.ts). */
  payloadHash: string;
}

export interface Settlement {
  record: StreamRecord;
  outcome: Outcome;
  /** Why, for `rejected` (a reason code), and where a duplicate was caught (cache or ledger). */
  reason?: string;
  eventId?: string;
  policyName?: string;
  /** The account the event named, if it named one. */
  account?: string;
}

/** What the ledger knew before this step, and what bounds it (iam/reconciler.ts, StepHint). */
export type ApplyHint = StepHint;

/**
 * The IAM step of an event. Its answer is the step (outcome and the versions it
 * left), or the outcome alone from an applier that knows nothing of versions
 * (then the ledger holds none for the next step).
 */
export interface Applier {
  apply(event: PolicyEvent, hint?: ApplyHint): Promise<AppliedStep>;
}

export interface SettleOptions {
  /**
   * Aborts (with a TransientError) when the caller gives the policy up to
   * park its records: the IAM step stops as if its claim were lost, and the
   * policy is marked for re-verification (a cancelled call may still land).
   */
  giveUp?: AbortSignal;
}

export interface PolicyBatchResult {
  settlements: Settlement[];
  /** IAM must be re-verified once a lost claim's late writes can no longer land (takeover, or marks this step was too early to answer): run verifyPolicy, retried, before the batch is done. */
  verificationOwed: boolean;
}

/** What every policy batch of a shard shares (policy-batch.ts). */
export interface PolicyBatchContext {
  ledger: Ledger;
  cache: DedupCache;
  applier: Applier;
  deadLetters: DeadLetterSink;
  metrics: Metrics;
  /** Claim owner: worker, shard and process. */
  owner: string;
  epoch: number;
  recentEventIds: number;
  /** Ancestor shard ids of the shard this pipeline reads (ledger/position.ts). */
  lineage: string[];
  /** How long a claim protects a step (IPS_CLAIM_TTL_MS): the claim keeper renews it at a third of that. */
  claimTtlMs: number;
  /** How long after it was sent an IAM call may still land (IPS_LATE_WRITE_MS): re-verification after a lost claim waits as long. */
  lateWriteMs: number;
}
