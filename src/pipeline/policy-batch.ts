// Settles the records of one policy within one batch, in stream order: the
// executor of the protocol. Every decision is a pure function of values
// (policy-plan.ts, batch-knowledge.ts, completion-plan.ts); this module only
// does the I/O they call for, in this order:
//
//   1. the duplicate cache answers the duplicates it knows of (redelivered,
//      replayed, retried) without DynamoDB (screenBatch);
//   2. the last remaining event is claimed in the ledger with a conditional
//      write; a refusal is explained from the item it returns;
//   3. once the claim is won, the plan (planPolicyBatch): the ledger's
//      verdicts, and the events IAM gets the in-order effect of, under a
//      claim keeper; earlier events a later one makes moot are `superseded`
//      (coalescing), so IAM calls grow with policies, not events;
//   4. the completion (planCompletion) moves the ledger's position past every
//      record of the part, fenced by the claim token;
//   5. the cache learns what the ledger now holds.
//
// A plan may cut the batch: the records after the cut are the next part,
// settled the same way once this part completed (settlePolicyBatch loops).
//
// A transient fault throws TransientError out of here: nothing is recorded,
// and the caller runs the whole policy again later (a re-claim by the same
// owner succeeds; the IAM step is state-aware, so running it again is safe).
import type { PolicyEvent } from '../contract/event.js';
import { policyKey, splitPolicyKey } from '../contract/policy-key.js';
import type { IamOutcome, Outcome } from '../contract/outcome.js';
import { stepOf } from '../contract/outcome.js';
import type { LateWrites, LedgerEntry } from '../ledger/ledger.js';
import { knowledgeOf, needsVerification, windowFull } from '../ledger/ledger.js';
import { verdictOf } from '../ledger/verdict.js';
import type { KnownVerdict } from '../ledger/verdict.js';
import { METRIC } from '../metrics/metrics.js';
import { ClaimKeeper, untilGivenUp } from './claim-keeper.js';
import { archiveForgotten, archivedAmong } from './window-archive.js';
import { planCompletion } from './completion-plan.js';
import { screened } from './batch-knowledge.js';
import { CONVERGES, placed, planPolicyBatch, screenBatch, settleWaiting } from './policy-plan.js';
import type { PolicyKnowledge, StepResult } from './policy-plan.js';
import type { PolicyBatchContext, PolicyBatchResult, Settlement, SettleOptions, ValidRecord } from './types.js';
import { ClaimLostError, RejectedEventError, TransientError } from '../faults/errors.js';
import type { ApplyReason } from '../faults/errors.js';

export type { PolicyBatchContext } from './types.js';

/**
 * Settles a policy's records of a batch, part after part: a part is what one
 * claim and one completion settle; the records after a cut (policy-plan.ts)
 * are the next part, settled as if a batch boundary stood before them.
 */
export async function settlePolicyBatch(ctx: PolicyBatchContext, records: ValidRecord[], options: SettleOptions = {}): Promise<PolicyBatchResult> {
  const settled = new Map<ValidRecord, Settlement>();
  let verificationOwed = false;
  let pending = records;
  while (pending.length > 0) {
    // Given up (its records are to be parked): no further part starts.
    options.giveUp?.throwIfAborted();
    const part = new PolicyBatch(ctx, pending, options.giveUp);
    const rest = await part.settle();
    for (const [item, settlement] of part.settled) settled.set(item, settlement);
    verificationOwed ||= part.verificationOwed;
    pending = rest;
  }
  return { settlements: records.map((item) => settled.get(item)!), verificationOwed };
}

/** One part of a policy's records of one batch, and the outcome each has been given so far. */
class PolicyBatch {
  /** The policy's key (contract/policy-key.ts): the ledger's and the cache's key. */
  private readonly policy: string;
  /** The policy's account (when its key names one) and name, as settlements and dead letters name them. */
  private readonly named: { account?: string; policyName: string };
  readonly settled = new Map<ValidRecord, Settlement>();
  /** The ledger entry the last refused claim returned. */
  private lastSeen: LedgerEntry | undefined;
  /** See PolicyBatchResult.verificationOwed. */
  verificationOwed = false;

