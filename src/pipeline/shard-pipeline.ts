// One shard's pipeline: a processRecords batch flows through
//
//   decode + validate -> group by policy -> per policy: strictly in order,
//   one policy batch at a time -> different policies concurrently (bounded)
//   -> one outcome per record
//
// Bad input is dead-lettered with its reason and settles as `rejected`; the
// batch moves on. A policy whose step meets a transient fault is retried
// until it settles, while the other policies of the batch keep flowing;
// with parking on, a policy whose account's IAM stays unavailable for
// IPS_PARK_AFTER_MS is parked instead, and so is every later record of a
// parked policy (park/, docs/design.md "Parking").
// Memory stays bounded by the batch: the daemon sends the next batch only
// after this one is answered.
import { defer, finalize, from, groupBy, lastValueFrom, map, mergeMap, tap, toArray } from 'rxjs';
import { decodeRecord } from '../contract/decode.js';
import { policyKey, splitPolicyKey } from '../contract/policy-key.js';
import { accountRefusal, allowsAccount } from '../contract/account-gate.js';
import type { AccountGate } from '../contract/account-gate.js';
import type { Backoff } from '../faults/backoff.js';
import { payloadHash } from '../contract/payload-hash.js';
import { recordId } from '../contract/record-id.js';
import type { DecodeOptions } from '../contract/decode.js';
import type { Logger } from '../log/logger.js';
import { METRIC } from '../metrics/metrics.js';
import { clip } from '../log/logger.js';
import type { PolicyBatchContext } from './policy-batch.js';
import { settlePolicyBatch } from './policy-batch.js';
import { verifyPolicy } from './converge.js';
import type { Settlement, StreamRecord, ValidRecord } from './types.js';
import { retryUntilSettled } from '../faults/retry.js';
import { BEHIND_PARKED, SlowAccount, UnavailableFor, accountUnavailable, outageKey } from '../park/parking.js';
import { BatchHold } from '../park/batch-hold.js';
import type { ParkingOptions } from '../park/parking.js';
import type { ParkedRecord } from '../park/park-store.js';
import { PLANNED_ACTION } from '../shadow/planning-applier.js';

export interface ShardPipelineOptions {
  context: PolicyBatchContext;
  decode: DecodeOptions;
  /**
   * Which accounts an event may name (the worker's own and IPS_TARGET_ACCOUNTS):
   * any other is `rejected account-not-allowed` before the ledger or IAM is
   * touched. None: every account is allowed (tests that name none).
   */
  accounts?: AccountGate;
  maxConcurrentPolicies: number;
  /** Backoff between rounds for an unsettled policy. */
  retry: Backoff;
  logger: Logger;
  signal?: AbortSignal;
  /** Called as each record settles (the checkpoint tracker listens). */
  onSettled?: (settlement: Settlement) => void;
  /** Parking (IPS_PARK_AFTER_MS > 0); absent: a policy waits for its account however long. */
  parking?: ParkingOptions;
  /** A shadow worker (IPS_MODE=shadow): each record ends `planned`, with the action the live processor would take. */
  shadow?: boolean;
}

/** A policy's records wait no more: parked, with why. */
const PARKED = Symbol('parked');

/** Group key of records that failed validation ('' is never a policy key). */
const INVALID = '';

interface Decoded {
  record: StreamRecord;
  valid?: ValidRecord;
  reason?: string;
  detail?: string;
  eventId?: string;
  policyName?: string;
  account?: string;
}

export class ShardPipeline {
  /** What the outcome line says of a valid record beside its outcome (the actions of its document no AWS service publishes). */
  private readonly details = new Map<StreamRecord, string>();

  constructor(private readonly options: ShardPipelineOptions) {}

