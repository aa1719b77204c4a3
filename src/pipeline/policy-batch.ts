// Settles the records of one policy within one batch, in stream order:
//
//   1. the duplicate cache and the batch itself answer what they can
//      (redelivered, replayed, retried, stale) without DynamoDB;
//   2. the last remaining event is claimed in the ledger with a conditional
//      write; a refusal is explained from the item it returns;
//   3. only a won claim touches IAM, and only for the last live event:
//      earlier ones are `superseded` (coalescing), so IAM calls grow with
//      policies, not events;
//   4. the completion moves the high-water mark past every record of the
//      policy in the batch, fenced by the claim token;
//   5. the cache learns what the ledger now holds.
//
// A transient fault throws TransientError out of here: nothing is recorded,
// and the caller runs the whole policy again later (a re-claim by the same
// owner succeeds; the IAM step is state-aware, so running it again is safe).
import type { PolicyEvent } from '../contract/event.js';
import { RejectedEventError, TransientError } from '../contract/errors.js';
import type { IamOutcome, Outcome } from '../contract/outcome.js';
import type { DeadLetterSink } from '../deadletter/dead-letter-store.js';
import { documentHash } from '../iam/document.js';
import type { DedupCache } from '../ledger/dedup-cache.js';
import type { Ledger, LedgerEntry, PolicyState } from '../ledger/ledger.js';
import { ClaimLostError, rememberEventIds } from '../ledger/ledger.js';
import { fromLedgerSequence, toLedgerSequence } from '../ledger/sequence.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Applier, Settlement, ValidRecord } from './types.js';

export interface PolicyBatchContext {
  ledger: Ledger;
  cache: DedupCache;
  applier: Applier;
  deadLetters: DeadLetterSink;
  metrics: Metrics;
  /** Claim owner: worker, shard and process. */
  owner: string;
  epoch: number;
  recentEventIds: number;
}

const STATE_AFTER: Record<IamOutcome, PolicyState> = {
  created: 'present',
  updated: 'present',
  unchanged: 'present',
  deleted: 'deleted',
  absent: 'deleted',
  'retained-in-use': 'retained-in-use',
};

export async function settlePolicyBatch(ctx: PolicyBatchContext, records: ValidRecord[]): Promise<Settlement[]> {
  const first = records[0];
  if (!first) return [];
  const policy = first.event.policyName;
  const settled = new Map<ValidRecord, Settlement>();
  const settle = (item: ValidRecord, outcome: Outcome, reason?: string) =>
    settled.set(item, {
      record: item.record,
      outcome,
      ...(reason !== undefined ? { reason } : {}),
      eventId: item.event.eventId,
      policyName: policy,
    });

  // 1. What the cache and the batch itself can answer.
  const candidates: ValidRecord[] = [];
  const seenIds = new Set<string>();
  let batchRevision: number | undefined;
  for (const item of records) {
    const { event, record } = item;
    const verdict = ctx.cache.verdict(ctx.epoch, policy, record.sequenceNumber, event.eventId, event.revision);
    if (verdict) {
      settle(item, verdict, 'cache');
      ctx.metrics.increment('dedup_hits', { source: 'cache', verdict });
    } else if (seenIds.has(event.eventId)) {
      settle(item, 'duplicate', 'batch');
    } else if (event.revision !== undefined && batchRevision !== undefined && event.revision <= batchRevision) {
      settle(item, 'stale', 'batch');
    } else {
      candidates.push(item);
    }
    seenIds.add(event.eventId);
    if (event.revision !== undefined) batchRevision = Math.max(batchRevision ?? event.revision, event.revision);
  }

  // 2. Claim the last candidate; a refused one is settled and the one before it tried.
  let claim: { token: string; previous: LedgerEntry | undefined } | undefined;
  while (candidates.length > 0 && !claim) {
    const last = candidates[candidates.length - 1]!;
    const result = await ctx.ledger.claim({
      policy,
      sequenceNumber: last.record.sequenceNumber,
      eventId: last.event.eventId,
      ...(last.event.revision !== undefined ? { revision: last.event.revision } : {}),
      owner: ctx.owner,
      epoch: ctx.epoch,
    });
    if (result.won) {
      if (result.takenOver) ctx.metrics.increment('claims_taken_over');
      claim = { token: result.token, previous: result.previous };
      break;
    }
    const entry = result.entry;
    if (entry.epoch === ctx.epoch) {
      const last = entry.hwm === undefined ? undefined : fromLedgerSequence(entry.hwm);
      ctx.cache.learn(ctx.epoch, policy, last, entry.revision, entry.eventIds);
    }
    switch (result.because) {
      case 'claimed-elsewhere':
        ctx.metrics.increment('claims_refused', { because: 'claimed-elsewhere' });
        throw new TransientError('claimed-elsewhere', `policy ${policy} is claimed by ${entry.claim?.owner ?? 'another owner'}`);
      case 'duplicate-sequence':
        // Every remaining candidate lies at or below the high-water mark.
        for (const item of candidates.splice(0)) settle(item, 'duplicate', 'ledger');
        ctx.metrics.increment('dedup_hits', { source: 'ledger', verdict: 'duplicate' });
        break;
      case 'duplicate-event-id':
        settle(candidates.pop()!, 'duplicate', 'ledger');
        ctx.metrics.increment('dedup_hits', { source: 'ledger', verdict: 'duplicate' });
        break;
      case 'stale-revision':
        settle(candidates.pop()!, 'stale', 'ledger');
        ctx.metrics.increment('dedup_hits', { source: 'ledger', verdict: 'stale' });
        break;
    }
  }

  if (claim) await applyClaimed(ctx, policy, records, candidates, claim, settle);
  return records.map((item) => settled.get(item)!);
}