  constructor(
    private readonly ctx: PolicyBatchContext,
    private readonly records: ValidRecord[],
    private readonly giveUp?: AbortSignal,
  ) {
    this.policy = policyKey(records[0]!.event);
    this.named = splitPolicyKey(this.policy);
  }

  /** Settles what this part can; returns the records left for the next part (none: all settled). */
  async settle(): Promise<ValidRecord[]> {
    const { ctx, policy } = this;
    // 1. The cache answers what it knows of.
    const cached = this.records.map(({ record, event, payloadHash }) => ctx.cache.verdict(ctx.epoch, policy, record, event.eventId, payloadHash) === 'duplicate');
    const { duplicates, candidates } = screenBatch(this.records, cached);
    for (const item of duplicates) {
      this.give(item, 'duplicate', 'cache');
      ctx.metrics.increment(METRIC.dedupHits, { source: 'cache', verdict: 'duplicate' });
    }
    const claim = await this.claimLast(candidates);
    if (claim) return this.applyClaimed(claim);
    // Every record already settled, but IAM owes a look (a zombie's own re-run): verifyPolicy, retried on
    // its own (a retry of this batch would be answered by the cache, which knows nothing of marks).
    if (needsVerification(this.lastSeen)) this.verificationOwed = true;
    // Events that waited on candidates the ledger refused: judged as a part of their own.
    return this.records.filter((item) => !this.settled.has(item));
  }

  /** Settles an event by what is already known of it (verdict.ts); `source`: the layer that knew. */
  private async settleKnown(item: ValidRecord, verdict: KnownVerdict, source: 'ledger' | 'batch'): Promise<void> {
    if (verdict === 'event-id-conflict') return this.rejectConflict(item, source);
    const outcome = verdict === 'stale-revision' ? 'stale' : 'duplicate';
    this.give(item, outcome, source);
    if (source === 'ledger') this.ctx.metrics.increment(METRIC.dedupHits, { source, verdict: outcome });
  }

  private give(item: ValidRecord, outcome: Outcome, reason?: string): void {
    this.settled.set(item, {
      record: item.record,
      outcome,
      ...(reason !== undefined ? { reason } : {}),
      eventId: item.event.eventId,
      ...this.named,
    });
  }

  /** A permanent refusal: stored in the dead-letter table with its reason, then `rejected`. */
  private async reject(item: ValidRecord, reason: ApplyReason, detail: string): Promise<void> {
    await this.ctx.deadLetters.store({
      record: item.record,
      partitionKey: item.record.partitionKey,
      reason,
      detail,
      data: item.record.data,
      eventId: item.event.eventId,
      ...this.named,
      ...(item.record.arrivedAt !== undefined ? { arrivedAt: item.record.arrivedAt } : {}),
    });
    this.give(item, 'rejected', reason);
  }

  private rejectConflict(item: ValidRecord, where: string): Promise<void> {
    this.ctx.metrics.increment(METRIC.eventIdConflicts, { source: where });
    return this.reject(item, 'event-id-conflict', `eventId ${JSON.stringify(item.event.eventId)} was already used for another payload of policy ${this.policy} (${where})`);
  }

