// The ledger's contract: one entry per policy, claimed before IAM is touched
// and completed (fenced by the claim token) after. DynamoDbLedger is the real
// store; unit tests use an in-memory one with the same semantics.
import type { PolicyDocument } from '../contract/event.js';
import type { RecordPosition } from '../contract/record-id.js';
import type { LedgerPosition } from './position.js';
import { covers } from './position.js';
import { verdictOf } from './verdict.js';
import type { Knowledge } from './verdict.js';

export type PolicyState = 'present' | 'deleted' | 'retained-in-use' | 'unknown';

/**
 * What the ledger last applied for a policy: where it lives and, while it is
 * present, its whole desired state. Re-verification after a lost claim, the
 * drift audit and a delete that names no path read it.
 */
export interface DesiredState {
  path: string;
  document?: PolicyDocument;
  tags?: Record<string, string>;
  description?: string;
}

export interface LedgerEntry {
  policy: string;
  /** Ledger generation; a re-apply replay moves the ledger to a new epoch. */
  epoch: number;
  /** The last settled record of the policy and its shard's lineage (position.ts). */
  position?: LedgerPosition;
  /** Last applied revision, when events carry one. */
  revision?: number;
  /** Events applied most recently, oldest first (bounded): a producer retry is recognised by its eventId. */
  events: RememberedEvent[];
  docHash?: string;
  state?: PolicyState;
  desired?: DesiredState;
  /**
   * IAM's version ids of the policy as the last completion's step left them,
   * oldest first, the last one the default; absent when that step could not
   * tell (or no step has said yet). Lets the next update of a policy the
   * ledger vouches for be written without reading IAM (iam/reconciler.ts).
   */
  iamVersions?: string[];
  /** When the last completion was written (ISO time), and the outcome of the event it applied. */
  updatedAt?: string;
  lastOutcome?: string;
  /**
   * Re-verification marks: a worker that lost its claim after its IAM step
   * began adds one; a step that read IAM and converged it to `desired` sets
   * `verifiedUpTo` to the count it saw when it claimed. IAM needs a look while
   * `verifyRequested` > `verifiedUpTo` (needsVerification).
   */
  verifyRequested?: number;
  verifiedUpTo?: number;
  /**
   * Epoch ms before which a write of a lost claim may still land in IAM
   * (Config.lateWriteMs after the loss): a look at IAM before then does not
   * answer the marks, and a verification claim waits for it.
   */
  verifyAfter?: number;
  claim?: { owner: string; token: string; expiresAt: number; sequence: string };
}

/** An applied event as the ledger remembers it. */
export interface RememberedEvent {
  eventId: string;
  /** Hash of the event's canonical payload (contract/payload-hash.ts); absent in entries written before it was kept. */
  payloadHash?: string;
}

/** IAM writes of a lost claim may land for `ms` after `from` (epoch ms, on the ledger's clock; default: now). */
export interface LateWrites {
  ms: number;
  from?: number;
}

export interface ClaimRequest {
  policy: string;
  /** The record of the event to apply. */
  record: RecordPosition;
  eventId: string;
  payloadHash: string;
  revision?: number;
  /** Who claims: worker, shard and process; a re-claim by the same owner extends its claim. */
  owner: string;
  epoch: number;
}

export type ClaimRefusal = 'duplicate-sequence' | 'duplicate-event-id' | 'event-id-conflict' | 'stale-revision' | 'claimed-elsewhere' | 'verification-waits';

export type ClaimResult =
  | { won: true; token: string; expiresAt: number; previous: LedgerEntry | undefined; takenOver: boolean }
  | { won: false; because: ClaimRefusal; entry: LedgerEntry };

export interface CompletionRequest {
  policy: string;
  token: string;
  epoch: number;
  /** The position moves to the last settled record of the policy, with its shard's lineage. */
  position: LedgerPosition;
  revision?: number;
  events: RememberedEvent[];
  docHash?: string;
  state: PolicyState;
  desired?: DesiredState;
  /** IAM's version ids after the step (LedgerEntry.iamVersions); absent: not known, and any earlier value is removed. */
  iamVersions?: string[];
  /** The entry's verifyRequested when the claim was won: the step read IAM, so every mark up to it is answered. */
  verifiedUpTo?: number;
  outcome: string;
}

