// The decisions of a policy batch, from values alone (no I/O): the policy
// batch (policy-batch.ts) claims, runs the IAM steps and completes; every
// choice it makes on the way is one of these functions.
//
//   screenBatch      what the duplicate cache answers; the candidates to claim
//   planPolicyBatch  once a claim is won: the in-order fold of the open records
//                    against the ledger's entry, the part of the batch one
//                    completion settles (the rest runs as a part of its own),
//                    the events whose effect IAM gets, and what the IAM step
//                    starts from (PolicyKnowledge)
//   placed           where an event acts on IAM
//   settleWaiting    once the step has run: which waiting verdicts hold, and
//                    where the batch is cut when one does not
//   planCompletion   the completion (completion-plan.ts)
import type { PolicyEvent, PolicyUpserted } from '../contract/event.js';
import type { IamOutcome } from '../contract/outcome.js';
import type { LedgerEntry, RememberedEvent } from '../ledger/ledger.js';
import { knowledgeOf, needsVerification } from '../ledger/ledger.js';
import type { KnownVerdict } from '../ledger/verdict.js';
import { BatchKnowledge } from './batch-knowledge.js';
import type { Waiting } from './batch-knowledge.js';
import type { ValidRecord } from './types.js';

/** What the pipeline knows of a policy before an IAM step (the ledger's word, then the batch's own steps). */
export interface PolicyKnowledge {
  likelyAbsent: boolean;
  present: boolean;
  path: string | undefined;
  pathUnknown: boolean;
  docHash?: string;
  /** IAM's version ids, oldest first, the last the default, when the ledger vouches for them (StepHint.ledgerVersions). */
  versions?: string[];
  /** The tags last applied (StepHint.ledgerTags). */
  tags?: Record<string, string>;
  /**
   * The ledger's last step deleted the policy (or found it gone). An upsert
   * that reads it present may be reading IAM's lag of that delete, so it
   * writes its document rather than judge it `unchanged` (StepHint.forceWrite).
   */
  deletedByLedger?: boolean;
}

/** What the IAM steps of a batch did (completion-plan.ts reads it as StepSummary). */
export interface StepResult {
  /** The latest upsert that took effect (its document is IAM's now). */
  applied: PolicyUpserted | undefined;
  refused: Set<ValidRecord>;
  /** The outcome of the latest event that took effect. */
  finalOutcome: IamOutcome | undefined;
  /** Where the latest event that took effect found or put the policy. */
  path: string | undefined;
  /** IAM's version ids as the last step run reported them (undefined: not known). */
  versions: string[] | undefined;
  /** IAM steps run (refused ones too). */
  steps: number;
  /** A step left IAM as the ledger will say (CONVERGES): it answers the re-verification marks. */
  converged: boolean;
}

/**
 * Which outcomes answer re-verification marks: only a step that wrote the
 * document, or deleted the policy or found it gone, leaves IAM as the ledger
 * will say. `unchanged` rests on a read that may lag a late write (the
 * verification writes the document whatever IAM shows); `retained-in-use`
 * never looks at the document.
 */
export const CONVERGES: Record<IamOutcome, boolean> = {
  created: true,
  updated: true,
  deleted: true,
  absent: true,
  unchanged: false,
  'retained-in-use': false,
};

/** 1. What the cache answers (`cached[i]`: the cache knows record i as applied); the rest, in order, are candidates, except the events whose verdict would rest on an earlier candidate, or might rest on an earlier waiting one. */
export function screenBatch(records: ValidRecord[], cached: boolean[]): { duplicates: ValidRecord[]; candidates: ValidRecord[] } {
  const duplicates: ValidRecord[] = [];
  const candidates: ValidRecord[] = [];
  const batch = new BatchKnowledge();
  records.forEach((item, i) => {
    if (cached[i]) duplicates.push(item);
    else if (!batch.judge(item)) {
      candidates.push(item);
      batch.add(item);
    } else batch.pend(item);
  });
  return { duplicates, candidates };
}

export interface PlanInput {
  /** The records of this part of the batch, in stream order. */
  records: ValidRecord[];
  /** Those not settled yet: the candidates up to the claimed one, and the events that waited on them. */
  open: ValidRecord[];
  /** The ledger's entry as the claim found it, an older epoch counted as empty. */
  entry: LedgerEntry | undefined;
  /** The archived events among the open records' eventIds (looked up only when the entry's window is full). */
  archived: RememberedEvent[];
  /** The claim was taken over from another owner, whose step may have written without completing. */
  takenOver: boolean;
}

