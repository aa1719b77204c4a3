// The ledger in DynamoDB. The claim is one conditional UpdateItem; when its
// condition fails, the item returned with the failure explains why
// (ReturnValuesOnConditionCheckFailure), so no second read is made.
import { randomUUID } from 'node:crypto';
import { BatchGetItemCommand, BatchWriteItemCommand, ConditionalCheckFailedException, GetItemCommand, UpdateItemCommand, paginateScan } from '@aws-sdk/client-dynamodb';
import { from, lastValueFrom, mergeMap } from 'rxjs';
import type { AttributeValue, BatchGetItemCommandOutput, BatchWriteItemCommandInput, BatchWriteItemCommandOutput, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { ClaimRequest, ClaimResult, CompletionRequest, DesiredState, LateWrites, Ledger, LedgerEntry, PolicyState, RememberedEvent } from './ledger.js';
import { archiveHolds, expiredElsewhere, explainRefusal, lateWritesEnd, needsVerification, settledVerdict } from './ledger.js';
import type { LedgerPosition } from './position.js';
import { fromLedgerSequence, toLedgerSequence } from './sequence.js';
import { LEDGER_KEY, LEDGER_TTL_ATTRIBUTE } from './table.js';
import type { Config } from '../config/config.js';
import { ClockSkewGuard, clockOffsetBoundMs } from './clock-skew.js';
import type { ClockSkewWatch } from './clock-skew.js';
import { ClaimLostError, TransientError } from '../faults/errors.js';
import { AGAIN, retry } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';

/** The item holding the ledger-wide epoch. `#` cannot appear in an IAM policy name. */
export const EPOCH_ITEM_KEY = '#epoch';
/** The item holding one shard's epoch (a re-apply replay scoped to shards). */
export const shardEpochKey = (shardId: string) => `#epoch#${shardId}`;
/** The counter epochs are drawn from, so that every new epoch, whatever its scope, is above all earlier ones. */
const EPOCH_COUNTER_KEY = '#epoch-counter';

type Item = Record<string, AttributeValue>;

export interface DynamoDbLedgerOptions {
  claimTtlMs: number;
  /** How long after a claim's expiry its owner's IAM writes may still land (Config.lateWriteMs): a takeover's mark waits as long. */
  lateWriteMs: number;
  /** How long an archived eventId is kept (Config.eventIdTtlDays), in days. */
  eventIdTtlDays: number;
  now?: () => number;
  /** Called before a claim is won or extended (claim, claimVerification, renew); rejects to refuse it (clock-skew.ts). */
  beforeClaim?: (what: string, policy: string) => Promise<void>;
}

/**
 * The ledger on `config`'s table with its claim and archive timings: how the
 * processor and the operator tool build it. Claims are refused while the
 * DynamoDB client's measured clock offset exceeds the bound (clock-skew.ts).
 */
export function ledgerFromConfig(
  dynamodb: DynamoDBClient,
  config: Pick<Config, 'ledgerTable' | 'claimTtlMs' | 'eventIdTtlDays' | 'lateWriteMs'> & Partial<Pick<Config, 'maxClockOffsetMs'>>,
  clock: Pick<DynamoDbLedgerOptions, 'now'> = {},
  watch: ClockSkewWatch = {},
): DynamoDbLedger {
  // A refused claim measures the offset again with a read of the epoch: its answer carries AWS's Date.
  const guard = new ClockSkewGuard(dynamodb, config.maxClockOffsetMs ?? clockOffsetBoundMs(config.claimTtlMs), watch, () => ledger.currentEpoch());
  const beforeClaim = (what: string, policy: string) => guard.check(what, policy);
  const ledger: DynamoDbLedger = new DynamoDbLedger(dynamodb, config.ledgerTable, { claimTtlMs: config.claimTtlMs, lateWriteMs: config.lateWriteMs, eventIdTtlDays: config.eventIdTtlDays, ...clock, beforeClaim });
  return ledger;
}

/**
 * Batch calls of one archive write or read in flight at once. A hot policy's
 * batch of 1,000 events leaves the window as 40 BatchWriteItem calls; one
 * after the other their round trips would hold the batch's checkpoint.
 */
const BATCH_CALLS_IN_FLIGHT = 8;

/** `items` in chunks of `size`, each sent by `send`, up to BATCH_CALLS_IN_FLIGHT at once; settles when all have. */
async function inChunks<T>(items: T[], size: number, send: (chunk: T[]) => Promise<void>): Promise<void> {
  const chunks = Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
  await lastValueFrom(from(chunks).pipe(mergeMap(send, BATCH_CALLS_IN_FLIGHT)), { defaultValue: undefined });
}

/**
 * Sends a batch, then what DynamoDB left unprocessed (throttling), with
 * backoff (RETRY.batchUnprocessed); then the fault goes up as transient.
 */
async function untilProcessed<T>(batch: T[], what: string, send: (pending: T[]) => Promise<T[] | undefined>): Promise<void> {
  let pending: T[] = batch;
  await retry(RETRY.batchUnprocessed, async () => {
    if (pending.length > 0) pending = (await send(pending)) ?? [];
    return pending.length > 0 ? AGAIN : pending;
  });
  if (pending.length > 0) throw new TransientError('ledger-batch-unprocessed', `${pending.length} ${what} left unprocessed by DynamoDB`);
}

/** The key of an archived event: `#` keeps it out of the entries (LedgerEntry), the name cannot hold one. */
export const archivedEventKey = (policy: string, eventId: string) => `#event#${policy}#${eventId}`;

export class DynamoDbLedger implements Ledger {
  private readonly now: () => number;

  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
    private readonly options: DynamoDbLedgerOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  async currentEpoch(shards: string[] = []): Promise<number> {
    const keys = [EPOCH_ITEM_KEY, ...shards.map(shardEpochKey)];
    const epochs = await Promise.all(keys.map((key) => this.readEpoch(key)));
    return Math.max(0, ...epochs);
  }

  private async readEpoch(key: string): Promise<number> {
    const result = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { [LEDGER_KEY]: { S: key } }, ConsistentRead: true }));
    return result.Item?.epoch?.N ? Number(result.Item.epoch.N) : 0;
  }

  /**
   * Moves to a new epoch, in which every applied event may run again
   * (re-apply replay): the whole ledger, or only the given shards (a replay
   * of those shards), so that other shards keep their history. Epochs only
   * move forward: a new one is drawn from a counter above every earlier one.
   */
  async advanceEpoch(shards?: string[]): Promise<number> {
    const counter = await this.dynamodb.send(
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [LEDGER_KEY]: { S: EPOCH_COUNTER_KEY } },
        UpdateExpression: 'ADD epoch :one',
        ExpressionAttributeValues: { ':one': { N: '1' } },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    // The counter starts at the ledger-wide epoch a ledger written before scoped epochs already has.
    const next = Math.max(Number(counter.Attributes?.epoch?.N ?? 1), (await this.readEpoch(EPOCH_ITEM_KEY)) + 1);
    const at = { S: new Date(this.now()).toISOString() };
    for (const key of shards === undefined ? [EPOCH_ITEM_KEY] : shards.map(shardEpochKey)) {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { [LEDGER_KEY]: { S: key } },
          UpdateExpression: 'SET epoch = :epoch, updatedAt = :at',
          ConditionExpression: 'attribute_not_exists(epoch) OR epoch < :epoch',
          ExpressionAttributeValues: { ':epoch': { N: String(next) }, ':at': at },
        }),
      );
    }
    if (next > Number(counter.Attributes?.epoch?.N ?? 1)) {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { [LEDGER_KEY]: { S: EPOCH_COUNTER_KEY } },
          UpdateExpression: 'SET epoch = :epoch',
          ConditionExpression: 'epoch < :epoch',
          ExpressionAttributeValues: { ':epoch': { N: String(next) } },
        }),
      );
    }
    return next;
  }

  async claim(request: ClaimRequest): Promise<ClaimResult> {
    await this.options.beforeClaim?.('claim', request.policy);
    let takenOver = false;
    // RETRY.claimTakeover: a claim that keeps expiring under it is one the pipeline retries later.
    return (await retry(RETRY.claimTakeover, async ({ last }) => {
      const result = await this.claimOnce(request, takenOver);
      if (result.won || last) return result;
      const { entry } = result;
      const now = this.now();
      // Only another owner's expired claim stood in the way: end it, with its mark, and claim again.
      if (settledVerdict(entry, request) !== undefined || !expiredElsewhere(entry, request.owner, now)) return result;
      await this.takeOver(request.policy, entry, now);
      takenOver = true;
      return AGAIN;
    }))!;
  }

  /**
   * One claim: the condition admits no claim but our own, so a claim never
   * replaces another owner's without its mark (takeOver). The SDK's retry of a
   * claim whose answer was lost finds our own claim and wins again.
   */
  private async claimOnce(request: ClaimRequest, takenOver: boolean): Promise<ClaimResult> {
    const now = this.now();
    const sequence = toLedgerSequence(request.record.sequenceNumber);
    const token = randomUUID();
    const values: Item = {
      ':owner': { S: request.owner },
      ':token': { S: token },
      ':expires': { N: String(now + this.options.claimTtlMs) },
      ':seq': { S: sequence },
      ':sub': { N: String(request.record.subSequenceNumber) },
      ':shard': { S: request.record.shardId },
      ':eid': { S: request.eventId },
      ':epoch': { N: String(request.epoch) },
    };
    // The record is past the position (position.ts): on the position's shard,
    // after it by (sequence, subsequence); on any other shard, unless that
    // shard is one of the position's ancestors. An entry without hwmSub was
    // written before subsequences were kept: its mark covers the whole record.
    const pastPosition =
      '(attribute_not_exists(hwm)' +
      ' OR (hwmShard <> :shard AND NOT contains(hwmLineage, :shard))' +
      ' OR (hwmShard = :shard AND (hwm < :seq OR (hwm = :seq AND hwmSub < :sub))))';
    const sameEpochChecks = [pastPosition, 'NOT contains(eventIds, :eid)'];
    if (request.revision !== undefined) {
      values[':rev'] = { N: String(request.revision) };
      sameEpochChecks.push('(attribute_not_exists(revision) OR revision < :rev)');
    }
    const claimFree = '(attribute_not_exists(claimOwner) OR claimOwner = :owner)';
    const condition = `${claimFree} AND (attribute_not_exists(#key) OR attribute_not_exists(epoch) OR epoch < :epoch OR (${sameEpochChecks.join(' AND ')}))`;
    try {
      const result = await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { [LEDGER_KEY]: { S: request.policy } },
          UpdateExpression: 'SET claimOwner = :owner, claimToken = :token, claimExpires = :expires, claimSeq = :seq',
          ConditionExpression: condition,
          ExpressionAttributeNames: { '#key': LEDGER_KEY },
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_OLD',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      const previous = result.Attributes ? toEntry(result.Attributes) : undefined;
      return { won: true, token, expiresAt: now + this.options.claimTtlMs, previous, takenOver };
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) {
        if (!error.Item) throw new TransientError('ledger-unexplained', 'claim refused without the item', { cause: error });
        const entry = toEntry(error.Item);
        return { won: false, because: explainRefusal(entry, request, now), entry };
      }
      throw error;
    }
  }

  /**
   * Ends another owner's expired claim (`entry.claim`), and in the same
   * conditional update marks the policy for re-verification: that owner may
   * be frozen with an IAM write on the wire, and may never mark it itself
   * (killed before it wakes). `verifyAfter` moves to the claim's expiry plus
   * the late-write time. The condition is the claim's token, still expired:
   * when it fails, the claim was ended already (by this very update, whose
   * answer was lost, or by another worker, with its mark either way), renewed
   * by its owner, or a later bound was set meanwhile; the caller looks again.
   */
  private async takeOver(policy: string, entry: LedgerEntry & { claim: NonNullable<LedgerEntry['claim']> }, now: number): Promise<void> {
    const after = lateWritesEnd(entry, entry.claim, this.options.lateWriteMs);
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { [LEDGER_KEY]: { S: policy } },
          UpdateExpression: 'SET verifyAfter = :after REMOVE claimOwner, claimToken, claimExpires, claimSeq ADD verifyRequested :one',
          ConditionExpression: 'claimToken = :taken AND claimExpires < :now AND (attribute_not_exists(verifyAfter) OR verifyAfter <= :after)',
          ExpressionAttributeValues: { ':taken': { S: entry.claim.token }, ':now': { N: String(now) }, ':after': { N: String(after) }, ':one': { N: '1' } },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }

  async complete(request: CompletionRequest): Promise<void> {
    const { position } = request;
    const values: Item = {
      ':token': { S: request.token },
      ':hwm': { S: toLedgerSequence(position.sequenceNumber) },
      ':sub': { N: String(position.subSequenceNumber) },
      ':shard': { S: position.shardId },
      ':lineage': { L: position.lineage.map((shard) => ({ S: shard })) },
      ':epoch': { N: String(request.epoch) },
      // Two lists in step: eventIds for the claim's `contains` condition, the
      // payload hashes beside them to tell a retry from a reused eventId.
      ':ids': { L: request.events.map((event) => ({ S: event.eventId })) },
      ':hashes': { L: request.events.map((event) => ({ S: event.payloadHash ?? '' })) },
      ':state': { S: request.state },
      ':outcome': { S: request.outcome },
      ':at': { S: new Date(this.now()).toISOString() },
    };
    const sets = [
      // Whose completion this is: the SDK's retry of a completion whose answer was lost fails the token check, and the item tells it was ours.
      'completedToken = :token',
      'hwm = :hwm',
      'hwmSub = :sub',
      'hwmShard = :shard',
      'hwmLineage = :lineage',
      'epoch = :epoch',
      'eventIds = :ids',
      'eventHashes = :hashes',
      'policyState = :state',
      'lastOutcome = :outcome',
      'updatedAt = :at',
    ];
    // The versions are the step's knowledge or nothing: a value the step cannot vouch for is removed.
    const removes = ['claimOwner', 'claimToken', 'claimExpires', 'claimSeq'];
    // The revision is the epoch's: a completion that carries none moves an entry of an older
    // epoch to this one without one (its revision would make the epoch's events stale).
    if (request.revision !== undefined) {
      values[':rev'] = { N: String(request.revision) };
      sets.push('revision = :rev');
    } else removes.push('revision');
    if (request.docHash !== undefined) {
      values[':hash'] = { S: request.docHash };
      sets.push('docHash = :hash');
    }
    if (request.desired !== undefined) {
      values[':desired'] = { S: JSON.stringify(request.desired) };
      sets.push('desired = :desired');
    }
    if (request.verifiedUpTo !== undefined) {
      values[':verified'] = { N: String(request.verifiedUpTo) };
      sets.push('verifiedUpTo = :verified');
    }
    if (request.iamVersions !== undefined) {
      values[':versions'] = { L: request.iamVersions.map((id) => ({ S: id })) };
      sets.push('iamVersions = :versions');
    } else removes.push('iamVersions');
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { [LEDGER_KEY]: { S: request.policy } },
          UpdateExpression: `SET ${sets.join(', ')} REMOVE ${removes.join(', ')}`,
          ConditionExpression: 'claimToken = :token',
          ExpressionAttributeValues: values,
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) {
        if (completedBy(error.Item, request.token)) return;
        throw new ClaimLostError(`claim on ${request.policy} was taken over before completion`);
      }
      throw error;
    }
  }

  async renew(policy: string, token: string): Promise<number> {
    await this.options.beforeClaim?.('renewal', policy);
    const expiresAt = this.now() + this.options.claimTtlMs;
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { [LEDGER_KEY]: { S: policy } },
          UpdateExpression: 'SET claimExpires = :expires',
          ConditionExpression: 'claimToken = :token',
          ExpressionAttributeValues: { ':token': { S: token }, ':expires': { N: String(expiresAt) } },
        }),
      );
      return expiresAt;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) throw new ClaimLostError(`claim on ${policy} was taken over before it could be renewed`);
      throw error;
    }
  }

  async requestVerification(policy: string, lateWrites?: LateWrites): Promise<void> {
    const notBefore = lateWrites && (lateWrites.from ?? this.now()) + lateWrites.ms;
    // A counter, not a flag: a mark added while another step runs outlives that step's completion.
    // verifyAfter only moves forward: an earlier loss's late writes may land until the later bound.
    const later = notBefore !== undefined;
    await this.dynamodb.send(
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [LEDGER_KEY]: { S: policy } },
        UpdateExpression: later ? 'ADD verifyRequested :one SET verifyAfter = :after' : 'ADD verifyRequested :one',
        ExpressionAttributeValues: { ':one': { N: '1' }, ...(later ? { ':after': { N: String(notBefore) } } : {}) },
        ...(later ? { ConditionExpression: 'attribute_not_exists(verifyAfter) OR verifyAfter < :after' } : {}),
      }),
    ).catch(async (error: unknown) => {
      // A later bound is already set: the mark alone.
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      await this.requestVerification(policy);
    });
  }

  async claimVerification(policy: string, owner: string): Promise<ClaimResult> {
    await this.options.beforeClaim?.('verification claim', policy);
    let takenOver = false;
    return (await retry(RETRY.claimTakeover, async ({ last }) => {
      const result = await this.claimVerificationOnce(policy, owner, takenOver);
      if (result.won || last) return result;
      const now = this.now();
      // Owed, and another owner's expired claim in the way: end it with its mark (its late writes are waited for too).
      if (!needsVerification(result.entry) || !expiredElsewhere(result.entry, owner, now)) return result;
      await this.takeOver(policy, result.entry, now);
      takenOver = true;
      return AGAIN;
    }))!;
  }

  private async claimVerificationOnce(policy: string, owner: string, takenOver: boolean): Promise<ClaimResult> {
    const now = this.now();
    const token = randomUUID();
    try {
      const result = await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { [LEDGER_KEY]: { S: policy } },
          UpdateExpression: 'SET claimOwner = :owner, claimToken = :token, claimExpires = :expires, claimSeq = :none',
          ConditionExpression:
            '(attribute_not_exists(claimOwner) OR claimOwner = :owner)' +
            ' AND verifyRequested > :zero AND (attribute_not_exists(verifiedUpTo) OR verifyRequested > verifiedUpTo)' +
            ' AND (attribute_not_exists(verifyAfter) OR verifyAfter <= :now)',
          ExpressionAttributeValues: {
            ':owner': { S: owner },
            ':token': { S: token },
            ':expires': { N: String(now + this.options.claimTtlMs) },
            ':now': { N: String(now) },
            ':none': { S: 'verification' },
            ':zero': { N: '0' },
          },
          ReturnValues: 'ALL_OLD',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      const previous = result.Attributes ? toEntry(result.Attributes) : undefined;
      return { won: true, token, expiresAt: now + this.options.claimTtlMs, previous, takenOver };
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) {
        const entry = error.Item ? toEntry(error.Item) : { policy, epoch: 0, events: [] };
        const heldElsewhere = entry.claim !== undefined && entry.claim.owner !== owner && entry.claim.expiresAt >= now;
        const early = needsVerification(entry) && (entry.verifyAfter ?? 0) > now;
        return { won: false, because: heldElsewhere ? 'claimed-elsewhere' : early ? 'verification-waits' : 'duplicate-sequence', entry };
      }
      throw error;
    }
  }

  async completeVerification(policy: string, token: string, verifiedUpTo: number): Promise<void> {
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { [LEDGER_KEY]: { S: policy } },
          UpdateExpression: 'SET verifiedUpTo = :verified, updatedAt = :at, completedToken = :token REMOVE claimOwner, claimToken, claimExpires, claimSeq, iamVersions',
          ConditionExpression: 'claimToken = :token',
          ExpressionAttributeValues: { ':token': { S: token }, ':verified': { N: String(verifiedUpTo) }, ':at': { S: new Date(this.now()).toISOString() } },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) {
        if (completedBy(error.Item, token)) return; // ours, its answer lost
        throw new ClaimLostError(`verification claim on ${policy} was taken over`);
      }
      throw error;
    }
  }

  /**
   * Gives a claim up without completing anything (an operator's repair that
   * could not finish): the next owner need not wait for it to expire. Marks
   * stay as they are. False when the claim was no longer ours.
   */
  async releaseClaim(policy: string, token: string): Promise<boolean> {
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { [LEDGER_KEY]: { S: policy } },
          UpdateExpression: 'REMOVE claimOwner, claimToken, claimExpires, claimSeq',
          ConditionExpression: 'claimToken = :token',
          ExpressionAttributeValues: { ':token': { S: token } },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async archiveEvents(policy: string, epoch: number, events: RememberedEvent[], settledBy?: LedgerPosition): Promise<void> {
    // DynamoDB's TTL removes an item within days of `expiresAt` (epoch seconds); readers check it themselves.
    const expiresAt = Math.floor(this.now() / 1000) + Math.round(this.options.eventIdTtlDays * 86_400);
    await inChunks(events, 25, async (chunk) => {
      const requests: NonNullable<BatchWriteItemCommandInput['RequestItems']>[string] = chunk.map((event) => ({
        PutRequest: {
          Item: {
            [LEDGER_KEY]: { S: archivedEventKey(policy, event.eventId) },
            epoch: { N: String(epoch) },
            [LEDGER_TTL_ATTRIBUTE]: { N: String(expiresAt) },
            // The position whose completion holds this event (Ledger.archiveEvents).
            ...(settledBy
              ? {
                  settledShard: { S: settledBy.shardId },
                  settledSeq: { S: toLedgerSequence(settledBy.sequenceNumber) },
                  settledSub: { N: String(settledBy.subSequenceNumber) },
                  settledLineage: { L: settledBy.lineage.map((shard) => ({ S: shard })) },
                }
              : {}),
            ...(event.payloadHash !== undefined ? { payloadHash: { S: event.payloadHash } } : {}),
          },
        },
      }));
      await untilProcessed(requests, `archived events of ${policy}`, async (pending) => {
        const result: BatchWriteItemCommandOutput = await this.dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [this.tableName]: pending } }));
        return result.UnprocessedItems?.[this.tableName];
      });
    });
  }

  async archivedEvents(policy: string, epoch: number, eventIds: string[], position: LedgerPosition | undefined): Promise<RememberedEvent[]> {
    const found: RememberedEvent[] = [];
    const now = Math.floor(this.now() / 1000);
    const unique = [...new Set(eventIds)];
    await inChunks(unique, 100, async (chunk) => {
      const keys: Record<string, AttributeValue>[] = chunk.map((eventId) => ({ [LEDGER_KEY]: { S: archivedEventKey(policy, eventId) } }));
      await untilProcessed(keys, `archived eventIds of ${policy}`, async (pending) => {
        const result: BatchGetItemCommandOutput = await this.dynamodb.send(new BatchGetItemCommand({ RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } } }));
        for (const item of result.Responses?.[this.tableName] ?? []) {
          const key = item[LEDGER_KEY]?.S ?? '';
          if (Number(item.epoch?.N ?? 0) < epoch || Number(item[LEDGER_TTL_ATTRIBUTE]?.N ?? 0) < now) continue;
          const settledBy = item.settledShard?.S && item.settledSeq?.S
            ? { shardId: item.settledShard.S, sequenceNumber: fromLedgerSequence(item.settledSeq.S), subSequenceNumber: Number(item.settledSub?.N ?? 0), lineage: (item.settledLineage?.L ?? []).map((value) => value.S ?? '') }
            : undefined;
          if (!archiveHolds(position, settledBy)) continue; // archived by a step whose completion never landed
          found.push({ eventId: key.slice(archivedEventKey(policy, '').length), ...(item.payloadHash?.S ? { payloadHash: item.payloadHash.S } : {}) });
        }
        return result.UnprocessedKeys?.[this.tableName]?.Keys;
      });
    });
    return found;
  }

  /**
   * Every policy's entry, page by page (a consistent scan of the table),
   * without the items whose keys start with `#` (epochs, shard progress).
   */
  async *entries(): AsyncGenerator<LedgerEntry> {
    for await (const page of paginateScan({ client: this.dynamodb }, { TableName: this.tableName, ConsistentRead: true })) {
      for (const item of page.Items ?? []) {
        const key = item[LEDGER_KEY]?.S;
        if (key !== undefined && !key.startsWith('#')) yield toEntry(item);
      }
    }
  }

  async get(policy: string): Promise<LedgerEntry | undefined> {
    const result = await this.dynamodb.send(
      new GetItemCommand({ TableName: this.tableName, Key: { [LEDGER_KEY]: { S: policy } }, ConsistentRead: true }),
    );
    return result.Item ? toEntry(result.Item) : undefined;
  }
}