export interface Ledger {
  /**
   * The epoch a shard's pipeline works in: the highest of the ledger-wide
   * epoch and those of the shard and its ancestors (a re-apply replay of one
   * shard moves only that shard's lineage to a new epoch).
   */
  currentEpoch(shards?: string[]): Promise<number>;
  claim(request: ClaimRequest): Promise<ClaimResult>;
  /** Throws ClaimLostError when the claim is no longer ours (expired and taken over). */
  complete(request: CompletionRequest): Promise<void>;
  /** Extends a claim we hold; returns its new expiry. Throws ClaimLostError when it is no longer ours. */
  renew(policy: string, token: string): Promise<number>;
  /**
   * Asks for IAM to be re-read and converged to `desired` by the next step on
   * the policy. `lateWrites`: a write of a lost claim may land until then, so
   * no look at IAM before it answers the mark (sets `verifyAfter`).
   */
  requestVerification(policy: string, lateWrites?: LateWrites): Promise<void>;
  /**
   * Claims a policy only to re-verify it (no event to apply): won when a
   * verification is owed, its `verifyAfter` has passed (else refused as
   * `verification-waits`) and no other owner holds a live claim.
   */
  claimVerification(policy: string, owner: string): Promise<ClaimResult>;
  /**
   * Ends a verification claim: the marks up to `verifiedUpTo` are answered, and
   * `iamVersions` is forgotten (the converging write made a version it does
   * not count). Throws ClaimLostError.
   */
  completeVerification(policy: string, token: string, verifiedUpTo: number): Promise<void>;
  /**
   * Keeps applied events that leave the entry's window of recent eventIds
   * (`events`), one small item each with a time to live (Config.eventIdTtlDays),
   * so that a producer retry of one is still recognised.
   */
  archiveEvents(policy: string, epoch: number, events: RememberedEvent[]): Promise<void>;
  /** The archived events among `eventIds`, of `epoch` or later (a re-apply replay forgets the rest). */
  archivedEvents(policy: string, epoch: number, eventIds: string[]): Promise<RememberedEvent[]>;
}

/** IAM must be re-read before the ledger's word on this policy is trusted. */
export function needsVerification(entry: LedgerEntry | undefined): boolean {
  return entry !== undefined && (entry.verifyRequested ?? 0) > (entry.verifiedUpTo ?? 0);
}

/**
 * Whether a step that claimed the policy at `claimedAt` (and so read IAM
 * after it) answers the marks it saw: only once no late write can land.
 */
export function answersMarks(entry: LedgerEntry | undefined, claimedAt: number): boolean {
  return (entry?.verifyAfter ?? 0) <= claimedAt;
}


/**
 * Why a claim was refused, judged from the entry that refused it, in the one
 * order of verdict.ts. The entry's window holds the recent eventIds only: a
 * `stale-revision` from a full window may still be an archived eventId
 * (policy-batch.ts looks there before it settles the event).
 */
export function explainRefusal(entry: LedgerEntry, request: ClaimRequest, now: number): ClaimRefusal {
  if (entry.claim && entry.claim.owner !== request.owner && entry.claim.expiresAt >= now) return 'claimed-elsewhere';
  if (entry.epoch >= request.epoch) {
    const verdict = verdictOf(knowledgeOf(entry, request.record, request.eventId), request);
    if (verdict) return verdict;
  }
  // The condition failed but nothing explains it: the entry changed between the
  // write and its returned image. Treat it as a held claim and try again later.
  return 'claimed-elsewhere';
}

/** What an entry (of the current epoch) knows about an event; `archived`: what the archive returned for its eventId. */
export function knowledgeOf(entry: LedgerEntry | undefined, record: RecordPosition, eventId: string, archived: RememberedEvent[] = []): Knowledge {
  return {
    covered: covers(entry?.position, record),
    remembered: entry?.events.find((event) => event.eventId === eventId) ?? archived.find((event) => event.eventId === eventId),
    revision: entry?.revision,
  };
}

/** Whether the window may have dropped events into the archive: it is full. */
export function windowFull(entry: LedgerEntry | undefined, limit: number): boolean {
  return (entry?.events.length ?? 0) >= limit;
}

/**
 * The remembered events after applying `applied`, bounded to `limit`
 * (`kept`), and those dropped for it, oldest first (`forgotten`: the archive
 * keeps them, Ledger.archiveEvents).
 */
export function rememberEvents(previous: RememberedEvent[], applied: RememberedEvent[], limit: number): { kept: RememberedEvent[]; forgotten: RememberedEvent[] } {
  const ids = new Set(applied.map((event) => event.eventId));
  const merged = [...previous.filter((event) => !ids.has(event.eventId)), ...applied];
  const cut = Math.max(0, merged.length - limit);
  return { kept: merged.slice(cut), forgotten: merged.slice(0, cut) };
}
