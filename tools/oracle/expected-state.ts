// The IAM state a stream should produce: fold each policy's events in its
// stream order (the caller orders them: invariants.ts) with the product's semantics (README, "Outcome of every record";
// docs/event-contract.md). The invariant checker and the
// end-to-end tests compare it with what IAM holds.
//
// Paths: IAM cannot move a policy, and its name is unique per account whatever
// the path. So an event that names no path means "where the policy is" (the
// managed prefix, as decoded, for a new one); an upsert that names another path
// than the existing policy's is rejected as `path-conflict` and has no effect
// (neither its eventId nor its revision is remembered); a delete goes wherever
// the policy is.
import type { PolicyEvent } from '../../src/contract/event.js';

export interface ExpectedPolicy {
  name: string;
  /** The default document it must have, or undefined when it must not exist. */
  document: Record<string, unknown> | undefined;
  /** The path it must be under when it exists. */
  path: string | undefined;
  /** Distinct documents applied while it existed (versions created, before pruning). */
  appliedDocuments: number;
  /**
   * The tags it must carry besides `managed-by` when it exists: those of the
   * last applied upsert (tags are synced as a set; a retained delete keeps them).
   */
  tags: Record<string, string> | undefined;
}

export interface FoldOptions {
  /** Policies attached to a user, group or role: a delete retains them. */
  attached?: Set<string>;
  /**
   * What IAM held when the events were read again under a new ledger epoch
   * (`ips replay --reapply`): the replayed events meet that state, not an empty
   * account, with no eventId or revision remembered. An upsert naming another
   * path than where the policy now lives is a `path-conflict` there even if it
   * was not the first time, so the re-applied fold may differ from the first.
   */
  initial?: Map<string, ExpectedPolicy>;
}

export function foldEvents(events: PolicyEvent[], options: FoldOptions = {}): Map<string, ExpectedPolicy> {
  const state = new Map<string, ExpectedPolicy & { revision?: number; eventIds: Set<string>; docKey?: string }>();
  for (const [name, policy] of options.initial ?? []) {
    state.set(name, { ...policy, eventIds: new Set<string>(), ...(policy.document !== undefined ? { docKey: JSON.stringify(policy.document) } : {}) });
  }
  for (const event of events) {
    const current = state.get(event.policyName) ?? { name: event.policyName, document: undefined, path: undefined, appliedDocuments: 0, tags: undefined, eventIds: new Set<string>() };
    state.set(event.policyName, current);
    if (current.eventIds.has(event.eventId)) continue; // producer retry
    if (event.revision !== undefined && current.revision !== undefined && event.revision <= current.revision) continue; // stale
    const exists = current.document !== undefined;
    // An event that names no path carries the managed prefix, with pathGiven false.
    if (event.type === 'policy.upserted' && exists && event.pathGiven === true && event.policyPath !== current.path) continue; // path-conflict: no effect
    current.eventIds.add(event.eventId);
    if (event.revision !== undefined) current.revision = event.revision;
    if (event.type === 'policy.upserted') {
      const key = JSON.stringify(event.document);
      if (current.docKey !== key) current.appliedDocuments++;
      current.document = event.document as Record<string, unknown>;
      current.docKey = key;
      current.tags = { ...event.tags };
      if (!exists) current.path = event.policyPath;
    } else if (!options.attached?.has(event.policyName)) {
      current.document = undefined;
      current.docKey = undefined;
      current.path = undefined;
      current.tags = undefined;
    }
  }
  return new Map([...state].map(([name, value]) => [name, { name, document: value.document, path: value.path, appliedDocuments: value.appliedDocuments, tags: value.tags }]));
}