  /** 2. Claims the last candidate; a refused one is settled and the one before it tried. */
  private async claimLast(candidates: ValidRecord[]): Promise<WonClaim | undefined> {
    const { ctx, policy } = this;
    while (candidates.length > 0) {
      const last = candidates[candidates.length - 1]!;
      const result = await ctx.ledger.claim({
        policy,
        record: last.record,
        eventId: last.event.eventId,
        payloadHash: last.payloadHash,
        ...(last.event.revision !== undefined ? { revision: last.event.revision } : {}),
        owner: ctx.owner,
        epoch: ctx.epoch,
      });
      if (result.won) {
        if (result.takenOver) {
          // The previous owner's writes may land until its claim's expiry and a
          // call's lifetime after: the takeover marked the policy in the same
          // write that ended that claim, and IAM is re-verified once they no longer can.
          ctx.metrics.increment(METRIC.claimsTakenOver);
          ctx.metrics.increment(METRIC.verificationsRequested, { why: 'claim taken over' });
          this.verificationOwed = true;
        }
        return { token: result.token, expiresAt: result.expiresAt, previous: result.previous, takenOver: result.takenOver };
      }
      const entry = result.entry;
      this.lastSeen = entry;
      // Not from an entry claimed elsewhere: the retry must meet the entry, and any re-verification it owes.
      if (entry.epoch >= ctx.epoch && result.because !== 'claimed-elsewhere') ctx.cache.learn(ctx.epoch, policy, entry.position, entry.events);
      switch (result.because) {
        case 'claimed-elsewhere':
          ctx.metrics.increment(METRIC.claimsRefused, { because: 'claimed-elsewhere' });
          throw new TransientError('claimed-elsewhere', `policy ${policy} is claimed by ${entry.claim?.owner ?? 'another owner'}`);
        case 'duplicate-sequence':
          // Every remaining candidate lies at or before the ledger's position.
          for (const item of candidates.splice(0)) this.give(item, 'duplicate', 'ledger');
          ctx.metrics.increment(METRIC.dedupHits, { source: 'ledger', verdict: 'duplicate' });
          break;
        case 'duplicate-event-id':
        case 'event-id-conflict':
          await this.settleKnown(candidates.pop()!, result.because, 'ledger');
          break;
        case 'stale-revision': {
          // The claim's condition sees the entry's window only: an eventId that left it for the
          // archive comes before the revision (verdict.ts).
          const last = candidates.pop()!;
          const archived = windowFull(entry, ctx.recentEventIds) ? await ctx.ledger.archivedEvents(policy, entry.epoch, [last.event.eventId], entry.position) : [];
          await this.settleKnown(last, verdictOf(knowledgeOf(entry, last.record, last.event.eventId, archived), screened(last)) ?? 'stale-revision', 'ledger');
          break;
        }
      }
    }
    return undefined;
  }

