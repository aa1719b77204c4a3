// Settles the records of one policy within one batch, in stream order:
//
//   1. the duplicate cache answers the duplicates it knows of (redelivered,
//      replayed, retried) without DynamoDB; an event whose verdict would rest
//      on an earlier event of the batch (its eventId, a revision at or above
//      its own) waits until that event's fate is known;
//   2. the last remaining event is claimed in the ledger with a conditional
//      write; a refusal is explained from the item it returns;
//   3. only a won claim touches IAM, and only for the events whose effect is
//      not made moot by a later one: earlier ones are `superseded`
//      (coalescing), so IAM calls grow with policies, not events;
//   4. the completion moves the ledger's position past every record of the
//      policy in the batch, fenced by the claim token;
//   5. the cache learns what the ledger now holds.
//
// A transient fault throws TransientError out of here: nothing is recorded,
// and the caller runs the whole policy again later (a re-claim by the same
// owner succeeds; the IAM step is state-aware, so running it again is safe).
import type { PolicyEvent, PolicyUpserted } from '../contract/event.js';
import type { IamOutcome, Outcome } from '../contract/outcome.js';
import type { DeadLetterSink } from '../deadletter/dead-letter-store.js';
import type { DedupCache } from '../ledger/dedup-cache.js';
import type { LateWrites, Ledger, LedgerEntry, RememberedEvent } from '../ledger/ledger.js';
import { knowledgeOf, needsVerification, windowFull } from '../ledger/ledger.js';
import { verdictOf } from '../ledger/verdict.js';
import type { Knowledge, KnownVerdict } from '../ledger/verdict.js';
import { covers } from '../ledger/position.js';
import type { LedgerPosition } from '../ledger/position.js';
import type { Metrics } from '../metrics/metrics.js';
import { METRIC } from '../metrics/metrics.js';
import { ClaimKeeper } from './claim-keeper.js';
import { maxOf, planCompletion } from './completion-plan.js';
import type { Applier, Settlement, ValidRecord } from './types.js';
import { ClaimLostError, RejectedEventError, TransientError } from '../faults/errors.js';
import type { ApplyReason } from '../faults/errors.js';

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
  /** Ancestor shard ids of the shard this pipeline reads (ledger/position.ts). */
  lineage: string[];
  /** How long a claim protects a step (IPS_CLAIM_TTL_MS): the claim keeper renews it at a third of that. */
  claimTtlMs: number;
  /** How long after it was sent an IAM call may still land (IPS_LATE_WRITE_MS): re-verification after a lost claim waits as long. */
  lateWriteMs: number;
}

export interface PolicyBatchResult {
  settlements: Settlement[];
  /**
   * IAM must still be re-verified once a lost claim's late writes can no
   * longer land (after a takeover, or marks this step was too early to
   * answer): run verifyPolicy, retried, before the batch is done.
   */
  verificationOwed: boolean;
}

export async function settlePolicyBatch(ctx: PolicyBatchContext, records: ValidRecord[]): Promise<PolicyBatchResult> {
  const batch = new PolicyBatch(ctx, records);
  const settlements = await batch.settle();
  return { settlements, verificationOwed: batch.verificationOwed };
}

/**
 * Re-verifies a policy the ledger marked: waits (TransientError
 * `verification-waits`) until no late write can land, then converges IAM to
 * the ledger's desired state under a verification claim. Nothing owed: no-op.
 */
export function verifyPolicy(ctx: PolicyBatchContext, policy: string): Promise<void> {
  return new PolicyBatch(ctx, [], policy).verify();
}

/** One policy's records of one batch, and the outcome each has been given so far. */
class PolicyBatch {
  private readonly policy: string;
  private readonly settled = new Map<ValidRecord, Settlement>();
  /** The ledger entry the last refused claim returned. */
  private lastSeen: LedgerEntry | undefined;
  /** See PolicyBatchResult.verificationOwed. */
  verificationOwed = false;

  constructor(
    private readonly ctx: PolicyBatchContext,
    private readonly records: ValidRecord[],
    policy?: string,
  ) {
    this.policy = policy ?? records[0]?.event.policyName ?? '';
  }

