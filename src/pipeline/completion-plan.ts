// What a policy batch's completion writes to the ledger, decided from values
// alone (no I/O): the policy batch runs the IAM step, then hands what it did
// here and writes what comes back. A refused event had no effect, so neither
// its eventId nor its revision is remembered: once its cause is fixed, a
// redrive of it (a new record, same bytes) is applied instead of being
// dropped as a duplicate. A redelivery of the refused record itself stays a
// duplicate through the position.
import type { PolicyEvent, PolicyUpserted } from '../contract/event.js';
import type { IamOutcome } from '../contract/outcome.js';
import { documentHash } from '../iam/document.js';
import type { CompletionRequest, DesiredState, LedgerEntry, PolicyState, RememberedEvent } from '../ledger/ledger.js';
import { answersMarks, rememberEvents } from '../ledger/ledger.js';
import type { LedgerPosition } from '../ledger/position.js';
import type { ValidRecord } from './types.js';

const STATE_AFTER: Record<IamOutcome, PolicyState> = {
  created: 'present',
  updated: 'present',
  unchanged: 'present',
  deleted: 'deleted',
  absent: 'deleted',
  'retained-in-use': 'retained-in-use',
};

/** What the batch's IAM step did (policy-batch.ts, StepResult). */
export interface StepSummary {
  /** The latest upsert that took effect (its document is IAM's now). */
  applied: PolicyUpserted | undefined;
  /** The outcome of the latest event that took effect. */
  finalOutcome: IamOutcome | undefined;
  /** Where the latest event that took effect found or put the policy. */
  path: string | undefined;
  /** IAM's version ids as the last step run reported them (undefined: not known). */
  versions: string[] | undefined;
  /** IAM steps run (refused ones too). */
  steps: number;
  /** A step left IAM as the ledger will say: it answers the re-verification marks. */
  converged: boolean;
}

export interface CompletionInput {
  policy: string;
  token: string;
  /** The pipeline's epoch. */
  epoch: number;
  recentEventIds: number;
  /** Ancestor shard ids of the pipeline's shard. */
  lineage: string[];
  claimTtlMs: number;
  /** The entry as the claim found it, whatever its epoch, and when the claim expires. */
  claim: { previous: LedgerEntry | undefined; expiresAt: number };
  /** The entry as the claim found it, an older epoch counted as empty. */
  previous: LedgerEntry | undefined;
  /** The records this completion settles, in stream order (the position moves past the last). */
  scope: ValidRecord[];
  /** The live events in scope that took effect, in stream order. */
  effective: ValidRecord[];
  step: StepSummary;
}

export interface CompletionPlan {
  request: CompletionRequest;
  /** Events that leave the entry's window: archived before the completion (Ledger.archiveEvents). */
  forgotten: RememberedEvent[];
  /** eventIds of this step's own events (archived tagged with the completion's position). */
  ownEventIds: Set<string>;
  /** The completion answers the re-verification marks the claim saw. */
  answered: boolean;
}

export function planCompletion(input: CompletionInput): CompletionPlan {
  const { claim, previous, step } = input;
  const lastRecord = input.scope[input.scope.length - 1]!.record;
  const revisions = input.effective.map((item) => item.event.revision).filter((r): r is number => r !== undefined);
  const revision = maxOf([...(previous?.revision !== undefined ? [previous.revision] : []), ...revisions]);
  const appliedEvents = input.effective.map((item) => ({ eventId: item.event.eventId, payloadHash: item.payloadHash }));
  const { kept: events, forgotten } = rememberEvents(previous?.events ?? [], appliedEvents, input.recentEventIds);
  const position: LedgerPosition = {
    shardId: lastRecord.shardId,
    sequenceNumber: lastRecord.sequenceNumber,
    subSequenceNumber: lastRecord.subSequenceNumber,
    lineage: input.lineage,
  };
  // Never down: a worker still on an older epoch (a zombie, a shard outside a scoped replay) keeps the entry's.
  const epoch = Math.max(input.epoch, claim.previous?.epoch ?? 0);
  // What IAM holds by the ledger's word is not forgotten with an epoch: when no event took
  // effect (all refused, say a re-apply replay of a policy whose ownership tag was removed),
  // the state, desired state and hash stay what the entry said, whatever its epoch, so the
  // drift audit still judges the policy instead of calling it never applied.
  const lastApplied = step.finalOutcome === undefined ? claim.previous : previous;
  const hash = step.applied ? hashOf(step.applied) : lastApplied?.docHash;
  const desired = desiredAfter(step.applied, step.finalOutcome, step.path, lastApplied);
  const state = step.finalOutcome ? STATE_AFTER[step.finalOutcome] : (lastApplied?.state ?? 'unknown');
  const answered = claim.previous?.verifyRequested !== undefined && step.converged && answersMarks(claim.previous, claim.expiresAt - input.claimTtlMs);
  // IAM's versions as the last step left them; what no step touched keeps the ledger's word.
  const iamVersions = step.steps === 0 ? previous?.iamVersions : state === 'present' || state === 'retained-in-use' ? step.versions : undefined;
  const request: CompletionRequest = {
    policy: input.policy,
    token: input.token,
    epoch,
    position,
    ...(revision !== undefined ? { revision } : {}),
    events,
    ...(hash !== undefined ? { docHash: hash } : {}),
    ...(desired !== undefined ? { desired } : {}),
    // A step that wrote the document (or found the policy gone) answers the marks it saw,
    // unless a late write may land after it (then verifyPolicy answers them).
    ...(answered ? { verifiedUpTo: claim.previous!.verifyRequested! } : {}),
    ...(iamVersions !== undefined ? { iamVersions } : {}),
    state,
    outcome: step.finalOutcome ?? 'rejected',
  };
  return { request, forgotten, ownEventIds: new Set(appliedEvents.map((event) => event.eventId)), answered };
}

/** The ledger's desired state after the batch (ledger.ts, DesiredState). */
function desiredAfter(applied: PolicyUpserted | undefined, finalOutcome: IamOutcome | undefined, path: string | undefined, previous: LedgerEntry | undefined): DesiredState | undefined {
  if (finalOutcome === undefined) return previous?.desired;
  if (finalOutcome === 'deleted' || finalOutcome === 'absent') return path === undefined ? undefined : { path };
  if (applied) {
    return { path: applied.policyPath, document: applied.document, tags: applied.tags, ...(applied.description !== undefined ? { description: applied.description } : {}) };
  }
  return previous?.desired; // retained-in-use with no upsert in the batch: unchanged
}

export function maxOf(values: number[]): number | undefined {
  return values.length === 0 ? undefined : Math.max(...values);
}

function hashOf(event: PolicyEvent): string | undefined {
  return event.type === 'policy.upserted' ? documentHash(event.document) : undefined;
}