export interface PolicyPlan {
  /** Open records the ledger's knowledge settles now (duplicate, stale, event-id-conflict). */
  known: { item: ValidRecord; verdict: KnownVerdict }[];
  /** The events IAM gets the in-order effect of, in stream order. */
  live: ValidRecord[];
  /** Events whose verdict waits on the IAM step (settleWaiting). */
  waiting: Waiting[];
  /** What the live events add (settleWaiting asks it). */
  batch: BatchKnowledge;
  /** The records this part's completion settles. */
  scope: ValidRecord[];
  /** The records after the cut: settled as a part of their own once this one completed. */
  rest: ValidRecord[];
  /** What the IAM step starts from. */
  start: PolicyKnowledge;
}

/**
 * 2. Once the claim is won: each open event meets what the ledger knows and
 * what the batch's earlier live events will add; a verdict that rests on
 * those events waits until their fate is known. The batch is cut (the rest
 * runs as a part of its own) before an event that is tried unless an earlier
 * waiting one takes effect, and after the first live event when the live
 * events would not all act on the policy at one path.
 */
export function planPolicyBatch(input: PlanInput): PolicyPlan {
  const { records, open, entry, archived } = input;
  const batch = new BatchKnowledge();
  const known: PolicyPlan['known'] = [];
  const live: ValidRecord[] = [];
  const waiting: Waiting[] = [];
  let scope = records;
  let rest: ValidRecord[] = [];
  for (const item of open) {
    const judged = batch.judge(item, knowledgeOf(entry, item.record, item.event.eventId, archived));
    if (!judged) {
      live.push(item);
      batch.add(item);
    } else if (judged.verdict === undefined) {
      // Tried unless an earlier waiting event takes effect: which, only the IAM step tells, and
      // the events after it would be in that step. The batch is cut before it.
      const cut = records.indexOf(item);
      rest = records.slice(cut);
      scope = records.slice(0, cut);
      break;
    } else if (!judged.onBatch && !judged.onWaiting) known.push({ item, verdict: judged.verdict });
    else {
      // Its fate is known only after the IAM step: what it may add weighs on the events after it.
      waiting.push({ item, ...judged });
      batch.pend(item);
    }
  }
  // Events that would not all act on the policy at one path (a path named, a new policy, a delete
  // before an upsert that names no path) cannot be folded from the last one back: the first is
  // applied and completed alone, and the records after it run as a part of their own. Each
  // completion saves the progress, so a fault later does not redo (and, under IAM's read lag,
  // never stop redoing) what was applied.
  const start = startingKnowledge(entry, input.takenOver);
  if (live.length > 1 && !samePlace(live, knownPathOf(entry), start.pathUnknown)) {
    const cut = records.indexOf(live[0]!) + 1;
    rest = records.slice(cut);
    scope = records.slice(0, cut);
    live.splice(1);
  }
  const inScope = new Set(scope);
  return { known: known.filter(({ item }) => inScope.has(item)), live, waiting, batch, scope, rest, start };
}

/**
 * 4. After the IAM step: a waiting event keeps its verdict when an event it
 * rested on took effect. The first whose events were all refused is where a
 * batch boundary would have changed its verdict: the batch is cut before it,
 * and the records from it on (but those settled without effect) are a part
 * of their own. An event that waited on earlier waiting ones meets them here
 * all settled without effect: its verdict without them holds.
 */
export function settleWaiting(
  plan: PolicyPlan,
  records: ValidRecord[],
  refused: Set<ValidRecord>,
  settled: (item: ValidRecord) => boolean,
): { holds: { item: ValidRecord; verdict: KnownVerdict; source: 'ledger' | 'batch' }[]; scope: ValidRecord[]; rest: ValidRecord[] } {
  const liveSet = new Set(plan.live);
  const tookEffect = (item: ValidRecord) => liveSet.has(item) && !refused.has(item);
  const inScope = new Set(plan.scope);
  const holds: { item: ValidRecord; verdict: KnownVerdict; source: 'ledger' | 'batch' }[] = [];
  for (const { item, ...judged } of plan.waiting.filter((wait) => inScope.has(wait.item))) {
    if (plan.batch.holds(item, judged, tookEffect)) {
      holds.push({ item, verdict: judged.verdict!, source: judged.onBatch ? 'batch' : 'ledger' });
      continue;
    }
    const at = records.indexOf(item);
    return { holds, scope: records.slice(0, at), rest: records.slice(at).filter((later) => !settled(later) || tookEffect(later)) };
  }
  return { holds, scope: plan.scope, rest: plan.rest };
}

