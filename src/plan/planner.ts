// The plan: what the processor would do with each event, given the ledger
// and what IAM holds now, decided from values alone (no I/O). The reads live
// in plan/world.ts, the command in ops/commands/plan.ts.
//
// A policy's events fold in stream order, as the pipeline folds them: each
// meets the ledger's knowledge (verdict.ts, in its one order: the record's
// position, the eventId, the revision) and IAM as the events before it would
// leave them. The IAM step is the reconciler's (iam/reconciler.ts), read as a
// table:
//
//   upsert  a path named that is not where the ledger has it  -> refuse path-conflict
//           no policy of that name                              -> create
//           the name under another path (a path named, or not ours there) -> refuse not-owned
//           not ours (outside the managed path, or no managed-by tag)     -> refuse not-owned
//           equivalent document, same tags                      -> none      (unchanged)
//           same document, other tags                           -> update    (unchanged: tags only)
//           another document                                    -> update    (updated)
//   delete  no policy of that name where the delete acts        -> none      (absent)
//           not ours                                            -> refuse not-owned
//           attached to a user, group or role                   -> retain    (retained-in-use)
//           otherwise                                           -> delete    (deleted)
//
// Where the pipeline coalesces several events of a policy in one batch (the
// earlier ones `superseded`), IAM ends where this fold ends: the plan shows
// each event's own effect, in order.
import { policyKey } from '../contract/policy-key.js';
import type { PolicyEvent, PolicyUpserted } from '../contract/event.js';
import type { Outcome } from '../contract/outcome.js';
import { OWNER_TAG, ownedBy } from '../contract/ownership.js';
import type { RecordPosition } from '../contract/record-id.js';
import type { RejectReason } from '../faults/errors.js';
import { documentHash, documentsEqual } from '../iam/document.js';
import type { LedgerEntry, PolicyState, RememberedEvent } from '../ledger/ledger.js';
import { needsVerification } from '../ledger/ledger.js';
import type { LedgerPosition } from '../ledger/position.js';
import { covers } from '../ledger/position.js';
import { verdictOf } from '../ledger/verdict.js';
import { diffDocuments, diffTags, isEmptyTagDiff } from './diff.js';
import type { DocumentDiff, TagDiff } from './diff.js';

export const PLAN_ACTIONS = ['create', 'update', 'delete', 'retain', 'none', 'stale', 'duplicate', 'refuse'] as const;
export type PlanAction = (typeof PLAN_ACTIONS)[number];

/** The actions that write to IAM. */
export function writesIam(action: PlanAction): boolean {
  return action === 'create' || action === 'update' || action === 'delete';
}

/** What IAM holds now for a policy name (names are unique per account, whatever the path). */
export interface IamPolicy {
  path: string;
  /** The default version's document. */
  document: unknown;
  /** IAM's tags, `managed-by` included. */
  tags: Record<string, string>;
  /** Whether a user, group or role has it attached (every page of ListEntitiesForPolicy, as the reconciler checks). */
  attached: boolean;
}

/** One valid event of the policy, in stream order. */
export interface PlanEvent {
  event: PolicyEvent;
  /** contract/payload-hash.ts */
  payloadHash: string;
  /** Where it lies in the stream, and its shard's ancestors; none for an event read from a file (never a redelivery). */
  record?: RecordPosition & { lineage: string[] };
}

/** What the plan knows of a policy before its first event. */
export interface PolicyWorld {
  /** The ledger's entry, of the epoch the events would be processed in (an entry of an older epoch counts as none). */
  ledger?: LedgerEntry | undefined;
  /** Events of the entry's archive among the events' eventIds (Ledger.archivedEvents): the window holds the recent ones only. */
  archived?: RememberedEvent[];
  iam?: IamPolicy | undefined;
}

export interface PlanSettings {
  managedPathPrefix: string;
  appName: string;
}

export interface PlanStep {
  action: PlanAction;
  /** The outcome the processor would log for the record (README, "Outcome of every record"). */
  outcome: Outcome;
  /** For `refuse`: the reason code the record would be dead-lettered with. */
  reason?: RejectReason;
  detail: string;
  /** Where the policy is or would be. */
  path?: string;
  /** For `update`: the document's change by meaning (empty when only the tags change, or when the document is written again unchanged). */
  document?: DocumentDiff;
  /** For `create` and `update`: the tags' change. */
  tags?: TagDiff;
}

/** What the fold knows of the policy: the ledger as the events so far would leave it, and IAM. */
interface Known {
  position: LedgerPosition | undefined;
  events: RememberedEvent[];
  revision: number | undefined;
  state: PolicyState | undefined;
  /** Where the ledger says the policy lives (its desired path). */
  path: string | undefined;
  docHash: string | undefined;
  /** A re-verification is owed: the ledger's word on where the policy lives is not trusted. */
  verifyOwed: boolean;
  iam: IamPolicy | undefined;
}