/** Whether the item a failed completion returned shows that completion applied: its token is the last completed one. */
function completedBy(item: Item | undefined, token: string): boolean {
  return item?.completedToken?.S === token;
}

function toEntry(item: Item): LedgerEntry {
  const entry: LedgerEntry = {
    policy: item[LEDGER_KEY]?.S ?? '',
    epoch: item.epoch?.N ? Number(item.epoch.N) : 0,
    events: (item.eventIds?.L ?? []).map((value, i) => {
      const hash = item.eventHashes?.L?.[i]?.S;
      return { eventId: value.S ?? '', ...(hash ? { payloadHash: hash } : {}) };
    }),
  };
  if (item.hwm?.S) {
    entry.position = {
      shardId: item.hwmShard?.S ?? '',
      sequenceNumber: fromLedgerSequence(item.hwm.S),
      // No hwmSub: written before subsequences were kept; the mark covers the whole record.
      subSequenceNumber: item.hwmSub?.N !== undefined ? Number(item.hwmSub.N) : Number.MAX_SAFE_INTEGER,
      lineage: (item.hwmLineage?.L ?? []).map((value) => value.S ?? ''),
    };
  }
  if (item.revision?.N) entry.revision = Number(item.revision.N);
  if (item.docHash?.S) entry.docHash = item.docHash.S;
  if (item.policyState?.S) entry.state = item.policyState.S as PolicyState;
  if (item.desired?.S) entry.desired = JSON.parse(item.desired.S) as DesiredState;
  if (item.iamVersions?.L) entry.iamVersions = item.iamVersions.L.map((value) => value.S ?? '');
  if (item.verifyRequested?.N) entry.verifyRequested = Number(item.verifyRequested.N);
  if (item.verifyAfter?.N) entry.verifyAfter = Number(item.verifyAfter.N);
  if (item.updatedAt?.S) entry.updatedAt = item.updatedAt.S;
  if (item.lastOutcome?.S) entry.lastOutcome = item.lastOutcome.S;
  if (item.verifiedUpTo?.N) entry.verifiedUpTo = Number(item.verifiedUpTo.N);
  if (item.claimOwner?.S && item.claimToken?.S) {
    entry.claim = {
      owner: item.claimOwner.S,
      token: item.claimToken.S,
      expiresAt: Number(item.claimExpires?.N ?? 0),
      sequence: item.claimSeq?.S ?? '',
    };
  }
  return entry;
}
