// Re-verification: IAM converged to the ledger's last applied desired state,
// under a won verification claim. One protocol for both callers: a worker
// that owes a verification (a lost claim's late write may have landed) and an
// operator's `ips drift --repair` (IAM changed out of band). Both claim the
// policy for verification first (Ledger.claimVerification); this does the rest:
//
//   1. the desired state as an event (nothing known: nothing to converge);
//   2. the IAM step under a claim keeper, written whatever IAM shows (a read
//      may lag the change being undone), the policy looked for by name (a
//      late write may have put it at another path) and moved where the
//      ledger says;
//   3. the verification completed, fenced by the claim's token.
//
// A claim lost during the step marks the policy again: a write of ours may
// land after the next owner's.
import type { PolicyEvent } from '../contract/event.js';
import { splitPolicyKey } from '../contract/policy-key.js';
import type { IamOutcome } from '../contract/outcome.js';
import { stepOf } from '../contract/outcome.js';
import { ClaimLostError, RejectedEventError, TransientError } from '../faults/errors.js';
import { isRetriable } from '../faults/classify.js';
import { retry } from '../faults/retry.js';
import type { RetryPolicy } from '../faults/retry.js';
import type { Ledger, LedgerEntry } from '../ledger/ledger.js';
import type { Metrics } from '../metrics/metrics.js';
import { METRIC } from '../metrics/metrics.js';
import { ClaimKeeper } from './claim-keeper.js';
import type { Applier } from './types.js';
import type { PolicyBatchContext } from './policy-batch.js';

export interface ConvergeParts {
  ledger: Ledger;
  applier: Applier;
  /** IPS_CLAIM_TTL_MS: the claim keeper renews at a third of it. */
  claimTtlMs: number;
  /** IPS_LATE_WRITE_MS: how long a write of ours may land after a lost claim. */
  lateWriteMs: number;
  /** Counts the marks a lost claim adds (verifications_requested) and those that could not be written. */
  metrics?: Metrics;
}

/** A won verification claim (Ledger.claimVerification). */
export interface VerificationClaim {
  token: string;
  expiresAt: number;
  /** The entry as the claim found it. */
  previous: LedgerEntry | undefined;
}

/**
 * How it ended: `converged` (IAM now holds the desired state, `outcome` says
 * what the step did), `nothing-to-converge` (the ledger knows no desired
 * state), `refused` (IAM refuses the ledger's state, say a policy no longer
 * ours: waiting will not change that; the marks are answered and the drift
 * audit reports it).
 */
export type Convergence = { result: 'converged'; outcome: IamOutcome } | { result: 'nothing-to-converge' } | { result: 'refused'; refusal: RejectedEventError };

/**
 * Converges one policy under `claim` and completes the verification. Throws
 * what the step could not get past (transient: the claim is kept for the
 * caller's retry to win again, or marked again when it was lost) and
 * TransientError `claim-lost` when the completion finds the claim taken over.
 * `step`: how often the IAM step is tried within the claim (default once).
 */
export async function convergeClaimed(parts: ConvergeParts, policy: string, claim: VerificationClaim, step: RetryPolicy = { attempts: 1, baseMs: 0, capMs: 0 }): Promise<Convergence> {
  const { ledger, applier } = parts;
  const seen = claim.previous?.verifyRequested ?? 0;
  const desired = claim.previous ? eventFromDesired(claim.previous) : undefined;
  let convergence: Convergence = { result: 'nothing-to-converge' };
  if (desired) {
    const keeper = new ClaimKeeper(ledger, policy, claim.token, claim.expiresAt, parts.claimTtlMs);
    try {
      const outcome = (await retry(
        step,
        async () => {
          keeper.check();
          // A read may predate the write being undone: the document is written whatever IAM shows. A
          // late write may have put the policy at another path: it is looked for by name, and one of
          // ours elsewhere is moved where the ledger says.
          const done = stepOf(await applier.apply(desired, { ledgerSaysPresent: desired.type === 'policy.upserted', forceWrite: true, pathUnknown: true, relocate: true, guard: keeper }));
          keeper.check();
          return done.outcome;
        },
        { retriable: (error) => !keeper.lost && !(error instanceof RejectedEventError) && isRetriable(error) },
      ))!;
      convergence = { result: 'converged', outcome };
    } catch (error) {
      if (keeper.lost) await markAgain(parts, policy);
      if (!(error instanceof RejectedEventError)) throw error;
      convergence = { result: 'refused', refusal: error };
    } finally {
      keeper.stop();
    }
  }
  try {
    await ledger.completeVerification(policy, claim.token, seen);
  } catch (error) {
    if (error instanceof ClaimLostError) throw new TransientError('claim-lost', error.message, { cause: error });
    throw error;
  }
  return convergence;
}

/**
 * A worker's re-verification of a policy the ledger marked: waits
 * (TransientError `verification-waits`) until no late write can land, claims
 * the policy for verification and converges it. Nothing owed: no-op.
 */
export async function verifyPolicy(ctx: PolicyBatchContext, policy: string): Promise<void> {
  const result = await ctx.ledger.claimVerification(policy, ctx.owner);
  if (!result.won) {
    if (result.because === 'claimed-elsewhere') throw new TransientError('claimed-elsewhere', `policy ${policy} is claimed by ${result.entry.claim?.owner ?? 'another owner'} (re-verification waits)`);
    if (result.because === 'verification-waits') {
      throw new TransientError(
        'verification-waits',
        `policy ${policy}: a lost claim's write may still land in IAM until ${new Date(result.entry.verifyAfter ?? 0).toISOString()} (re-verification waits)`,
      );
    }
    return; // answered meanwhile
  }
  const convergence = await convergeClaimed(ctx, policy, result);
  // IAM refusing the ledger's state (the policy is no longer ours, say) is counted; the drift audit reports it.
  ctx.metrics.increment(METRIC.verifications, { converged: convergence.result === 'converged' ? 'yes' : convergence.result });
}

/** Best effort: a mark that cannot be written leaves the claim's own expiry and the takeover's mark. */
async function markAgain(parts: ConvergeParts, policy: string): Promise<void> {
  parts.metrics?.increment(METRIC.verificationsRequested, { why: 'lost during the IAM step' });
  try {
    await parts.ledger.requestVerification(policy, { ms: parts.lateWriteMs });
  } catch {
    parts.metrics?.increment(METRIC.verificationRequestsFailed);
  }
}

/** The ledger's last applied state as an event, for re-verification; none when the ledger knows too little. */
export function eventFromDesired(entry: LedgerEntry): PolicyEvent | undefined {
  const desired = entry.desired;
  if (!desired) return undefined;
  const base = { specVersion: '1' as const, eventId: `verify:${entry.policy}`, ...splitPolicyKey(entry.policy), policyPath: desired.path, pathGiven: true };
  if (entry.state === 'deleted') return { ...base, type: 'policy.deleted' };
  if ((entry.state === 'present' || entry.state === 'retained-in-use') && desired.document) {
    return { ...base, type: 'policy.upserted', document: desired.document, tags: desired.tags ?? {}, ...(desired.description !== undefined ? { description: desired.description } : {}) };
  }
  return undefined;
}
