// The pipeline's IAM step (pipeline/types.ts, Applier) as the reconciler
// provides it: an upsert or a delete, reconciled state-aware (ADR-002).
import type { PolicyEvent } from '../contract/event.js';
import type { IamReconciler } from '../iam/reconciler.js';
import type { Applier, ApplyHint } from '../pipeline/types.js';

export function reconcilerApplier(reconciler: Pick<IamReconciler, 'upsertStep' | 'deleteStep'>): Applier {
  return {
    apply: (event: PolicyEvent, hint?: ApplyHint) => (event.type === 'policy.upserted' ? reconciler.upsertStep(event, hint) : reconciler.deleteStep(event, hint)),
  };
}