/** The plan of one policy's events, in order: one step each. */
export function planPolicy(events: PlanEvent[], world: PolicyWorld, settings: PlanSettings): PlanStep[] {
  const entry = world.ledger;
  let known: Known = {
    position: entry?.position,
    events: [...(entry?.events ?? []), ...(world.archived ?? [])],
    revision: entry?.revision,
    state: entry?.state,
    path: entry?.desired?.path,
    docHash: entry?.docHash,
    verifyOwed: needsVerification(entry),
    iam: world.iam,
  };
  return events.map((item) => {
    const { step, after } = planOne(item, known, settings);
    // Every record settled moves the position past it, whatever its outcome.
    known = { ...after, position: item.record ? { ...item.record, lineage: item.record.lineage } : after.position };
    return step;
  });
}

/** A record the decoder refuses: it never reaches a policy's fold. */
export function refusedInput(reason: RejectReason, detail: string): PlanStep {
  return { action: 'refuse', outcome: 'rejected', reason, detail };
}

function planOne(item: PlanEvent, known: Known, settings: PlanSettings): { step: PlanStep; after: Known } {
  const { event } = item;
  const verdict = verdictOf(
    {
      covered: item.record !== undefined && covers(known.position, item.record),
      remembered: known.events.find((remembered) => remembered.eventId === event.eventId),
      revision: known.revision,
    },
    { payloadHash: item.payloadHash, revision: event.revision },
  );
  switch (verdict) {
    case 'duplicate-sequence':
      return { step: { action: 'duplicate', outcome: 'duplicate', detail: 'the ledger has settled this record already (a redelivery or a replay)' }, after: known };
    case 'duplicate-event-id':
      return { step: { action: 'duplicate', outcome: 'duplicate', detail: `eventId ${JSON.stringify(event.eventId)} was applied with the same payload (a producer retry)` }, after: known };
    case 'event-id-conflict':
      return { step: refused('event-id-conflict', `eventId ${JSON.stringify(event.eventId)} was already used for another payload of policy ${event.policyName}`), after: known };
    case 'stale-revision':
      return { step: { action: 'stale', outcome: 'stale', detail: `revision ${event.revision} is not above the last applied revision ${known.revision}` }, after: known };
    case undefined:
      break;
  }
  const step = event.type === 'policy.upserted' ? planUpsert(event, known, settings) : planDelete(event, known, settings);
  if (step.step.action === 'refuse') return { step: step.step, after: known };
  // Applied: the ledger remembers the event and its revision, and what it left.
  const revisions = [known.revision, event.revision].filter((revision): revision is number => revision !== undefined);
  const after: Known = {
    ...known,
    ...step.after,
    events: [...known.events.filter((remembered) => remembered.eventId !== event.eventId), { eventId: event.eventId, payloadHash: item.payloadHash }],
    revision: revisions.length > 0 ? Math.max(...revisions) : undefined,
    verifyOwed: false,
  };
  return { step: step.step, after };
}

function refused(reason: RejectReason, detail: string): PlanStep {
  return { action: 'refuse', outcome: 'rejected', reason, detail };
}

type Planned = { step: PlanStep; after: Partial<Known> };

function owned(policy: IamPolicy, settings: PlanSettings): boolean {
  return (
    policy.path.startsWith(settings.managedPathPrefix) &&
    ownedBy(
      Object.entries(policy.tags).map(([Key, Value]) => ({ Key, Value })),
      settings.appName,
    )
  );
}

function notOwned(name: string, policy: IamPolicy, settings: PlanSettings): PlanStep {
  return refused('not-owned', `${policy.path}${name} exists but is not managed by ${settings.appName} (path ${policy.path}, no ${OWNER_TAG} tag for it)`);
}

/** Where the ledger says the policy lives, while it says it is present (policy-batch.ts, knownPathOf). */
function knownPath(known: Known): string | undefined {
  return known.state === 'present' || known.state === 'retained-in-use' ? known.path : undefined;
}

