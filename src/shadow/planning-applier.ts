// The IAM step of a shadow worker (IPS_MODE=shadow): instead of writing, it
// reads the policy as IAM holds it now and says what the live processor's
// step would do, by the plan's own rules (plan/planner.ts), so a shadow run
// and `ips plan` never disagree. Only IAM reads are made: GetPolicy,
// GetPolicyVersion, ListEntitiesForPolicy, ListPolicies. The shadow's own
// ledger has already judged the event (duplicate, stale, coalesced) by the
// same protocol as a live worker's; what reaches here takes effect in the
// shadow's fold, so it is planned against IAM alone.
import type { PolicyEvent } from '../contract/event.js';
import type { IamOutcome } from '../contract/outcome.js';
import { policyKey } from '../contract/policy-key.js';
import { RejectedEventError } from '../faults/errors.js';
import type { ApplyReason } from '../faults/errors.js';
import type { PlanAction, PlanSettings } from '../plan/planner.js';
import { planPolicy } from '../plan/planner.js';
import { readWorlds } from '../plan/world.js';
import type { WorldSources } from '../plan/world.js';
import type { Applier } from '../pipeline/types.js';

/** What IAM reads a shadow needs: the plan's sources, without the ledger (the shadow's own judged the event). */
export type ShadowSources = Omit<WorldSources, 'ledger' | 'recentEventIds'>;

/** The outcome a live worker's step would log for a planned action. */
function outcomeOf(action: PlanAction, event: PolicyEvent): IamOutcome {
  switch (action) {
    case 'create':
      return 'created';
    case 'update':
      return 'updated';
    case 'delete':
      return 'deleted';
    case 'retain':
      return 'retained-in-use';
    default:
      return event.type === 'policy.deleted' ? 'absent' : 'unchanged';
  }
}

export function planningApplier(sources: ShadowSources, settings: PlanSettings): Applier {
  const world: WorldSources = { ...sources, ledger: { get: async () => undefined, archivedEvents: async () => [] }, recentEventIds: Number.MAX_SAFE_INTEGER };
  return {
    apply: async (event) => {
      const policy = policyKey(event);
      const worlds = await readWorlds(world, [{ policy, paths: [event.policyPath], eventIds: [event.eventId], epoch: 0 }]);
      const [step] = planPolicy([{ event, payloadHash: '' }], { iam: worlds.get(policy)?.iam }, settings);
      if (step!.action === 'refuse') throw new RejectedEventError(step!.reason as ApplyReason, step!.detail);
      return outcomeOf(step!.action, event);
    },
  };
}

/** The action a shadow reports for a record's outcome: what the live processor would do with it. */
export const PLANNED_ACTION: Record<string, PlanAction> = {
  created: 'create',
  updated: 'update',
  unchanged: 'none',
  deleted: 'delete',
  'retained-in-use': 'retain',
  absent: 'none',
  duplicate: 'duplicate',
  stale: 'stale',
  superseded: 'none',
  rejected: 'refuse',
};