async function applyClaimed(
  ctx: PolicyBatchContext,
  policy: string,
  records: ValidRecord[],
  candidates: ValidRecord[],
  claim: { token: string; previous: LedgerEntry | undefined },
  settle: (item: ValidRecord, outcome: Outcome, reason?: string) => void,
): Promise<void> {
  // The ledger as it stood before the claim; an older epoch counts as empty.
  const previous = claim.previous && claim.previous.epoch === ctx.epoch ? claim.previous : undefined;
  const live = candidates.filter((item) => {
    const { event, record } = item;
    if (previous?.hwm !== undefined && previous.hwm >= toLedgerSequence(record.sequenceNumber)) {
      settle(item, 'duplicate', 'ledger');
    } else if (previous?.eventIds.includes(event.eventId)) {
      settle(item, 'duplicate', 'ledger');
    } else if (event.revision !== undefined && previous?.revision !== undefined && event.revision <= previous.revision) {
      settle(item, 'stale', 'ledger');
    } else {
      return true;
    }
    return false;
  });

  // 3. The IAM step for the last live event; a permanent refusal falls back
  // to the one before it, as applying the events in order would have.
  let applied: { item: ValidRecord; outcome: IamOutcome } | undefined;
  const hint = { likelyAbsent: previous === undefined || previous.state === 'deleted' };
  const refused = new Set<ValidRecord>();
  for (let i = live.length - 1; i >= 0 && !applied; i--) {
    const item = live[i]!;
    try {
      applied = { item, outcome: await ctx.applier.apply(item.event, hint) };
      settle(item, applied.outcome);
      for (const earlier of live.slice(0, i)) settle(earlier, 'superseded');
    } catch (error) {
      if (!(error instanceof RejectedEventError)) throw error;
      await ctx.deadLetters.store({
        shardId: item.record.shardId,
        sequenceNumber: item.record.sequenceNumber,
        partitionKey: item.record.partitionKey,
        reason: error.reason,
        detail: error.detail,
        data: item.record.data,
        eventId: item.event.eventId,
        policyName: policy,
        ...(item.record.arrivedAt !== undefined ? { arrivedAt: item.record.arrivedAt } : {}),
      });
      settle(item, 'rejected', error.reason);
      refused.add(item);
    }
  }

  // 4. Complete: the high-water mark moves past every record of the policy in this batch.
  const lastRecord = records[records.length - 1]!.record;
  // A refused event had no effect, so neither its eventId nor its revision is
  // remembered: once its cause is fixed, a redrive of it (a new record, same
  // bytes) is applied instead of being dropped as a duplicate. A redelivery of
  // the refused record itself stays a duplicate through the high-water mark.
  const effective = live.filter((item) => !refused.has(item));
  const revisions = effective.map((item) => item.event.revision).filter((r): r is number => r !== undefined);
  const revision = maxOf([...(previous?.revision !== undefined ? [previous.revision] : []), ...revisions]);
  const eventIds = rememberEventIds(previous?.eventIds ?? [], effective.map((item) => item.event.eventId), ctx.recentEventIds);
  const hash = applied ? hashOf(applied.item.event) : previous?.docHash;
  try {
    await ctx.ledger.complete({
      policy,
      token: claim.token,
      epoch: ctx.epoch,
      sequenceNumber: lastRecord.sequenceNumber,
      shardId: lastRecord.shardId,
      ...(revision !== undefined ? { revision } : {}),
      eventIds,
      ...(hash !== undefined ? { docHash: hash } : {}),
      state: applied ? STATE_AFTER[applied.outcome] : (previous?.state ?? 'unknown'),
      outcome: applied?.outcome ?? 'rejected',
    });
  } catch (error) {
    if (error instanceof ClaimLostError) {
      // Another owner took the expired claim over; it decides. Run again to learn its verdict.
      ctx.metrics.increment('claims_lost');
      throw new TransientError('claim-lost', error.message, { cause: error });
    }
    throw error;
  }

  // 5. The cache learns what the ledger now holds.
  ctx.cache.learn(ctx.epoch, policy, lastRecord.sequenceNumber, revision, eventIds);
}

function maxOf(values: number[]): number | undefined {
  return values.length === 0 ? undefined : Math.max(...values);
}

function hashOf(event: PolicyEvent): string | undefined {
  return event.type === 'policy.upserted' ? documentHash(event.document) : undefined;
}
