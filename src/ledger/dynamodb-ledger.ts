// The ledger in DynamoDB. The claim is one conditional UpdateItem; when its
// condition fails, the item returned with the failure explains why
// (ReturnValuesOnConditionCheckFailure), so no second read is made.
import { randomUUID } from 'node:crypto';
import { ConditionalCheckFailedException, GetItemCommand, UpdateItemCommand, paginateScan } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { AdoptionRequest, AdoptionResult, ClaimRequest, ClaimResult, CompletionRequest, LateWrites, Ledger, LedgerEntry, ReleaseResult, RememberedEvent } from './ledger.js';
import { expiredElsewhere, explainRefusal, lateWritesEnd, needsVerification, settledVerdict } from './ledger.js';
import type { LedgerPosition } from './position.js';
import { toLedgerSequence } from './sequence.js';
import { LEDGER_KEY } from './table.js';
import { DynamoDbEventArchive } from './event-archive.js';
import { advanceEpoch, currentEpoch } from './dynamodb-epochs.js';
import type { LedgerStore } from './dynamodb-epochs.js';
import { adoptEntry, releaseEntry } from './dynamodb-adoption.js';
import { completedBy, completionUpdate, toEntry } from './dynamodb-item.js';
import type { Item } from './dynamodb-item.js';
import type { Config } from '../config/config.js';
import { ClockSkewGuard, clockOffsetBoundMs } from './clock-skew.js';
import type { ClockSkewWatch } from './clock-skew.js';
import { ClaimLostError, TransientError } from '../faults/errors.js';
import { AGAIN, retry } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';

export { EPOCH_ITEM_KEY, shardEpochKey } from './dynamodb-epochs.js';

export interface DynamoDbLedgerOptions {
  claimTtlMs: number;
  /** How long after a claim's expiry its owner's IAM writes may still land (Config.lateWriteMs): a takeover's mark waits as long. */
  lateWriteMs: number;
  /** How long an archived eventId is kept (Config.eventIdTtlDays), in days. */
  eventIdTtlDays: number;
  /** The event archive's table (Config.eventArchiveTable): the eventIds that left an entry's window (event-archive.ts). */
  archiveTable: string;
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
  config: Pick<Config, 'ledgerTable' | 'eventArchiveTable' | 'claimTtlMs' | 'eventIdTtlDays' | 'lateWriteMs'> & Partial<Pick<Config, 'maxClockOffsetMs'>>,
  clock: Pick<DynamoDbLedgerOptions, 'now'> = {},
  watch: ClockSkewWatch = {},
): DynamoDbLedger {
  // A refused claim measures the offset again with a read of the epoch: its answer carries AWS's Date.
  const guard = new ClockSkewGuard(dynamodb, config.maxClockOffsetMs ?? clockOffsetBoundMs(config.claimTtlMs), watch, () => ledger.currentEpoch());
  const beforeClaim = (what: string, policy: string) => guard.check(what, policy);
  const ledger: DynamoDbLedger = new DynamoDbLedger(dynamodb, config.ledgerTable, {
    claimTtlMs: config.claimTtlMs,
    lateWriteMs: config.lateWriteMs,
    eventIdTtlDays: config.eventIdTtlDays,
    archiveTable: config.eventArchiveTable,
    ...clock,
    beforeClaim,
  });
  return ledger;
}

export class DynamoDbLedger implements Ledger {
  private readonly now: () => number;
  private readonly archive: DynamoDbEventArchive;
  /** The ledger table, its client and clock, for the epochs and adoptions. */
  private readonly store: LedgerStore;

  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
    private readonly options: DynamoDbLedgerOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.archive = new DynamoDbEventArchive(dynamodb, { table: options.archiveTable, legacyTable: tableName, eventIdTtlDays: options.eventIdTtlDays, now: this.now });
    this.store = { dynamodb, tableName, now: this.now };
  }

  currentEpoch(shards: string[] = []): Promise<number> {
    return currentEpoch(this.store, shards);
  }

  /**
   * Moves to a new epoch, in which every applied event may run again
   * (re-apply replay): the whole ledger, or only the given shards
   * (dynamodb-epochs.ts).
   */
  advanceEpoch(shards?: string[]): Promise<number> {
    return advanceEpoch(this.store, shards);
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
    const pastPosition = '(attribute_not_exists(hwm)' + ' OR (hwmShard <> :shard AND NOT contains(hwmLineage, :shard))' + ' OR (hwmShard = :shard AND (hwm < :seq OR (hwm = :seq AND hwmSub < :sub))))';
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
    const { expression, values } = completionUpdate(request, this.now());
    try {
      await this.dynamodb.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { [LEDGER_KEY]: { S: request.policy } },
          UpdateExpression: expression,
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
    await this.dynamodb
      .send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { [LEDGER_KEY]: { S: policy } },
          UpdateExpression: later ? 'ADD verifyRequested :one SET verifyAfter = :after' : 'ADD verifyRequested :one',
          ExpressionAttributeValues: { ':one': { N: '1' }, ...(later ? { ':after': { N: String(notBefore) } } : {}) },
          ...(later ? { ConditionExpression: 'attribute_not_exists(verifyAfter) OR verifyAfter < :after' } : {}),
        }),
      )
      .catch(async (error: unknown) => {
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

  archiveEvents(policy: string, epoch: number, events: RememberedEvent[], settledBy?: LedgerPosition): Promise<void> {
    return this.archive.archive(policy, epoch, events, settledBy);
  }

  archivedEvents(policy: string, epoch: number, eventIds: string[], position: LedgerPosition | undefined): Promise<RememberedEvent[]> {
    return this.archive.find(policy, epoch, eventIds, position);
  }

  adopt(request: AdoptionRequest): Promise<AdoptionResult> {
    return adoptEntry(this.store, request);
  }

  release(policy: string): Promise<ReleaseResult> {
    return releaseEntry(this.store, policy);
  }

  /**
   * Every policy's entry, page by page (a consistent scan of the table),
   * without the items whose keys start with `#` (epochs, shard progress, and
   * the archived eventIds versions before the archive table left there, until
   * they expire). The archive itself is a table of its own: the scan costs
   * the policies, not the events.
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
    const result = await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { [LEDGER_KEY]: { S: policy } }, ConsistentRead: true }));
    return result.Item ? toEntry(result.Item) : undefined;
  }
}
