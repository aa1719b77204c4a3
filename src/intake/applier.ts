import type { PolicyEvent } from '../contract/event.js';
import type { IamOutcome } from '../contract/outcome.js';
import type { PolicyDeleted, PolicyUpserted } from '../contract/event.js';
import type { Applier, ApplyHint } from '../pipeline/types.js';

interface Reconciler {
  upsert(event: PolicyUpserted, hint?: ApplyHint): Promise<IamOutcome>;
  delete(event: PolicyDeleted, hint?: ApplyHint): Promise<IamOutcome>;
}

/** The pipeline's IAM step: an upsert or a delete, reconciled state-aware. */
export function reconcilerApplier(reconciler: Reconciler): Applier {
  return {
    apply: (event: PolicyEvent, hint?: ApplyHint) => (event.type === 'policy.upserted' ? reconciler.upsert(event, hint) : reconciler.delete(event, hint)),
  };
}
