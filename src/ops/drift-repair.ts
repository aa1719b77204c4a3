// `ips drift --repair`: one drifted policy converged to the ledger's desired
// state by the protocol a worker's re-verification runs (docs/ledger.md,
// "Claims that outlive their worker"): mark the policy for re-verification,
// claim it for verification (refused while a worker holds it: then a worker
// settles it), converge (pipeline/converge.ts: the one converge function),
// complete. So a repair never races a live worker, and writes what a worker
// would write.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from '../config/config.js';
import { TransientError } from '../faults/errors.js';
import { RETRY } from '../faults/retry-policies.js';
import type { Ledger } from '../ledger/ledger.js';
import { convergeClaimed } from '../pipeline/converge.js';
import type { Applier } from '../pipeline/types.js';
import type { Drift } from './drift-audit.js';

export type RepairResult = { policy: string; result: 'repaired'; outcome: string } | { policy: string; result: 'skipped'; why: string } | { policy: string; result: 'failed'; why: string };

export interface RepairOptions {
  /** The ledger (DynamoDbLedger): a repair that cannot finish gives its claim up. */
  ledger: Ledger & { releaseClaim(policy: string, token: string): Promise<boolean> };
  applier: Applier;
  config: Config;
  /** Attempts of the IAM step when it fails for reasons that pass. */
  attempts?: number;
}

/** Who repairs, as a claim owner: host/pid/what/nonce, like a worker's host/pid/shard/nonce. */
export function repairOwner(): string {
  return `${hostname()}/${process.pid}/ips-drift/${randomUUID().slice(0, 8)}`;
}

/** Converges one drifted policy to the ledger's desired state under a verification claim, as a worker's re-verification does. */
export async function repairPolicy(drift: Drift, owner: string, options: RepairOptions): Promise<RepairResult> {
  const { ledger, applier, config } = options;
  const policy = drift.policy;
  if (drift.notRepairable) return { policy, result: 'skipped', why: drift.notRepairable };
  await ledger.requestVerification(policy);
  const claim = await ledger.claimVerification(policy, owner);
  if (!claim.won) {
    if (claim.because === 'claimed-elsewhere')
      return { policy, result: 'skipped', why: `claimed by ${claim.entry.claim?.owner ?? 'a worker'}: its step re-reads IAM (the policy is marked for re-verification)` };
    if (claim.because === 'verification-waits')
      return { policy, result: 'skipped', why: `a lost claim's write may land in IAM until ${new Date(claim.entry.verifyAfter ?? 0).toISOString()}: a worker re-verifies it then` };
    return { policy, result: 'skipped', why: 'verified by a worker meanwhile' };
  }
  const parts = { ledger, applier, claimTtlMs: config.claimTtlMs, lateWriteMs: config.lateWriteMs };
  try {
    const convergence = await convergeClaimed(parts, policy, claim, { ...RETRY.driftRepair, attempts: options.attempts ?? RETRY.driftRepair.attempts });
    if (convergence.result === 'refused') return { policy, result: 'failed', why: `IAM refused: ${convergence.refusal.message}` };
    return { policy, result: 'repaired', outcome: convergence.result === 'converged' ? convergence.outcome : convergence.result };
  } catch (error) {
    // The claim lost (during the step, or taken over before the completion): a write of ours may land
    // after a worker's, so the policy is marked again, as a worker does. Otherwise the claim is given
    // up and the mark stays: a worker's next step on the policy reads IAM.
    if (error instanceof TransientError && (error.reason === 'claim-lost' || error.reason === 'claim-deadline')) {
      await ledger.requestVerification(policy, { ms: config.lateWriteMs }).catch(() => undefined);
      return { policy, result: 'failed', why: `the verification claim was lost: a worker re-verifies it (${error.message})` };
    }
    await ledger.releaseClaim(policy, claim.token).catch(() => false);
    return { policy, result: 'failed', why: (error as Error).message };
  }
}