  /** 3. The IAM step under the claim, 4. the completion; returns the records after the cut. */
  private async applyClaimed(claim: WonClaim): Promise<ValidRecord[]> {
    const { ctx, policy } = this;
    // The ledger as it stood before the claim; an older epoch counts as empty.
    const previous = claim.previous && claim.previous.epoch >= ctx.epoch ? claim.previous : undefined;
    const open = this.records.filter((item) => !this.settled.has(item));
    // Events that left the entry's window are in the archive: looked up only when the window is full.
    const archived = await archivedAmong(ctx.ledger, policy, open, previous, ctx.recentEventIds);
    const plan = planPolicyBatch({ records: this.records, open, entry: previous, archived, takenOver: claim.takenOver });
    for (const later of plan.rest) this.settled.delete(later);
    for (const { item, verdict } of plan.known) await this.settleKnown(item, verdict, 'ledger');

    // 3. The IAM step, kept within its claim.
    const step = await this.withinClaim(claim, (guard) => this.applyCoalesced(plan.live, plan.start, guard));

    // Working back from the last, an event is tried only after every later live one was refused or
    // was a delete the policy's attachments kept: those deletes run again after a cut; the ledger's
    // verdicts and IAM's refusals stand.
    const { holds, scope, rest } = settleWaiting(plan, this.records, step.refused, (item) => this.settled.has(item));
    for (const { item, verdict, source } of holds) await this.settleKnown(item, verdict, source);
    for (const later of rest) this.settled.delete(later);

    // 4. Complete: the position moves past every record of the policy in this part.
    const completed = new Set(scope);
    const effective = plan.live.filter((item) => !step.refused.has(item) && completed.has(item));
    const completion = planCompletion({
      policy,
      token: claim.token,
      epoch: ctx.epoch,
      recentEventIds: ctx.recentEventIds,
      lineage: ctx.lineage,
      claimTtlMs: ctx.claimTtlMs,
      claim,
      previous,
      scope,
      effective,
      step,
    });
    const { position, epoch, events } = completion.request;
    // What leaves the window goes to the archive before the completion, so a crash right after
    // the completion forgets none of it. This step's own events are tagged with the position its
    // completion moves to: they count only once that completion holds (Ledger.archiveEvents),
    // never for whoever takes over a claim whose completion did not land. Archived under the
    // epoch the completion writes (the entry's, never lower): readers of that epoch find them.
    await archiveForgotten(ctx.ledger, policy, completion.forgotten, completion.ownEventIds, position, epoch);
    const answered = completion.answered;
    try {
      await ctx.ledger.complete(completion.request);
    } catch (error) {
      if (error instanceof ClaimLostError) {
        // Another owner took the expired claim over and decides; but our IAM
        // step may have landed after its own. Ask for IAM to be re-read, then
        // run again to learn its verdict (and do that re-read).
        ctx.metrics.increment(METRIC.claimsLost);
        await this.requestVerification('lost at completion', { ms: ctx.lateWriteMs });
        throw new TransientError('claim-lost', error.message, { cause: error });
      }
      throw error;
    }

    // 5. The cache learns what the ledger now holds.
    ctx.cache.learn(ctx.epoch, policy, position, events);
    // Marks this step could not answer (too early, or no IAM step ran: all duplicates or refused).
    if (needsVerification(claim.previous) && !answered) this.verificationOwed = true;

    return rest;
  }

  /**
   * Runs an IAM step under a claim keeper (claim-keeper.ts). If the claim is
   * lost or its deadline passes once the step has begun, a write of ours may
   * still land after the next owner's: the policy is marked for
   * re-verification before the fault goes up.
   */
  private async withinClaim<T>(claim: WonClaim, step: (guard: ClaimKeeper) => Promise<T>): Promise<T> {
    const keeper = new ClaimKeeper(this.ctx.ledger, this.policy, claim.token, claim.expiresAt, this.ctx.claimTtlMs);
    const giveUp = () => keeper.giveUp(this.giveUp!.reason as TransientError);
    this.giveUp?.addEventListener('abort', giveUp, { once: true });
    if (this.giveUp?.aborted) giveUp();
    try {
      const result = await untilGivenUp(step(keeper), this.giveUp);
      keeper.check();
      return result;
    } catch (error) {
      if (keeper.lost) await this.requestVerification(this.giveUp?.aborted ? 'given up during the IAM step' : 'lost during the IAM step', { ms: this.ctx.lateWriteMs });
      throw error;
    } finally {
      this.giveUp?.removeEventListener('abort', giveUp);
      keeper.stop();
    }
  }

  /** Best effort: a mark that cannot be written shows in the metric and the retry that follows. `lateWrites`: how long a write of ours may still land. */
  private async requestVerification(why: string, lateWrites: LateWrites): Promise<void> {
    this.ctx.metrics.increment(METRIC.verificationsRequested, { why });
    try {
      await this.ctx.ledger.requestVerification(this.policy, lateWrites);
    } catch {
      this.ctx.metrics.increment(METRIC.verificationRequestsFailed);
    }
  }