  /** Settles every record of the batch; the result is in record order. */
  async processBatch(records: StreamRecord[]): Promise<Settlement[]> {
    const { maxConcurrentPolicies, parking } = this.options;
    // Read once per batch: only this shard's pipeline parks its policies, and a park drained meanwhile is joined and drained again.
    const parked = parking ? await retryUntilSettled(() => parking.store.parkedPolicies(), this.retryOptions({ step: 'read-parks' })) : new Set<string>();
    const decoded = records.map((record) => this.decode(record));
    // Which account holds the batch, for a slow account's parking: one entry per policy, and one per record that is not a policy's.
    const accountOf = (policy: string) => (policy === INVALID ? INVALID : (splitPolicyKey(policy).account ?? ''));
    const keys = [...new Set(decoded.filter((item) => item.valid).map((item) => policyKey(item.valid!.event)))];
    const hold = new BatchHold([...keys.map(accountOf), ...decoded.filter((item) => !item.valid).map(() => INVALID)], records[0]?.receivedAt ?? Date.now());
    const settlements$ = from(decoded).pipe(
      // By the policy's key: the same name in two accounts is two policies.
      groupBy((item) => (item.valid ? policyKey(item.valid.event) : INVALID)),
      mergeMap((group) =>
        group.pipe(
          toArray(),
          map((items) => ({ policy: group.key, items })),
        ),
      ),
      // Each account gets its own maxConcurrentPolicies: a slow or failing account's policies never
      // take the places of another account's, which would then wait behind them.
      groupBy(({ policy }) => accountOf(policy)),
      mergeMap((account) =>
        account.pipe(
          mergeMap(
            ({ policy, items }) =>
              policy === INVALID
                ? from(items).pipe(mergeMap((item) => defer(() => this.reject(item)).pipe(finalize(() => hold.settled(INVALID))), maxConcurrentPolicies))
                : defer(() => {
                    // A policy parked settles without a step: it says nothing of its account's pace.
                    let stepped = false;
                    return from(
                      this.settlePolicy(
                        policy,
                        items.map((item) => item.valid!),
                        parked.has(policy),
                        hold,
                      ),
                    ).pipe(
                      tap((list) => (stepped = list.some((settlement) => settlement.outcome !== 'parked'))),
                      finalize(() => hold.settled(accountOf(policy), stepped)),
                    );
                  }).pipe(mergeMap((list) => from(list))),
            maxConcurrentPolicies,
          ),
        ),
      ),
      tap((settlement) => this.report(settlement)),
      toArray(),
      map((settlements) => settlements.sort((a, b) => a.record.index - b.record.index)),
    );
    return lastValueFrom(settlements$, { defaultValue: [] });
  }

  private decode(record: StreamRecord): Decoded {
    const decoded = decodeRecord(record.data, record.partitionKey, this.options.decode);
    const { accounts } = this.options;
    if (decoded.ok && accounts && !allowsAccount(accounts, decoded.event.account)) {
      const { account, eventId, policyName } = decoded.event;
      return {
        record,
        reason: 'account-not-allowed',
        detail: accountRefusal(accounts, account),
        eventId,
        policyName,
        ...(account !== undefined ? { account } : {}),
      };
    }
    if (decoded.ok) {
      if (decoded.unknownActions) {
        // IAM accepts an action it does not know, and the policy then grants nothing for it: applied, but never in silence.
        for (const action of decoded.unknownActions) this.options.context.metrics.increment(METRIC.unknownActions, { action: clip(action, 128) });
        this.details.set(record, `unknown actions: ${decoded.unknownActions.map((action) => clip(action, 128)).join(', ')}`.slice(0, 1_000));
      }
      return { record, valid: { record, event: decoded.event, payloadHash: payloadHash(decoded.event) } };
    }
    return {
      record,
      reason: decoded.reason,
      detail: decoded.detail,
      ...(decoded.eventId !== undefined ? { eventId: decoded.eventId } : {}),
      ...(decoded.policyName !== undefined ? { policyName: decoded.policyName } : {}),
      ...(decoded.account !== undefined ? { account: decoded.account } : {}),
    };
  }

  private async settlePolicy(policy: string, items: ValidRecord[], parked: boolean, hold?: BatchHold): Promise<Settlement[]> {
    if (parked) return this.park(policy, items, { reason: BEHIND_PARKED, detail: 'earlier records of the policy are parked' });
    const { parking } = this.options;
    const outage = parking?.outages?.of(outageKey(policy));
    if (outage) return this.park(policy, items, outage);
    const unavailable = parking ? new UnavailableFor(parking) : undefined;
    // A target account's policy (its key names the account) may be given up when the account is slow; the own account's never.
    const account = splitPolicyKey(policy).account;
    const rateBoundLately = parking?.rateBoundLately;
    const slow = parking && rateBoundLately && hold && account !== undefined ? new SlowAccount(account, hold.seenBy(account), { ...parking, rateBoundLately }) : undefined;
    let why: { reason: string; detail: string } | undefined;
    const parks = (error: unknown) => {
      // Another policy of the account was parked for the account's sake meanwhile (any shard of the
      // process): this one, failing for the account too, follows it now, not after a window of its own.
      if (accountUnavailable(error) && parking?.outages?.of(outageKey(policy))) {
        why = { reason: error.reason, detail: error.message };
        return true;
      }
      if (!unavailable?.parks(error)) return false;
      why = { reason: (error as { reason: string }).reason, detail: (error as Error).message };
      return true;
    };
    const settled = await retryUntilSettled(async () => {
      if (slow?.signal.aborted && parks(slow.signal.reason)) return PARKED;
      try {
        return await settlePolicyBatch(this.options.context, items, slow ? { giveUp: slow.signal } : {});
      } catch (error) {
        if (slow?.signal.aborted && parks(slow.signal.reason)) return PARKED;
        if (!parks(error)) throw error;
        return PARKED;
      }
    }, this.policyRetryOptions(policy)).finally(() => slow?.stop());
    if (settled === PARKED) {
      parking?.outages?.down(outageKey(policy), why!);
      return this.park(policy, items, why!);
    }
    const { settlements, verificationOwed } = settled;
    // Settled and completed; IAM is re-verified before the batch is done (a lost claim's late write may still land).
    if (verificationOwed) await this.verifyOrPark(policy, items[0]!);
    return settlements;
  }