  async settle(): Promise<Settlement[]> {
    if (this.records.length === 0) return [];
    const candidates = this.answerWithoutLedger();
    const claim = await this.claimLast(candidates);
    if (claim) await this.applyClaimed(claim);
    else {
      // Every record already settled, but IAM owes a look (a zombie's own re-run): verifyPolicy, retried on
      // its own (a retry of this batch would be answered by the cache, which knows nothing of marks).
      if (needsVerification(this.lastSeen)) this.verificationOwed = true;
      // Events that waited on candidates the ledger refused: judged as a batch of their own.
      await this.settleApart(this.records.filter((item) => !this.settled.has(item)));
    }
    return this.records.map((item) => this.settled.get(item)!);
  }

  /** Settles `items` as a batch of their own, after what this one completed (a batch boundary before the first). */
  private async settleApart(items: ValidRecord[]): Promise<void> {
    if (items.length === 0) return;
    const batch = new PolicyBatch(this.ctx, items);
    const settlements = await batch.settle();
    for (const [i, item] of items.entries()) this.settled.set(item, settlements[i]!);
    this.verificationOwed ||= batch.verificationOwed;
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
      policyName: this.policy,
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
      policyName: this.policy,
      ...(item.record.arrivedAt !== undefined ? { arrivedAt: item.record.arrivedAt } : {}),
    });
    this.give(item, 'rejected', reason);
  }

  private rejectConflict(item: ValidRecord, where: string): Promise<void> {
    this.ctx.metrics.increment(METRIC.eventIdConflicts, { source: where });
    return this.reject(item, 'event-id-conflict', `eventId ${JSON.stringify(item.event.eventId)} was already used for another payload of policy ${this.policy} (${where})`);
  }

  /**
   * 1. What the cache can answer; the rest, in order, are candidates, except
   * the events whose verdict would rest on an earlier candidate, or might
   * rest on an earlier waiting one (they wait: applyClaimed judges them once
   * the candidates' fate is known).
   */
  private answerWithoutLedger(): ValidRecord[] {
    const { ctx, policy } = this;
    const candidates: ValidRecord[] = [];
    const batch = new BatchKnowledge();
    for (const item of this.records) {
      const { event, record, payloadHash } = item;
      if (ctx.cache.verdict(ctx.epoch, policy, record, event.eventId, payloadHash)) {
        this.give(item, 'duplicate', 'cache');
        ctx.metrics.increment(METRIC.dedupHits, { source: 'cache', verdict: 'duplicate' });
      } else if (!batch.judge(item)) {
        candidates.push(item);
        batch.add(item);
      } else batch.pend(item);
    }
    return candidates;
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
      if (entry.epoch >= ctx.epoch) ctx.cache.learn(ctx.epoch, policy, entry.position, entry.events);
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

  private async applyClaimed(claim: WonClaim): Promise<void> {
    const { ctx, policy } = this;
    // The ledger as it stood before the claim; an older epoch counts as empty.
    const previous = claim.previous && claim.previous.epoch >= ctx.epoch ? claim.previous : undefined;
    // The records not settled yet: the candidates up to the claimed one, and the events that waited on them.
    const open = this.records.filter((item) => !this.settled.has(item));
    // Events that left the entry's window are in the archive: looked up only when the window is full.
    const archived = await this.archivedAmong(open, previous);
    // The in-order fold: each event meets what the ledger knows and what the batch's earlier live
    // events will add. A verdict that rests on those events waits until their fate is known.
    const batch = new BatchKnowledge();
    const live: ValidRecord[] = [];
    const waiting: Waiting[] = [];
    let scope = this.records;
    let rest: ValidRecord[] = [];
    for (const item of open) {
      const judged = batch.judge(item, knowledgeOf(previous, item.record, item.event.eventId, archived));
      if (!judged) {
        live.push(item);
        batch.add(item);
      } else if (judged.verdict === undefined) {
        // Tried unless an earlier waiting event takes effect: which, only the IAM step tells, and
        // the events after it would be in that step. The batch is cut before it, and the records
        // from it on run as a batch of their own once this one completed.
        const cut = this.records.indexOf(item);
        rest = this.records.slice(cut);
        for (const later of rest) this.settled.delete(later);
        scope = this.records.slice(0, cut);
        break;
      } else if (!judged.onBatch && !judged.onWaiting) await this.settleKnown(item, judged.verdict, 'ledger');
      else {
        // Its fate is known only after the IAM step: what it may add weighs on the events after it.
        waiting.push({ item, ...judged });
        batch.pend(item);
      }
    }

    // Events that would not all act on the policy at one path (a path named,
    // a new policy, a delete before an upsert that names no path) cannot be
    // folded from the last one back: the first is applied and completed alone,
    // and the records after it run as a batch of their own. Each completion
    // saves the progress, so a fault later does not redo (and, under IAM's
    // read lag, never stop redoing) what was applied.
    if (live.length > 1 && !samePlace(live, knownPathOf(previous))) {
      const cut = this.records.indexOf(live[0]!) + 1;
      rest = this.records.slice(cut);
      for (const item of rest) this.settled.delete(item);
      scope = this.records.slice(0, cut);
      live.splice(1);
    }

    // 3. The IAM step, kept within its claim.
    const { applied, refused, finalOutcome, path, versions, steps, converged } = await this.withinClaim(claim, (guard) => this.applyInOrderEffect(live, previous, guard, claim.takenOver));

    // A waiting event keeps its verdict when an event it rested on took effect. The first whose
    // events were all refused is where a batch boundary would have changed its verdict: the batch
    // is cut before it, and the records from it on are settled after this completion. An event that
    // waited on earlier waiting ones meets them here all settled without effect: its verdict without
    // them holds. Working back
    // from the last, an event is tried only after every later live one was refused or was a delete
    // the policy's attachments kept: those deletes run again after the cut; the ledger's verdicts
    // and IAM's refusals stand.
    const liveSet = new Set(live);
    const tookEffect = (item: ValidRecord) => liveSet.has(item) && !refused.has(item);
    const inScope = new Set(scope);
    for (const { item, ...judged } of waiting.filter((wait) => inScope.has(wait.item))) {
      if (batch.holds(item, judged, tookEffect)) {
        await this.settleKnown(item, judged.verdict!, judged.onBatch ? 'batch' : 'ledger');
        continue;
      }
      const at = this.records.indexOf(item);
      rest = this.records.slice(at).filter((later) => !this.settled.has(later) || tookEffect(later));
      for (const later of rest) this.settled.delete(later);
      scope = this.records.slice(0, at);
      break;
    }

    // 4. Complete: the position moves past every record of the policy in this batch (or its first part).
    const completed = new Set(scope);
    const effective = live.filter((item) => !refused.has(item) && completed.has(item));
    const plan = planCompletion({
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
      step: { applied, finalOutcome, path, versions, steps, converged },
    });
    const { position, epoch, events } = plan.request;
    // What leaves the window goes to the archive before the completion, so a crash right after
    // the completion forgets none of it. This step's own events are tagged with the position its
    // completion moves to: they count only once that completion holds (Ledger.archiveEvents),
    // never for whoever takes over a claim whose completion did not land. Archived under the
    // epoch the completion writes (the entry's, never lower): readers of that epoch find them.
    await this.archive(plan.forgotten, plan.ownEventIds, position, epoch);
    const answered = plan.answered;
    try {
      await ctx.ledger.complete(plan.request);
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

    await this.settleApart(rest);
  }

  /** Archives the events that leave the window (applyClaimed): those completed earlier as they are, this step's own (`ours`) tagged with its completion's position. */
  private async archive(forgotten: RememberedEvent[], ours: Set<string>, settledBy: LedgerPosition, epoch: number): Promise<void> {
    const earlier = forgotten.filter((event) => !ours.has(event.eventId));
    const own = forgotten.filter((event) => ours.has(event.eventId));
    await Promise.all([
      earlier.length > 0 ? this.ctx.ledger.archiveEvents(this.policy, epoch, earlier) : undefined,
      own.length > 0 ? this.ctx.ledger.archiveEvents(this.policy, epoch, own, settledBy) : undefined,
    ]);
  }

  /** The archived events among the records' eventIds, when the entry's window is full (else none were archived). */
  private async archivedAmong(records: ValidRecord[], previous: LedgerEntry | undefined): Promise<RememberedEvent[]> {
    if (!previous || !windowFull(previous, this.ctx.recentEventIds)) return [];
    const unknown = records.filter((item) => !covers(previous.position, item.record) && !previous.events.some((event) => event.eventId === item.event.eventId));
    if (unknown.length === 0) return [];
    // Of the entry's epoch: what an older epoch archived was forgotten with it (a re-apply replay).
    return this.ctx.ledger.archivedEvents(this.policy, previous.epoch, unknown.map((item) => item.event.eventId), previous.position);
  }

  /**
   * Runs an IAM step under a claim keeper (claim-keeper.ts). If the claim is
   * lost or its deadline passes once the step has begun, a write of ours may
   * still land after the next owner's: the policy is marked for
   * re-verification before the fault goes up.
   */
  private async withinClaim<T>(claim: WonClaim, step: (guard: ClaimKeeper) => Promise<T>): Promise<T> {
    const keeper = new ClaimKeeper(this.ctx.ledger, this.policy, claim.token, claim.expiresAt, this.ctx.claimTtlMs);
    try {
      const result = await step(keeper);
      keeper.check();
      return result;
    } catch (error) {
      if (keeper.lost) await this.requestVerification('lost during the IAM step', { ms: this.ctx.lateWriteMs });
      throw error;
    } finally {
      keeper.stop();
    }
  }

  /**
   * Best effort: a mark that cannot be written is logged through the metric and the retry that follows.
   * `lateWrites`: how long a write of ours may still land.
   */
  private async requestVerification(why: string, lateWrites: LateWrites): Promise<void> {
    this.ctx.metrics.increment(METRIC.verificationsRequested, { why });
    try {
      await this.ctx.ledger.requestVerification(this.policy, lateWrites);
    } catch {
      this.ctx.metrics.increment(METRIC.verificationRequestsFailed);
    }
  }

  /**
   * Every record was already settled, but the ledger owes a re-verification:
   * claim the policy for it, read IAM and converge it to the ledger's last
   * applied desired state.
   */
  async verify(): Promise<void> {
    const { ctx, policy } = this;
    const result = await ctx.ledger.claimVerification(policy, ctx.owner);
    if (!result.won) {
      if (result.because === 'claimed-elsewhere') throw new TransientError('claimed-elsewhere', `policy ${policy} is claimed by ${result.entry.claim?.owner ?? 'another owner'} (re-verification waits)`);
      if (result.because === 'verification-waits') {
        throw new TransientError('verification-waits', `policy ${policy}: a lost claim's write may still land in IAM until ${new Date(result.entry.verifyAfter ?? 0).toISOString()} (re-verification waits)`);
      }
      return; // answered meanwhile
    }
    const entry = result.previous;
    const seen = entry?.verifyRequested ?? 0;
    const desiredEvent = entry ? eventFromDesired(entry) : undefined;
    let converged = desiredEvent ? 'yes' : 'nothing-to-converge';
    if (desiredEvent) {
      try {
        await this.withinClaim({ token: result.token, expiresAt: result.expiresAt, previous: entry, takenOver: false }, (guard) =>
          // A read may predate the late write being answered: the document is written whatever IAM
          // shows. A late write may have put the policy at another path: it is looked for by name,
          // and a late create of ours elsewhere is moved where the ledger says.
          ctx.applier.apply(desiredEvent, { ledgerSaysPresent: desiredEvent.type === 'policy.upserted', forceWrite: true, pathUnknown: true, relocate: true, guard }),
        );
      } catch (error) {
        // IAM refuses the ledger's state (the policy is no longer ours, say): waiting will not
        // change that, and the shard must not stop on it. Counted; the drift audit reports it.
        if (!(error instanceof RejectedEventError)) throw error;
        converged = 'refused';
      }
    }
    try {
      await ctx.ledger.completeVerification(policy, result.token, seen);
    } catch (error) {
      if (error instanceof ClaimLostError) throw new TransientError('claim-lost', error.message, { cause: error });
      throw error;
    }
    ctx.metrics.increment(METRIC.verifications, { converged });
  }

  /**
   * Gives IAM the effect of applying `live` in order, with as few steps as
   * that allows. Working back from the last event: an upsert carries the
   * whole desired state, so it makes every earlier event moot; a delete that
   * deleted (or found nothing) does too. A delete that kept the policy because
   * it is attached (`retained-in-use`) does not: the policy stays, so the
   * latest upsert before it still takes effect, as it would have in order. A
   * permanent refusal (`rejected`, dead-lettered) had no effect, so the event
   * before it is applied instead.
   */
  private async applyInOrderEffect(
    live: ValidRecord[],
    previous: LedgerEntry | undefined,
    guard: ClaimKeeper,
    takenOver: boolean,
  ): Promise<StepResult> {
    const knownPresent = previous?.state === 'present' || previous?.state === 'retained-in-use';
    const start: PolicyKnowledge = {
      // What the ledger last applied: lets the IAM step skip a read that would
      // only confirm an absence, and read IAM's NoSuchEntity as lag, not as a
      // verdict. An entry owing a verification is not trusted: the step reads IAM.
      likelyAbsent: (previous === undefined || previous.state === 'deleted') && !needsVerification(previous),
      present: knownPresent,
      // Where the policy lives, as far as the ledger knows: IAM names are
      // unique per account whatever the path, so the name finds it there.
      path: knownPathOf(previous),
      // The ledger may not know where a policy lives: never seen, or a previous
      // owner's write may have landed without its completion.
      pathUnknown: !knownPresent && (previous === undefined || previous.state === 'unknown' || takenOver || needsVerification(previous)),
      ...(knownPresent && previous?.docHash !== undefined ? { docHash: previous.docHash } : {}),
      // IAM's versions and tags as the ledger's last step left them: with them an
      // update is written without reading IAM first. Only while the ledger
      // vouches for the policy: nothing owed to a verification, and no other
      // owner whose step may have written without completing.
      ...(knownPresent && previous?.iamVersions !== undefined && !needsVerification(previous) && !takenOver ? { versions: previous.iamVersions } : {}),
      ...(knownPresent && previous?.desired?.tags !== undefined ? { tags: previous.desired.tags } : {}),
    };
    return this.applyCoalesced(live, start, guard);
  }

  /**
   * Working back from the last event (every event acts at one path: see
   * applyClaimed): an upsert carries the whole desired
   * state, so it makes every earlier event moot; a delete that deleted (or
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
      const { versions: _previousVersions, ...rest } = knowledge;
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
      // What the step reports of IAM's versions; a step that says nothing leaves them unknown.
      result.steps++;
      result.versions = undefined;
      const outcome = await this.ctx.applier.apply(event, {
        likelyAbsent: knowledge.likelyAbsent && !knowledge.present,
        ledgerSaysPresent: knowledge.present,
        pathUnknown: knowledge.pathUnknown,
        ...(knowledge.docHash !== undefined ? { ledgerDocHash: knowledge.docHash } : {}),
        ...(knowledge.versions !== undefined ? { ledgerVersions: knowledge.versions } : {}),
        ...(knowledge.tags !== undefined ? { ledgerTags: knowledge.tags } : {}),
        onVersions: (versions) => (result.versions = versions),
        guard,
      });
      this.give(item, outcome);
      result.converged ||= CONVERGES[outcome];
      return { event, outcome };
    } catch (error) {
      // A refused step may still have changed versions on its way (an oldest one deleted): unknown.
      result.versions = undefined;
      if (!(error instanceof RejectedEventError)) throw error;
      await this.reject(item, error.reason, error.detail);
      result.refused.add(item);
      return undefined;
    }
  }
}

/** What the pipeline knows of a policy before an IAM step (the ledger's word, then the batch's own steps). */
interface PolicyKnowledge {
  likelyAbsent: boolean;
  present: boolean;
  path: string | undefined;
  pathUnknown: boolean;
  docHash?: string;
  /** IAM's version ids, oldest first, the last the default, when the ledger vouches for them (StepHint.ledgerVersions). */
  versions?: string[];
  /** The tags last applied (StepHint.ledgerTags). */
  tags?: Record<string, string>;
}

interface StepResult {
  /** The latest upsert that took effect (its document is IAM's now). */
  applied: PolicyUpserted | undefined;
  refused: Set<ValidRecord>;
  /** The outcome of the latest event that took effect. */
  finalOutcome: IamOutcome | undefined;
  /** Where the latest event that took effect found or put the policy. */
  path: string | undefined;
  /** IAM's version ids as the last step run reported them (undefined: not known). */
  versions: string[] | undefined;
  /** IAM steps run (refused ones too). */
  steps: number;
  /** A step left IAM as the ledger will say (CONVERGES): it answers the re-verification marks. */
  converged: boolean;
}

/**
 * Which outcomes answer re-verification marks: only a step that wrote the
 * document, or deleted the policy or found it gone, leaves IAM as the ledger
 * will say. `unchanged` rests on a read that may lag a late write (the
 * verification writes the document whatever IAM shows); `retained-in-use`
 * never looks at the document.
 */
const CONVERGES: Record<IamOutcome, boolean> = {
  created: true,
  updated: true,
  deleted: true,
  absent: true,
  unchanged: false,
  'retained-in-use': false,
};

/** Where the ledger says the policy lives, while it is present. */
function knownPathOf(previous: LedgerEntry | undefined): string | undefined {
  return previous?.state === 'present' || previous?.state === 'retained-in-use' ? previous.desired?.path : undefined;
}

/**
 * Whether every event of the batch acts on the policy at one path, so that
 * working back from the last one (coalescing) gives what the fold gives: no
 * upsert names a path other than that one, and no upsert that names no path
 * could land at the prefix while the policy lives elsewhere (a new policy, or
 * an upsert after a delete).
 */
function samePlace(live: ValidRecord[], knownPath: string | undefined): boolean {
  const places = new Set<string>(knownPath !== undefined ? [knownPath] : []);
  let deleted = false;
  for (const { event } of live) {
    if (event.type === 'policy.deleted') deleted = true;
    else if (event.pathGiven || knownPath === undefined || deleted) places.add(event.policyPath);
  }
  return places.size <= 1;
}

interface WonClaim {
  token: string;
  expiresAt: number;
  previous: LedgerEntry | undefined;
  /** The claim was taken over from another owner, whose step may have written to IAM without completing. */
  takenOver: boolean;
}

/** The ledger's last applied state as an event, for re-verification; none when the ledger knows too little. */
export function eventFromDesired(entry: LedgerEntry): PolicyEvent | undefined {
  const desired = entry.desired;
  if (!desired) return undefined;
  const base = { specVersion: '1' as const, eventId: `verify:${entry.policy}`, policyName: entry.policy, policyPath: desired.path, pathGiven: true };
  if (entry.state === 'deleted') return { ...base, type: 'policy.deleted' };
  if ((entry.state === 'present' || entry.state === 'retained-in-use') && desired.document) {
    return { ...base, type: 'policy.upserted', document: desired.document, tags: desired.tags ?? {}, ...(desired.description !== undefined ? { description: desired.description } : {}) };
  }
  return undefined;
}

/**
 * The event as it must be applied: an event that names no path goes where the
 * ledger knows the policy lives, and so does every delete (the name alone
 * identifies a policy). An upsert that names another path than the existing
 * policy's is a `path-conflict`: IAM cannot move a policy.
 */
function placed(event: PolicyEvent, knownPath: string | undefined): PolicyEvent | 'path-conflict' {
  if (knownPath === undefined || event.policyPath === knownPath) return event;
  if (event.type === 'policy.upserted' && event.pathGiven) return 'path-conflict';
  return { ...event, policyPath: knownPath };
}

/** A verdict and what it rests on: the ledger's knowledge alone, or earlier live events of the batch. */
interface Judged {
  /** None: nothing known stands in the event's way, unless an earlier waiting event takes effect (`onWaiting`). */
  verdict: KnownVerdict | undefined;
  /** Rests on the batch's live events: the eventId's first one (event-id verdicts), or any of the first `liveBefore` with a revision at or above the event's (stale). */
  onBatch?: { mate: ValidRecord | undefined; liveBefore: number };
  /**
   * An earlier waiting event, should it take effect after all (a cut before
   * it), would change the verdict: its eventId would come before a `stale`
   * or before nothing, its revision would make the event `stale`.
   */
  onWaiting?: boolean;
}

/** An event whose verdict rests on earlier events of its batch that are to take effect. */
interface Waiting extends Judged {
  item: ValidRecord;
}

const NOTHING_KNOWN: Knowledge = { covered: false, remembered: undefined, revision: undefined };

/** An event as verdictOf reads it. */
function screened(item: ValidRecord): { payloadHash: string; revision: number | undefined } {
  return { payloadHash: item.payloadHash, revision: item.event.revision };
}

/**
 * What the live events of a batch, met so far, will add to the ledger's
 * knowledge once they take effect: their eventIds and revisions, and which
 * event added each; and what the waiting ones might add.
 */
class BatchKnowledge {
  private readonly byEventId = new Map<string, ValidRecord>();
  private readonly live: ValidRecord[] = [];
  private maxRevision: number | undefined;
  private readonly waitingEventIds = new Set<string>();
  private waitingMaxRevision: number | undefined;

  /**
   * An event that waits: whether it takes effect is known only after the IAM
   * step (it does if the batch is cut before it), so a later verdict that its
   * eventId or revision would change waits too.
   */
  pend(item: ValidRecord): void {
    this.waitingEventIds.add(item.event.eventId);
    const revision = item.event.revision;
    if (revision !== undefined) this.waitingMaxRevision = Math.max(this.waitingMaxRevision ?? revision, revision);
  }

  add(item: ValidRecord): void {
    if (!this.byEventId.has(item.event.eventId)) this.byEventId.set(item.event.eventId, item);
    this.live.push(item);
    const revision = item.event.revision;
    if (revision !== undefined) this.maxRevision = Math.max(this.maxRevision ?? revision, revision);
  }

  /**
   * The verdict of the ledger's knowledge and the batch's together
   * (verdict.ts), whether it rests on the batch's live events, and whether an
   * earlier waiting event would change it. Undefined: the event is live.
   */
  judge(item: ValidRecord, ledger: Knowledge = NOTHING_KNOWN): Judged | undefined {
    const mate = this.byEventId.get(item.event.eventId);
    const known: Knowledge = {
      covered: ledger.covered,
      remembered: ledger.remembered ?? mate,
      revision: maxOf([ledger.revision, this.maxRevision].filter((r): r is number => r !== undefined)),
    };
    const verdict = verdictOf(known, screened(item));
    // Only rules 3 and 4 can still change (a duplicate stays, and an eventId already remembered
    // comes before a waiting event's): a waiting event's eventId comes before a `stale` or nothing,
    // its revision makes stale what nothing stood in the way of.
    const revision = item.event.revision;
    const onWaiting =
      !known.covered &&
      known.remembered === undefined &&
      (this.waitingEventIds.has(item.event.eventId) || (verdict === undefined && revision !== undefined && this.waitingMaxRevision !== undefined && revision <= this.waitingMaxRevision));
    if (verdict === undefined) return onWaiting ? { verdict, onWaiting } : undefined;
    const waits = onWaiting ? { onWaiting } : {};
    if (verdict === verdictOf(ledger, screened(item))) return { verdict, ...waits };
    return { verdict, onBatch: { mate, liveBefore: this.live.length }, ...waits };
  }

  /**
   * Whether a verdict that rests on the batch holds, once the IAM step has
   * run and every earlier waiting event was settled without effect: one of
   * the live events it rests on took effect (`tookEffect` must not change
   * between calls).
   */
  holds(item: ValidRecord, judged: Judged, tookEffect: (item: ValidRecord) => boolean): boolean {
    if (!judged.onBatch) return true; // the ledger's own verdict
    const { mate, liveBefore } = judged.onBatch;
    if (judged.verdict !== 'stale-revision') return tookEffect(mate!);
    // The highest revision among the first k live events that took effect, for every k.
    if (!this.effectiveRevisionUpTo) {
      const upTo: (number | undefined)[] = [undefined];
      for (const live of this.live) {
        const before = upTo[upTo.length - 1];
        const revision = tookEffect(live) ? live.event.revision : undefined;
        upTo.push(revision === undefined ? before : Math.max(before ?? revision, revision));
      }
      this.effectiveRevisionUpTo = upTo;
    }
    const highest = this.effectiveRevisionUpTo[liveBefore];
    return highest !== undefined && highest >= item.event.revision!;
  }

  private effectiveRevisionUpTo: (number | undefined)[] | undefined;
}