  /**
   * Working back from the last event (every event acts at one path: see
   * applyClaimed): an upsert carries the whole desired state, so it makes every earlier event moot; a delete that deleted (or
   * found nothing) does too. A delete that kept the policy because it is
   * attached (`retained-in-use`) does not: the policy stays, so the latest
   * upsert before it still takes effect, as it would have in order.
   */
  private async applyCoalesced(live: ValidRecord[], start: PolicyKnowledge, guard: ClaimKeeper): Promise<StepResult> {
    const result: StepResult = { applied: undefined, refused: new Set(), finalOutcome: undefined, path: undefined, versions: undefined, steps: 0, converged: false };
    let knowledge = start;
    let onlyUpserts = false; // after a retained delete, only an upsert can still change IAM
    for (let i = live.length - 1; i >= 0; i--) {
      const item = live[i]!;
      if (onlyUpserts && item.event.type !== 'policy.upserted') {
        this.give(item, 'superseded');
        continue;
      }
      const done = await this.applyOne(item, knowledge, guard, result);
      if (!done) continue;
      const { event, outcome } = done;
      result.finalOutcome ??= outcome;
      result.path ??= event.policyPath;
      if (event.type === 'policy.upserted' || outcome !== 'retained-in-use') {
        if (event.type === 'policy.upserted') result.applied = event;
        for (const earlier of live.slice(0, i)) this.give(earlier, 'superseded');
        break;
      }
      // Kept because attached: present where it was, its versions as the step found them.
      const { versions: _previousVersions, deletedByLedger: _deleted, ...rest } = knowledge;
      knowledge = { ...rest, present: true, likelyAbsent: false, path: event.policyPath, ...(result.versions !== undefined ? { versions: result.versions } : {}) };
      onlyUpserts = true;
    }
    return result;
  }

  /** One event's IAM step, placed where the policy lives; a permanent refusal is dead-lettered and has no effect. */
  private async applyOne(item: ValidRecord, knowledge: PolicyKnowledge, guard: ClaimKeeper, result: StepResult): Promise<{ event: PolicyEvent; outcome: IamOutcome } | undefined> {
    const event = placed(item.event, knowledge.path);
    if (event === 'path-conflict') {
      await this.reject(item, 'path-conflict', `policy ${this.policy} exists under ${knowledge.path ?? '?'}; IAM cannot move a policy to ${item.event.policyPath} (delete it first, or name its path)`);
      result.refused.add(item);
      return undefined;
    }
    try {
      guard.check();
      result.steps++;
      result.versions = undefined;
      const hint = {
        likelyAbsent: knowledge.likelyAbsent && !knowledge.present,
        ledgerSaysPresent: knowledge.present,
        pathUnknown: knowledge.pathUnknown,
        ...(knowledge.docHash !== undefined ? { ledgerDocHash: knowledge.docHash } : {}),
        ...(knowledge.versions !== undefined ? { ledgerVersions: knowledge.versions } : {}),
        ...(knowledge.tags !== undefined ? { ledgerTags: knowledge.tags } : {}),
        // A read showing the policy our ledger deleted may be IAM's lag of that delete: write, never `unchanged`.
        ...(knowledge.deletedByLedger === true && item.event.type === 'policy.upserted' ? { forceWrite: true } : {}),
        guard,
      };
      // The versions the step says it left in IAM; a step that says nothing leaves them unknown.
      const { outcome, versions, path } = stepOf(await this.ctx.applier.apply(event, hint));
      result.versions = versions;
      this.give(item, outcome);
      result.converged ||= CONVERGES[outcome];
      // An event that names no path acts where IAM showed the policy: the completion records that path.
      return { event: path !== undefined ? { ...event, policyPath: path } : event, outcome };
    } catch (error) {
      // A refused step may still have changed versions on its way (an oldest one deleted): unknown.
      result.versions = undefined;
      if (!(error instanceof RejectedEventError)) throw error;
      // A step whose claim is lost or given up records no verdict: its records are the next owner's (or the park's).
      guard.check();
      await this.reject(item, error.reason, error.detail);
      result.refused.add(item);
      return undefined;
    }
  }
}

interface WonClaim {
  token: string;
  expiresAt: number;
  previous: LedgerEntry | undefined;
  /** The claim was taken over from another owner, whose step may have written to IAM without completing. */
  takenOver: boolean;
}