/** What the ledger's entry lets the IAM step assume. */
function startingKnowledge(previous: LedgerEntry | undefined, takenOver: boolean): PolicyKnowledge {
  const knownPresent = previous?.state === 'present' || previous?.state === 'retained-in-use';
  return {
    // What the ledger last applied: lets the IAM step skip a read that would
    // only confirm an absence, and read IAM's NoSuchEntity as lag, not as a
    // verdict. An entry owing a verification is not trusted: the step reads IAM.
    likelyAbsent: (previous === undefined || previous.state === 'deleted') && !needsVerification(previous),
    present: knownPresent,
    // Where the policy lives, as far as the ledger knows: IAM names are
    // unique per account whatever the path, so the name finds it there.
    path: knownPathOf(previous),
    // The ledger may not know where a policy lives: never seen, never completed
    // (an entry a claim made, whose step may have written without completing),
    // or a previous owner's write may have landed without its completion.
    pathUnknown: !knownPresent && (previous?.state === undefined || previous.state === 'unknown' || takenOver || needsVerification(previous)),
    ...(knownPresent && previous?.docHash !== undefined ? { docHash: previous.docHash } : {}),
    // IAM's versions and tags as the ledger's last step left them: with them an
    // update is written without reading IAM first. Only while the ledger
    // vouches for the policy: nothing owed to a verification, and no other
    // owner whose step may have written without completing.
    ...(knownPresent && previous?.iamVersions !== undefined && !needsVerification(previous) && !takenOver ? { versions: previous.iamVersions } : {}),
    ...(knownPresent && previous?.desired?.tags !== undefined ? { tags: previous.desired.tags } : {}),
    ...(previous?.state === 'deleted' ? { deletedByLedger: true } : {}),
  };
}

/** Where the ledger says the policy lives, while it is present. */
function knownPathOf(previous: LedgerEntry | undefined): string | undefined {
  return previous?.state === 'present' || previous?.state === 'retained-in-use' ? previous.desired?.path : undefined;
}

/**
 * Whether every event of the batch acts on the policy at one path, so that
 * working back from the last one (coalescing) gives what the fold gives: no
 * upsert names a path other than that one, and no upsert that names no path
 * could land at the prefix while the policy lives elsewhere (a new policy, or
 * an upsert after a delete). When the ledger cannot say where the policy
 * lives (`pathUnknown`: never seen, a new epoch, a write without its
 * completion), an upsert that names a path is a `path-conflict` or not by
 * what IAM holds: coalesced, a later delete would make it `superseded`
 * instead, and a producer retry of it would then be a duplicate where in
 * order it takes effect. Nor is a delete followed by an upsert that names no
 * path: in order the upsert creates the policy at the prefix, coalesced it
 * would update the policy wherever IAM has it.
 */
function samePlace(live: ValidRecord[], knownPath: string | undefined, pathUnknown: boolean): boolean {
  if (pathUnknown && live.some(({ event }) => event.type === 'policy.upserted' && event.pathGiven)) return false;
  // Where the policy is when the batch starts: where the ledger says, or, when it cannot say, wherever
  // IAM has it (an upsert naming no path goes there; after a delete, to the prefix: two places).
  const start = knownPath ?? (pathUnknown ? WHERE_IAM_HAS_IT : undefined);
  const places = new Set<string>(start !== undefined ? [start] : []);
  let deleted = false;
  for (const { event } of live) {
    if (event.type === 'policy.deleted') deleted = true;
    else if (event.pathGiven || start === undefined || deleted) places.add(event.policyPath);
  }
  return places.size <= 1;
}

/** No path: the place of a policy the ledger cannot locate (samePlace). */
const WHERE_IAM_HAS_IT = '';

/**
 * The event as it must be applied: an event that names no path goes where the
 * ledger knows the policy lives, and so does every delete (the name alone
 * identifies a policy). An upsert that names another path than the existing
 * policy's is a `path-conflict`: IAM cannot move a policy.
 */
export function placed(event: PolicyEvent, knownPath: string | undefined): PolicyEvent | 'path-conflict' {
  if (knownPath === undefined || event.policyPath === knownPath) return event;
  if (event.type === 'policy.upserted' && event.pathGiven) return 'path-conflict';
  return { ...event, policyPath: knownPath };
}