function planUpsert(event: PolicyUpserted, known: Known, settings: PlanSettings): Planned {
  const name = event.policyName;
  const ledgerPath = knownPath(known);
  // IAM cannot move a policy: an upsert naming another path than the ledger's is refused.
  if (ledgerPath !== undefined && event.pathGiven && event.policyPath !== ledgerPath) {
    return { step: refused('path-conflict', `policy ${name} exists under ${ledgerPath}; IAM cannot move a policy to ${event.policyPath} (delete it first, or name its path)`), after: {} };
  }
  const path = ledgerPath ?? event.policyPath;
  const wantedTags = { ...event.tags, [OWNER_TAG]: settings.appName };
  const iam = known.iam;
  if (!iam) {
    const tags = diffTags({}, event.tags);
    return {
      step: { action: 'create', outcome: 'created', detail: `CreatePolicy ${path}${name}`, path, tags },
      after: { iam: { path, document: event.document, tags: wantedTags, attached: false }, state: 'present', path, docHash: documentHash(event.document) },
    };
  }
  // The name is taken under another path (names are unique per account): an event that names no
  // path means the policy wherever it lives, if it is ours under the managed path; otherwise the
  // create that IAM refuses is the reconciler's not-owned.
  if (iam.path !== path && (event.pathGiven === true || !owned(iam, settings))) {
    return { step: refused('not-owned', `a policy named ${name} already exists under ${iam.path}, not under ${path}`), after: {} };
  }
  if (!owned(iam, settings)) return { step: notOwned(name, iam, settings), after: {} };
  const at = iam.path;
  const tags = diffTags(iam.tags, event.tags);
  const after: Partial<Known> = { iam: { ...iam, document: event.document, tags: wantedTags }, state: 'present', path: at, docHash: documentHash(event.document) };
  const sameDocument = documentsEqual(iam.document, event.document);
  // The reconciler writes the document again when the ledger last applied another one, even if
  // IAM shows it: to the reconciler that reading may lag its own last write.
  const ledgerDocHash = ledgerPath !== undefined ? known.docHash : undefined;
  const ledgerAgrees = ledgerDocHash === undefined || ledgerDocHash === documentHash(event.document);
  if (sameDocument && ledgerAgrees) {
    if (isEmptyTagDiff(tags)) return { step: { action: 'none', outcome: 'unchanged', detail: 'IAM holds an equivalent document and the same tags', path: at }, after };
    return { step: { action: 'update', outcome: 'unchanged', detail: 'tags only: the document is equivalent', path: at, tags }, after };
  }
  const document = diffDocuments(iam.document, event.document);
  const detail = sameDocument ? 'IAM shows an equivalent document, but the ledger last applied another one: a new default version is written anyway' : 'CreatePolicyVersion as the new default';
  return { step: { action: 'update', outcome: 'updated', detail, path: at, document, tags }, after };
}

function planDelete(event: PolicyEvent, known: Known, settings: PlanSettings): Planned {
  const name = event.policyName;
  const ledgerPath = knownPath(known);
  // A delete acts where the ledger has the policy; where the ledger does not know, the reconciler
  // looks for the name under the managed path.
  const path = ledgerPath ?? event.policyPath;
  const pathUnknown = ledgerPath === undefined && (known.state === undefined || known.state === 'unknown' || known.verifyOwed);
  const iam = known.iam;
  const found = iam && (iam.path === path || (pathUnknown && iam.path.startsWith(settings.managedPathPrefix))) ? iam : undefined;
  if (!found) {
    const elsewhere = iam ? ` (IAM has the name under ${iam.path}, where this delete does not act)` : '';
    return { step: { action: 'none', outcome: 'absent', detail: `no policy ${path}${name}${elsewhere}`, path }, after: { state: 'deleted', path } };
  }
  if (!owned(found, settings)) return { step: notOwned(name, found, settings), after: {} };
  if (found.attached) {
    return {
      step: { action: 'retain', outcome: 'retained-in-use', detail: 'attached to a user, group or role: not deleted', path: found.path },
      after: { state: 'retained-in-use', path: found.path },
    };
  }
  return {
    step: { action: 'delete', outcome: 'deleted', detail: `DeletePolicy ${found.path}${name} (its non-default versions first)`, path: found.path },
    after: { iam: undefined, state: 'deleted', path: found.path },
  };
}

/** A record as the plan reads it: decoded to an event, or refused by the decoder with its reason. */
export type PlanInput = ({ ok: true } & PlanEvent) | { ok: false; reason: RejectReason; detail: string };

/**
 * The plan of records in stream order, whatever their policies: each
 * policy's events fold in order over its world (`worldOf`), and a record the
 * decoder refused is refused. One step per record, in the records' order.
 */
export function planRecords(records: PlanInput[], worldOf: (policy: string) => PolicyWorld, settings: PlanSettings): PlanStep[] {
  const byPolicy = new Map<string, { index: number; event: PlanEvent }[]>();
  const steps: PlanStep[] = new Array<PlanStep>(records.length);
  records.forEach((record, index) => {
    if (!record.ok) {
      steps[index] = refusedInput(record.reason, record.detail);
      return;
    }
    const { ok: _ok, ...event } = record;
    const policy = policyKey(event.event);
    const items = byPolicy.get(policy) ?? [];
    items.push({ index, event });
    byPolicy.set(policy, items);
  });
  for (const [policy, items] of byPolicy) {
    const planned = planPolicy(
      items.map((item) => item.event),
      worldOf(policy),
      settings,
    );
    items.forEach((item, i) => {
      steps[item.index] = planned[i]!;
    });
  }
  return steps;
}