  /**
   * Runs the re-verification a completed step owes, retried; when its account
   * stays unavailable for IPS_PARK_AFTER_MS, the re-verification is parked
   * instead (the redriver runs it once the account is back, before the
   * policy's later records, which join the park): the batch's records are
   * settled already and must not hold the checkpoint for it.
   */
  private async verifyOrPark(policy: string, first: ValidRecord): Promise<void> {
    const { parking, context } = this.options;
    const unavailable = parking ? new UnavailableFor(parking) : undefined;
    let why: { reason: string; detail: string } | undefined;
    const verified = await retryUntilSettled(
      async () => {
        try {
          await verifyPolicy(context, policy);
          return true;
        } catch (error) {
          if (!unavailable?.parks(error)) throw error;
          why = { reason: (error as { reason: string }).reason, detail: (error as Error).message };
          return false;
        }
      },
      this.retryOptions({ policy, verification: true }),
    );
    if (verified) return;
    await retryUntilSettled(() => parking!.store.parkVerification(policy, { shardId: first.record.shardId, account: first.event.account }, why!), this.retryOptions({ policy, step: 'park' }));
    this.options.logger.warn({ policy, reason: why!.reason, detail: why!.detail }, 're-verification parked: its account cannot be read now');
  }

  /**
   * Parks the policy's records (in order, behind any parked before) and
   * settles them `parked`: they no longer hold the checkpoint, and they are
   * not applied. The redriver applies them once the account is back.
   */
  private async park(policy: string, items: ValidRecord[], why: { reason: string; detail: string }): Promise<Settlement[]> {
    await retryUntilSettled(() => this.options.parking!.store.park(policy, items, why), this.retryOptions({ policy, step: 'park' }));
    this.options.logger.warn({ policy, records: items.length, reason: why.reason, detail: why.detail }, 'records parked: their account cannot be written now');
    return items.map(({ record, event }) => ({
      record,
      outcome: 'parked',
      reason: why.reason,
      eventId: event.eventId,
      policyName: event.policyName,
      ...(event.account !== undefined ? { account: event.account } : {}),
    }));
  }

  /**
   * Settles a policy's parked records, in order, as the pipeline settles a
   * batch (claims, ledger, IAM): one attempt; a transient fault goes to the
   * caller (the redriver), which tries again later. Their outcomes are
   * reported, marked `redriven`; the checkpoint never waited for them.
   */
  async redrive(policy: string, parked: ParkedRecord[], verify = false): Promise<{ settlements: Settlement[]; verificationOwed: boolean }> {
    try {
      return await this.applyParked(policy, parked, verify);
    } catch (error) {
      // The account's probe failed: it stays known as unavailable (AccountOutages), so that a new policy
      // of it is parked at once, not held IPS_PARK_AFTER_MS of its own each time the memory would lapse.
      if (accountUnavailable(error)) this.options.parking?.outages?.down(outageKey(policy), { reason: error.reason, detail: error.message });
      throw error;
    }
  }

  private async applyParked(policy: string, parked: ParkedRecord[], verify: boolean): Promise<{ settlements: Settlement[]; verificationOwed: boolean }> {
    const { context } = this.options;
    // A parked re-verification first: IAM back to the ledger's state before later events meet it.
    if (verify) await this.verifyThroughWaits(policy);
    const items = parked.map(({ record, event, payloadHash }, index) => ({ record: { ...record, index }, event, payloadHash }));
    const { settlements, verificationOwed } = items.length > 0 ? await settlePolicyBatch(context, items) : { settlements: [], verificationOwed: false };
    // The account's probe succeeded: its new policies are tried again (a slow one's once it is no longer rate-bound).
    const account = splitPolicyKey(policy).account;
    this.options.parking?.outages?.up(outageKey(policy), account !== undefined && this.options.parking.rateBoundLately?.(account) === true);
    for (const settlement of settlements.sort((a, b) => a.record.index - b.record.index)) this.report(settlement, true);
    // Owed by these records' step: while the account is unavailable again, it stays parked for the next round.
    let owed = false;
    if (verificationOwed) {
      try {
        await this.verifyThroughWaits(policy);
      } catch (error) {
        if (!accountUnavailable(error)) throw error;
        this.options.parking?.outages?.down(outageKey(policy), { reason: error.reason, detail: error.message });
        owed = true;
      }
    }
    return { settlements, verificationOwed: owed };
  }

