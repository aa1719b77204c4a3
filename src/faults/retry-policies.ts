// Every retry policy of the processor and its tools, by name, with why its
// numbers are what they are. A policy is a value (faults/retry.ts, RetryPolicy):
// tries in all, and the backoff's base and cap (full jitter, faults/backoff.ts;
// the wait after try n is uniform in [0, min(cap, base * 2^n)]). What is
// retriable is said where the policy is used, next to the call it retries.
// A cap of 0 means no wait: a look-again round after an answer that is a
// decision to make again, not a fault to wait out.
//
// The pipeline's own policy (one policy's unit of a batch, for as long as it
// takes) comes from Config: see `settle`.
import type { RetryPolicy } from './retry.js';

export const RETRY = {
  /**
   * One IAM step (iam/reconciler.ts). One try: the SDK retries each call and
   * the pipeline retries the policy's unit; no retries of retries. Direct
   * callers (tests, tools) may ask for more tries with the same backoff.
   */
  iamStep: { attempts: 1, baseMs: 100, capMs: 5_000 },
  /**
   * A policy just created is invisible to GetPolicy for a moment (IAM is
   * eventually consistent): 4 looks within about 1.5 s at most, short enough
   * to stay inside the step; longer lag is the pipeline's to wait out.
   */
  iamVisibility: { attempts: 4, baseMs: 100, capMs: 800 },
  /**
   * A stale version list, or DeleteConflict while IAM shows neither an
   * attachment nor a version left: read again and decide again, at once, 5
   * rounds; then the conflict goes up as transient (`iam-versions-conflict`,
   * `iam-delete-conflict`) and the pipeline waits.
   */
  iamLookAgain: { attempts: 5, baseMs: 0, capMs: 0 },
  /**
   * A claim that meets another owner's expired claim ends it (with its mark)
   * and claims again: 3 takeovers, so 4 claims in all. A claim that keeps
   * expiring under it is one the pipeline retries later.
   */
  claimTakeover: { attempts: 4, baseMs: 0, capMs: 0 },
  /**
   * What DynamoDB left unprocessed in a BatchWriteItem or BatchGetItem
   * (throttling) is sent again: 5 sends in all, waits under 1 s, so that one
   * archive chunk does not hold its batch; then `ledger-batch-unprocessed`
   * goes up as transient.
   */
  batchUnprocessed: { attempts: 5, baseMs: 50, capMs: 1_000 },
  /**
   * A park's transaction (park/park-store.ts) cancelled because another was in
   * progress on one of its items: every park and release also writes a
   * registry item (one of 16), so policies parked or drained at once meet there. 8 tries,
   * waits under 1 s; then the conflict goes up as transient and the caller
   * (the pipeline, the redriver's next round) tries again later.
   */
  parkTransaction: { attempts: 8, baseMs: 20, capMs: 1_000 },
  /**
   * The progress items a status read asks for: what BatchGetItem leaves
   * unprocessed is asked again at once, 5 rounds; an item still missing then
   * reads as absent (a status, not a decision).
   */
  progressUnprocessed: { attempts: 5, baseMs: 0, capMs: 0 },
  /**
   * A checkpoint the daemon answers with throttling (its write to the lease
   * table): a short wait is enough. The tries come from Config
   * (IPS_CHECKPOINT_ATTEMPTS, default 5); the first wait is up to 400 ms.
   */
  checkpoint: { attempts: 5, baseMs: 400, capMs: 5_000 },
  /**
   * Building a shard's pipeline (its place, its epoch, its clients): until it
   * works or the processor stops, since answering `initialize` without one
   * would let the daemon deliver records this child cannot settle. Up to 30 s
   * apart: a start-up that fails keeps failing for a while (a role, a table).
   */
  shardStart: { attempts: Infinity, baseMs: 500, capMs: 30_000 },
  /**
   * A read of the drift audit (throttling, 5xx): 6 tries within about 10 s.
   * The audit reads many policies; one that will not read is reported, not
   * waited for.
   */
  auditRead: { attempts: 6, baseMs: 200, capMs: 5_000 },
  /**
   * One repair of `ips drift --repair` under its claim: 6 tries, waits under
   * 3 s so that the claim (renewed meanwhile) is not held long by a tool.
   */
  driftRepair: { attempts: 6, baseMs: 200, capMs: 3_000 },
  /**
   * A lease reset that met a live worker's renewal (`ips replay --force`):
   * read the lease again and write again at once, 5 tries.
   */
  leaseReset: { attempts: 5, baseMs: 0, capMs: 0 },
  /**
   * The entries of a PutRecords that Kinesis refused (throttling): sent again
   * until all are in, first wait up to 100 ms, at most 2 s (the operator
   * tools' own calls).
   */
  producerPut: { attempts: Infinity, baseMs: 100, capMs: 2_000 },
  /**
   * KPL aggregates that landed on a shard not holding all their records (the
   * stream was resharded meanwhile): planned again on a fresh shard map, 5
   * rounds; then the put fails (is the stream being resharded still?).
   */
  aggregateReshard: { attempts: 5, baseMs: 0, capMs: 0 },
} as const satisfies Record<string, RetryPolicy>;

/**
 * The pipeline's policy for one policy's unit of a batch and a shard's
 * start-up reads (faults/retry.ts, retryUntilSettled): for as long as it
 * takes, base and cap from Config (IPS_RETRY_BASE_MS, IPS_RETRY_BACKOFF_CAP_MS).
 */
export function settle(config: { retryBaseMs: number; retryBackoffCapMs: number }): RetryPolicy {
  return { attempts: Infinity, baseMs: config.retryBaseMs, capMs: config.retryBackoffCapMs };
}
