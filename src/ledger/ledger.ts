// The ledger's contract: one entry per policy, claimed before IAM is touched
// and completed (fenced by the claim token) after. DynamoDbLedger is the real
// store; unit tests use an in-memory one with the same semantics.
import type { PolicyDocument } from '../contract/event.js';
import type { RecordPosition } from '../contract/record-id.js';
import type { LedgerPosition } from './position.js';
import { compareWithin, covers } from './position.js';
import { verdictOf } from './verdict.js';
import type { Knowledge, KnownVerdict } from './verdict.js';

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
  /**
   * Set by `ips adopt` (Ledger.adopt): the policy was made out of band and
   * taken over as IAM held it, and no event has taken effect since (the first
   * completion that applies one removes it; a refused batch keeps it). Its
   * revision is unknown (no `revision`), so the first event of any revision is
   * claimed (verdict.ts).
   */
  adopted?: { at: string; by: string };
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
  /**
   * `takenOver`: the claim ended another owner's expired claim on its way (its
   * re-verification mark is in the ledger, written by the same update that
   * ended that claim; `previous` counts it).
   */
  { won: true; token: string; expiresAt: number; previous: LedgerEntry | undefined; takenOver: boolean } | { won: false; because: ClaimRefusal; entry: LedgerEntry };

export interface CompletionRequest {
  policy: string;
  token: string;
  epoch: number;
  /** The position moves to the last settled record of the policy, with its shard's lineage. */
  position: LedgerPosition;
  /** The epoch's last applied revision; absent: none, and an earlier epoch's is removed. */
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

/** What `ips adopt` records for a policy it takes over (Ledger.adopt). */
export interface AdoptionRequest {
  policy: string;
  /** The epoch a new entry starts in (the ledger-wide one); an entry that exists keeps its own. */
  epoch: number;
  /** The policy as IAM holds it now: its path, default document, tags (the ownership tag aside) and description. */
  desired: DesiredState & { document: PolicyDocument };
  /** documentHash of `desired.document`. */
  docHash: string;
  /** Who adopts it: the operator's identity, for the entry and the audit log. */
  by: string;
}

/**
 * Why an adoption was not recorded: a claim (live or expired) is on the
 * entry, so a worker's step on the policy may be under way or unfinished; or
 * the entry holds state the processor itself applied (present, or retained in
 * use), which an adoption must never overwrite.
 */
export type AdoptionRefusal = 'claim-in-flight' | 'state-applied';

export type AdoptionResult =
  /** `previous`: the entry before, if any (one with `adopted`: an adoption run again). */
  { recorded: true; previous: LedgerEntry | undefined } | { recorded: false; because: AdoptionRefusal; entry: LedgerEntry };

export type ReleaseResult =
  /** `previous`: the entry before, undefined when there was none (nothing to forget). */
  { forgotten: true; previous: LedgerEntry | undefined } | { forgotten: false; because: 'claim-in-flight'; entry: LedgerEntry };

/** Policy states an adoption may replace: nothing the processor applied is there. */
export const ADOPTABLE_STATES: readonly (PolicyState | undefined)[] = [undefined, 'unknown', 'deleted'];

/**
 * Whether an adoption may write over `entry` (the one condition both ledgers
 * write, DynamoDB's as a ConditionExpression): no entry; or no claim on it and
 * no state the processor applied: none, `unknown`, `deleted`, or an earlier
 * adoption that no event has followed (a re-run, which records IAM's document
 * as it is now).
 */
export function adoptionRefusal(entry: LedgerEntry | undefined): AdoptionRefusal | undefined {
  if (!entry) return undefined;
  if (entry.claim) return 'claim-in-flight';
  if (ADOPTABLE_STATES.includes(entry.state)) return undefined;
  if (entry.state === 'present' && entry.adopted) return undefined;
  return 'state-applied';
}

export interface Ledger {
  /**
   * The epoch a shard's pipeline works in: the highest of the ledger-wide
   * epoch and those of the shard and its ancestors (a re-apply replay of one
   * shard moves only that shard's lineage to a new epoch).
   */
  currentEpoch(shards?: string[]): Promise<number>;
  /**
   * Claims the policy for an event. Another owner's expired claim is taken
   * over: one conditional update, on that claim's token, ends it and adds a
   * re-verification mark with `verifyAfter` at its expiry plus the late-write
   * time (its owner may be frozen with a write on the wire, and never mark).
   */
  claim(request: ClaimRequest): Promise<ClaimResult>;
  /**
   * Throws ClaimLostError when the claim is no longer ours (expired and taken
   * over). A completion that was applied but whose answer was lost (the SDK's
   * retry then fails the token check) is recognised as ours and succeeds.
   */
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
   * `verification-waits`) and no other owner holds a live claim. Another
   * owner's expired claim is taken over as by `claim`, mark and all, so the
   * verification then waits for that claim's late writes.
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
   * so that a producer retry of one is still recognised. Written before the
   * completion that drops them from the window. A step's own events are
   * tagged with `settledBy`, the position its completion moves to: they count
   * only once the entry's position is no longer before it (archivedEvents), so
   * what a step archived before a completion that never landed is not taken
   * as applied by whoever takes its claim over. Events completed earlier need
   * no tag.
   */
  archiveEvents(policy: string, epoch: number, events: RememberedEvent[], settledBy?: LedgerPosition): Promise<void>;
  /**
   * The archived events among `eventIds`, of `epoch` or later (a re-apply
   * replay forgets the rest), whose completion holds (archiveHolds against the
   * entry's `position`).
   */
  archivedEvents(policy: string, epoch: number, eventIds: string[], position: LedgerPosition | undefined): Promise<RememberedEvent[]>;
  /**
   * Records a policy taken over by `ips adopt`, in one conditional write that
   * never overwrites what the processor applied (adoptionRefusal): state
   * `present`, the policy's current document as the last applied one, no
   * revision (unknown: the first event of any revision is claimed) and no IAM
   * version ids (so the next step reads IAM, and checks the ownership tag,
   * before it writes). An entry that exists keeps its epoch, position and
   * eventIds: what the stream settled stays settled. Until an event takes
   * effect, an adoption may be recorded again (a re-run after a cut-short one).
   */
  adopt(request: AdoptionRequest): Promise<AdoptionResult>;
  /**
   * Forgets what the ledger knows of a policy's IAM state (`ips release`), in
   * one write conditional on no claim being on the entry: state `unknown`, no
   * desired state, document hash, IAM versions, revision or adoption. The
   * position and eventIds stay, so that a redelivered record stays a
   * duplicate. No entry: nothing to forget.
   */
  release(policy: string): Promise<ReleaseResult>;
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
 * Until when the writes of an expired claim may still land in IAM: its expiry
 * plus a call's lifetime (`lateWriteMs`), never earlier than a bound already
 * set (verifyAfter only moves forward).
 */
export function lateWritesEnd(entry: Pick<LedgerEntry, 'verifyAfter'>, claim: { expiresAt: number }, lateWriteMs: number): number {
  return Math.max(claim.expiresAt + lateWriteMs, entry.verifyAfter ?? 0);
}

/** Whether `entry` holds another owner's claim that expired before `now`: the next claim takes it over. */
export function expiredElsewhere(entry: LedgerEntry, owner: string, now: number): entry is LedgerEntry & { claim: NonNullable<LedgerEntry['claim']> } {
  return entry.claim !== undefined && entry.claim.owner !== owner && entry.claim.expiresAt < now;
}

/**
 * Whether an archived event tagged `settledBy` (Ledger.archiveEvents) counts
 * for an entry at `position`: unless the position is still before the tag (on
 * its shard and lower, or on one of its ancestors), the completion that
 * archived it landed. Untagged events always count.
 */
export function archiveHolds(position: LedgerPosition | undefined, settledBy: LedgerPosition | undefined): boolean {
  if (!settledBy) return true;
  if (!position) return false;
  if (position.shardId === settledBy.shardId) return compareWithin(position, settledBy) >= 0;
  return !settledBy.lineage.includes(position.shardId);
}

/**
 * Why a claim was refused, judged from the entry that refused it, in the one
 * order of verdict.ts. The entry's window holds the recent eventIds only: a
 * `stale-revision` from a full window may still be an archived eventId
 * (policy-batch.ts looks there before it settles the event).
 */
export function explainRefusal(entry: LedgerEntry, request: ClaimRequest, now: number): ClaimRefusal {
  if (entry.claim && entry.claim.owner !== request.owner && entry.claim.expiresAt >= now) return 'claimed-elsewhere';
  // The condition failed but nothing else explains it: another owner's expired
  // claim (the caller takes it over), or the entry changed between the write
  // and its returned image. Treat it as a held claim and try again later.
  return settledVerdict(entry, request) ?? 'claimed-elsewhere';
}

/** What the entry, within the request's epoch, already says of the request's record and event, if anything. */
export function settledVerdict(entry: LedgerEntry, request: ClaimRequest): KnownVerdict | undefined {
  if (entry.epoch < request.epoch) return undefined;
  return verdictOf(knowledgeOf(entry, request.record, request.eventId), request);
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