  /**
   * Re-verifies, retried through the waits that end (late writes, a claim held
   * elsewhere); the account's unavailability goes to the caller at once.
   */
  private async verifyThroughWaits(policy: string): Promise<void> {
    const unavailable = await retryUntilSettled(
      async () => {
        try {
          await verifyPolicy(this.options.context, policy);
          return undefined;
        } catch (error) {
          if (accountUnavailable(error)) return error;
          throw error;
        }
      },
      this.retryOptions({ policy, verification: true }),
    );
    if (unavailable) throw unavailable;
  }

  private async reject(item: Decoded): Promise<Settlement> {
    const { record } = item;
    const reason = item.reason as Settlement['reason'] & string;
    await retryUntilSettled(
      () =>
        this.options.context.deadLetters.store({
          record,
          partitionKey: record.partitionKey,
          reason: item.reason as never,
          detail: item.detail ?? '',
          data: record.data,
          ...(item.eventId !== undefined ? { eventId: item.eventId } : {}),
          ...(item.policyName !== undefined ? { policyName: item.policyName } : {}),
          ...(item.account !== undefined ? { account: item.account } : {}),
          ...(record.arrivedAt !== undefined ? { arrivedAt: record.arrivedAt } : {}),
        }),
      this.retryOptions({ deadLetter: recordId(record) }),
    );
    return {
      record,
      outcome: 'rejected',
      reason,
      ...(item.eventId !== undefined ? { eventId: item.eventId } : {}),
      ...(item.policyName !== undefined ? { policyName: item.policyName } : {}),
      ...(item.account !== undefined ? { account: item.account } : {}),
    };
  }

  /** A policy's retries wait for their backoff, or until its account is found down: then it follows the park at once. */
  private policyRetryOptions(policy: string) {
    const outages = this.options.parking?.outages;
    return { ...this.retryOptions({ policy }), ...(outages ? { sleep: (ms: number) => outages.sleepUnlessDown(outageKey(policy), ms, this.options.signal) } : {}) };
  }

  private retryOptions(what: Record<string, unknown>) {
    const { retry, logger, signal, context } = this.options;
    return { ...retry, logger, metrics: context.metrics, what, ...(signal ? { signal } : {}) };
  }

  /** Every outcome is logged once and counted; a parked record's again when it is redriven (not checkpointed: it was settled as parked). */
  private report(settled: Settlement, redriven = false): void {
    // A shadow's record is planned: its outcome says what the live processor would do (the action), nothing was written.
    const action = this.options.shadow ? PLANNED_ACTION[settled.outcome] : undefined;
    const settlement: Settlement = action ? { ...settled, outcome: 'planned' } : settled;
    const { record } = settlement;
    const now = Date.now();
    const detail = this.details.get(record);
    this.details.delete(record);
    // The Account dimension on records whose event named an account; the own account's records keep today's series.
    const account: Record<string, string> = settlement.account !== undefined ? { account: settlement.account } : {};
    this.options.context.metrics.increment(METRIC.outcomes, { outcome: settlement.outcome, ...account });
    if (settlement.outcome === 'rejected') this.options.context.metrics.increment(METRIC.rejections, { reason: settlement.reason ?? 'unknown', ...account });
    if (action) this.options.context.metrics.increment(METRIC.planned, { action, ...account });
    if (record.arrivedAt !== undefined) this.options.context.metrics.observe(METRIC.recordAgeMs, Math.max(0, now - record.arrivedAt));
    this.options.logger.info(
      {
        // `shard` comes from the logger's bindings (pipeline/create.ts).
        sequenceNumber: record.sequenceNumber,
        subSequenceNumber: record.subSequenceNumber,
        partitionKey: clip(record.partitionKey, 256),
        account: settlement.account,
        eventId: settlement.eventId !== undefined ? clip(settlement.eventId, 128) : undefined,
        outcome: settlement.outcome,
        action,
        reason: settlement.reason,
        detail,
        latencyMs: record.arrivedAt !== undefined ? now - record.arrivedAt : undefined,
        processingMs: now - record.receivedAt,
        ...(redriven ? { redriven: true } : {}),
      },
      'outcome',
    );
    if (!redriven) this.options.onSettled?.(settlement);
  }
}
