// Parked records, kept durably in the ledger table beside the policies'
// items (docs/design.md, "Parking"). Three kinds of item, each under a key no
// policy can have (IAM names hold no `#`; ledger scans skip such keys):
//
//   #parks/<n>                the registry, in REGISTRY_BUCKETS items (n: from a
//                             hash of the policy key): `keys`, the set of parked
//                             policy keys (`#parks`, one item, as before: still read)
//   #park/<policy key>        a policy's park: `ids` (record ids), `shards`,
//                             `next` (ordinal counter), `since`, `reason`, `account`,
//                             `verify` (IAM owes a re-verification, run first)
//   #parked/<key>/<record id> one parked record: its event, its ordinal (its
//                             place in the policy's order), its position and data
//
// Order: a record's ordinal is drawn from the park's counter when it is
// parked, and a policy's records are parked in stream order (one pipeline per
// shard settles a policy's records in order; a child shard only after its
// parents), so ordinals are the policy's order across shards too. A record
// parked again (redelivered, replayed) keeps its first ordinal.
//
// A park may hold no record but `verify`: a step completed, and the
// re-verification it owes (a lost claim's late write may still land) met its
// account unavailable. The redriver runs it once the account is back, before
// any record that joined; until then the policy's later records join.
//
// The registry and a park change together (TransactWriteItems): a park that
// gains records (or `verify`) is listed, and a park is unlisted only while it
// holds neither.
// So a park is never left out of the registry, whichever of the pipeline
// (joining) and the redriver (draining) writes last. The registry is spread
// over items because every park and release writes it: on one item, an
// account's policies parked at once queue on it (DynamoDB cancels a
// transaction that meets another in progress on an item), and an item holds
// 400 KB, some 3,000 policy keys of IAM's longest names.
//
// Every write is an UpdateItem, alone or in a transaction, so the worker
// needs no grant on the ledger table beyond the ledger's own (GetItem,
// UpdateItem, BatchGetItem): a settled record's item is not deleted but
// given the table's TTL attribute, and DynamoDB removes it; an emptied park
// keeps its ordinal counter.

/** How long a settled record's item stays before DynamoDB's TTL removes it. */
const SETTLED_TTL_SECONDS = 24 * 3600;
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { BatchGetItemCommand, ConditionalCheckFailedException, GetItemCommand, TransactWriteItemsCommand, TransactionCanceledException, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, BatchGetItemCommandOutput, DynamoDBClient, TransactWriteItem, TransactWriteItemsCommandInput, UpdateItemCommandInput } from '@aws-sdk/client-dynamodb';
import type { PolicyEvent } from '../contract/event.js';
import { recordId } from '../contract/record-id.js';
import { isTransientCancellation } from '../faults/classify.js';
import { retry } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';
import { LEDGER_KEY, LEDGER_TTL_ATTRIBUTE } from '../ledger/table.js';
import { untilProcessed } from '../ledger/until-processed.js';
import type { StreamRecord, ValidRecord } from '../pipeline/types.js';

/** How many items the registry is spread over; a policy's bucket comes from a hash of its key. */
const REGISTRY_BUCKETS = 16;
const registryKey = (policy: string) => `#parks/${createHash('sha256').update(policy).digest()[0]! % REGISTRY_BUCKETS}`;
const REGISTRY_KEYS = Array.from({ length: REGISTRY_BUCKETS }, (_, n) => `#parks/${n}`);
/** The registry as one item, as an earlier version kept it: read, and a park listed there is unlisted there too. */
const SINGLE_REGISTRY_KEY = '#parks';
const parkKey = (policy: string) => `#park/${policy}`;
const recordKey = (policy: string, id: string) => `#parked/${policy}/${id}`;

/** A DynamoDB item holds 400 KB: a record whose gzipped data is larger keeps its event, not its data (`dataDropped`). */
const MAX_STORED_DATA = 256 * 1024;
/** A park's records go in its listing's transaction when they fit (DynamoDB takes 100 items and 4 MB in one); else first, one each. */
const TRANSACTION_RECORDS = 50;
const TRANSACTION_RECORD_BYTES = 2 * 1024 * 1024;

/** What an operator sees of a park. */
export interface ParkSummary {
  policy: string;
  account?: string;
  records: number;
  /** The shards its records came from. */
  shards: string[];
  /** When the policy was first parked, epoch ms. */
  since: number;
  /** Why its records could not be applied (the transient reason at parking time). */
  reason: string;
  detail: string;
  /** IAM owes the policy a re-verification, run before its records. */
  verify: boolean;
}

/** A parked record, as the redriver and `ips parked drop` get it back, in the policy's order. */
export interface ParkedRecord extends ValidRecord {
  id: string;
  ordinal: number;
}

export interface ParkStore {
  /** The policy keys with a park: every record of theirs joins it. */
  parkedPolicies(): Promise<Set<string>>;
  /** Parks `records` (one policy's, in stream order) behind whatever that policy has parked already. */
  park(policy: string, records: ValidRecord[], why: { reason: string; detail: string }): Promise<void>;
  summary(policy: string): Promise<ParkSummary | undefined>;
  /** A policy's parked records, in order. */
  records(policy: string): Promise<ParkedRecord[]>;
  /** Parks a re-verification the policy owes (its records, if any, settled): run before whatever joins. */
  parkVerification(policy: string, at: { shardId: string; account?: string | undefined }, why: { reason: string; detail: string }): Promise<void>;
  /**
   * Forgets settled records (their items expire by TTL) and, with `verification`, the
   * re-verification `answered` or still `owed`; unlists the park once it holds neither.
   */
  release(policy: string, ids: string[], verification?: 'answered' | 'owed'): Promise<void>;
}

type Item = Record<string, AttributeValue>;
type RecordUpdate = UpdateItemCommandInput & Required<Pick<UpdateItemCommandInput, 'Key' | 'UpdateExpression'>>;

export class DynamoDbParkStore implements ParkStore {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** The policies listed in the single registry item at the last read: their release unlists them there too. */
  private readonly listedInSingle = new Set<string>();

  async parkedPolicies(): Promise<Set<string>> {
    const parked = new Set<string>();
    for (const item of await this.getAll([...REGISTRY_KEYS, SINGLE_REGISTRY_KEY])) {
      const keys = item.keys?.SS ?? [];
      for (const key of keys) parked.add(key);
      if (item[LEDGER_KEY]?.S === SINGLE_REGISTRY_KEY) {
        this.listedInSingle.clear();
        for (const key of keys) this.listedInSingle.add(key);
      }
    }
    return parked;
  }

  async park(policy: string, records: ValidRecord[], why: { reason: string; detail: string }): Promise<void> {
    if (records.length === 0) return;
    // 1. Ordinals for the records, from the park's counter (a retry after a lost answer only leaves a gap).
    const counted = await this.dynamodb.send(
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: { [LEDGER_KEY]: { S: parkKey(policy) } },
        UpdateExpression: 'ADD #next :n',
        ExpressionAttributeNames: { '#next': 'next' },
        ExpressionAttributeValues: { ':n': { N: String(records.length) } },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    const last = Number(counted.Attributes?.next?.N ?? records.length);
    // 2. The records, each under its own key (one parked before keeps its ordinal), and 3. the park lists
    // them and the registry lists the park: all in one transaction when they fit in one, else the records first.
    // A transaction takes one write per item: a record given twice is written once (it keeps its first ordinal anyway).
    const first = [...new Map(records.map((valid, index) => [recordId(valid.record), index] as const).reverse())].sort(([, a], [, b]) => a - b);
    const updates = first.map(([id, index]) => this.recordUpdate(policy, id, last - records.length + 1 + index, records[index]!));
    const together = updates.length <= TRANSACTION_RECORDS && updates.reduce((bytes, update) => bytes + update.bytes, 0) <= TRANSACTION_RECORD_BYTES;
    if (!together) for (const { update } of updates) await this.dynamodb.send(new UpdateItemCommand(update));
    const ids = first.map(([id]) => id);
    const shards = [...new Set(records.map((valid) => valid.record.shardId))];
    await this.list(policy, { ids, shards, account: records[0]!.event.account, why }, together ? updates.map(({ update }) => ({ Update: update })) : []);
  }

  async parkVerification(policy: string, at: { shardId: string; account?: string | undefined }, why: { reason: string; detail: string }): Promise<void> {
    await this.list(policy, { shards: [at.shardId], account: at.account, why, verify: true });
  }

  /**
   * Lists what a park holds (record ids, a re-verification owed), the shards
   * it came from, its account and, the first time only, why and since when;
   * and lists the park in the registry, in the same transaction.
   */
  private async list(
    policy: string,
    what: { ids?: string[]; shards: string[]; account: string | undefined; why: { reason: string; detail: string }; verify?: boolean },
    withRecords: TransactWriteItem[] = [],
  ): Promise<void> {
    const add = ['#shards :shards', ...(what.ids ? ['#ids :ids'] : [])];
    const set = ['#since = if_not_exists(#since, :now)', '#reason = if_not_exists(#reason, :reason)', '#detail = if_not_exists(#detail, :detail)'];
    if (what.verify) set.push('#verify = :verify');
    if (what.account !== undefined) set.push('#account = :account');
    await this.transact({
      TransactItems: [
        ...withRecords,
        {
          Update: {
            TableName: this.tableName,
            Key: { [LEDGER_KEY]: { S: parkKey(policy) } },
            UpdateExpression: `ADD ${add.join(', ')} SET ${set.join(', ')}`,
            ExpressionAttributeNames: {
              '#shards': 'shards',
              '#since': 'since',
              '#reason': 'reason',
              '#detail': 'detail',
              ...(what.ids ? { '#ids': 'ids' } : {}),
              ...(what.verify ? { '#verify': 'verify' } : {}),
              ...(what.account !== undefined ? { '#account': 'account' } : {}),
            },
            ExpressionAttributeValues: {
              ':shards': { SS: what.shards },
              ':now': { N: String(this.now()) },
              ':reason': { S: what.why.reason },
              ':detail': { S: what.why.detail.slice(0, 1_000) },
              ...(what.ids ? { ':ids': { SS: what.ids } } : {}),
              ...(what.verify ? { ':verify': { BOOL: true } } : {}),
              ...(what.account !== undefined ? { ':account': { S: what.account } } : {}),
            },
          },
        },
        this.registry('ADD', policy),
      ],
    });
  }

  async summary(policy: string): Promise<ParkSummary | undefined> {
    const item = await this.get(parkKey(policy));
    const verify = item?.verify?.BOOL === true;
    if (!item?.ids?.SS?.length && !verify) return undefined; // drained (the item keeps its ordinal counter)
    return {
      policy,
      ...(item.account?.S !== undefined ? { account: item.account.S } : {}),
      records: item.ids?.SS?.length ?? 0,
      shards: item.shards?.SS ?? [],
      since: Number(item.since?.N ?? 0),
      reason: item.reason?.S ?? '',
      detail: item.detail?.S ?? '',
      verify,
    };
  }

  async records(policy: string): Promise<ParkedRecord[]> {
    const ids = (await this.get(parkKey(policy)))?.ids?.SS ?? [];
    const found: ParkedRecord[] = [];
    const missing = new Set(ids);
    for (const item of await this.getAll(ids.map((id) => recordKey(policy, id)))) {
      if (item[LEDGER_TTL_ATTRIBUTE]) continue; // settled, waiting for the TTL
      const parked = fromItem(item);
      found.push(parked);
      missing.delete(parked.id);
    }
    // Listed but gone or expiring: settled by a redrive whose clean-up was cut short; forgetting them is what that clean-up would have done.
    if (missing.size > 0) await this.release(policy, [...missing]);
    return found.sort((a, b) => a.ordinal - b.ordinal);
  }

  async release(policy: string, ids: string[], verification?: 'answered' | 'owed'): Promise<void> {
    const expiresAt = String(Math.floor(this.now() / 1000) + SETTLED_TTL_SECONDS);
    for (const id of ids) {
      await this.dynamodb
        .send(
          new UpdateItemCommand({
            TableName: this.tableName,
            Key: { [LEDGER_KEY]: { S: recordKey(policy, id) } },
            UpdateExpression: 'SET #ttl = :ttl',
            ConditionExpression: 'attribute_exists(#key)',
            ExpressionAttributeNames: { '#ttl': LEDGER_TTL_ATTRIBUTE, '#key': LEDGER_KEY },
            ExpressionAttributeValues: { ':ttl': { N: expiresAt } },
          }),
        )
        .catch(ignore(ConditionalCheckFailedException));
    }
    if (ids.length > 0 || verification !== undefined) {
      const deleteIds = ids.length > 0 ? 'DELETE #ids :ids' : '';
      const verify = verification === 'answered' ? 'REMOVE #verify' : verification === 'owed' ? 'SET #verify = :verify' : '';
      const values: Item = { ...(ids.length > 0 ? { ':ids': { SS: ids } } : {}), ...(verification === 'owed' ? { ':verify': { BOOL: true } } : {}) };
      await this.dynamodb
        .send(
          new UpdateItemCommand({
            TableName: this.tableName,
            Key: { [LEDGER_KEY]: { S: parkKey(policy) } },
            UpdateExpression: [deleteIds, verify].filter(Boolean).join(' '),
            ConditionExpression: 'attribute_exists(#key)',
            ExpressionAttributeNames: { '#key': LEDGER_KEY, ...(ids.length > 0 ? { '#ids': 'ids' } : {}), ...(verification !== undefined ? { '#verify': 'verify' } : {}) },
            // DynamoDB refuses an empty map of values (REMOVE alone needs none).
            ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
          }),
        )
        .catch(ignore(ConditionalCheckFailedException));
    }
    // Empty (DynamoDB drops an emptied set): the park leaves the registry, as long as it stays empty; a record that joined meanwhile keeps it listed.
    try {
      await this.transact({
        TransactItems: [
          {
            Update: {
              TableName: this.tableName,
              Key: { [LEDGER_KEY]: { S: parkKey(policy) } },
              UpdateExpression: 'REMOVE #shards, #since, #reason, #detail, #account',
              ConditionExpression: 'attribute_not_exists(#ids) AND attribute_not_exists(#verify)',
              ExpressionAttributeNames: { '#ids': 'ids', '#verify': 'verify', '#shards': 'shards', '#since': 'since', '#reason': 'reason', '#detail': 'detail', '#account': 'account' },
            },
          },
          this.registry('DELETE', policy),
          ...(this.listedInSingle.has(policy) ? [this.registry('DELETE', policy, SINGLE_REGISTRY_KEY)] : []),
        ],
      });
    } catch (error) {
      // Cancelled by its condition: a record joined (or a re-verification is owed), and the park stays listed.
      if (!(error instanceof TransactionCanceledException) || isTransientCancellation(error)) throw error;
    }
  }

  /**
   * A transaction of a park and the registry. Every park and release writes a
   * registry item (one of REGISTRY_BUCKETS), so policies parked or drained at
   * once meet there, and DynamoDB cancels a transaction that meets another in
   * progress (TransactionConflict): tried again after a short wait (RETRY.parkTransaction).
   */
  private async transact(input: TransactWriteItemsCommandInput): Promise<void> {
    await retry(RETRY.parkTransaction, () => this.dynamodb.send(new TransactWriteItemsCommand(input)), { retriable: isTransientCancellation });
  }

  /** The registry's update that lists (ADD) or unlists (DELETE) a park, as one item of a transaction. */
  private registry(action: 'ADD' | 'DELETE', policy: string, key = registryKey(policy)) {
    return {
      Update: {
        TableName: this.tableName,
        Key: { [LEDGER_KEY]: { S: key } },
        UpdateExpression: `${action} #keys :key`,
        ExpressionAttributeNames: { '#keys': 'keys' },
        ExpressionAttributeValues: { ':key': { SS: [policy] } },
      },
    };
  }

  /** The items under `keys` that exist, strongly consistent, 100 keys a call (what DynamoDB leaves unprocessed is asked again: untilProcessed). */
  private async getAll(keys: string[]): Promise<Item[]> {
    const found: Item[] = [];
    for (let at = 0; at < keys.length; at += 100) {
      await untilProcessed(
        keys.slice(at, at + 100).map((key): Item => ({ [LEDGER_KEY]: { S: key } })),
        'parked items',
        async (pending) => {
          const answer: BatchGetItemCommandOutput = await this.dynamodb.send(new BatchGetItemCommand({ RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } } }));
          found.push(...(answer.Responses?.[this.tableName] ?? []));
          return answer.UnprocessedKeys?.[this.tableName]?.Keys;
        },
      );
    }
    return found;
  }

  private async get(key: string): Promise<Item | undefined> {
    return (await this.dynamodb.send(new GetItemCommand({ TableName: this.tableName, Key: { [LEDGER_KEY]: { S: key } }, ConsistentRead: true }))).Item;
  }

  /** The write of one parked record, and about how many bytes it carries. A record parked before keeps its ordinal; one settled before (its item waiting for the TTL) is parked again, and kept. */
  private recordUpdate(policy: string, id: string, ordinal: number, valid: ValidRecord): { update: RecordUpdate; bytes: number } {
    const { record } = valid;
    const data = gzipSync(record.data);
    const event = JSON.stringify(valid.event);
    const fields: Item = {
      event: { S: event },
      payloadHash: { S: valid.payloadHash },
      shardId: { S: record.shardId },
      sequenceNumber: { S: record.sequenceNumber },
      subSequenceNumber: { N: String(record.subSequenceNumber) },
      partitionKey: { S: record.partitionKey },
      parkedAt: { N: String(this.now()) },
      ...(data.length <= MAX_STORED_DATA ? { data: { B: data } } : { dataDropped: { BOOL: true } }),
      ...(record.arrivedAt !== undefined ? { arrivedAt: { N: String(record.arrivedAt) } } : {}),
    };
    const names = Object.keys(fields);
    return {
      update: {
        TableName: this.tableName,
        Key: { [LEDGER_KEY]: { S: recordKey(policy, id) } },
        UpdateExpression: `SET #ordinal = if_not_exists(#ordinal, :ordinal), ${names.map((_, i) => `#f${i} = :f${i}`).join(', ')} REMOVE #ttl`,
        ExpressionAttributeNames: { '#ordinal': 'ordinal', '#ttl': LEDGER_TTL_ATTRIBUTE, ...Object.fromEntries(names.map((name, i) => [`#f${i}`, name])) },
        ExpressionAttributeValues: { ':ordinal': { N: String(ordinal) }, ...Object.fromEntries(names.map((name, i) => [`:f${i}`, fields[name]!])) },
      },
      bytes: (data.length <= MAX_STORED_DATA ? data.length : 0) + Buffer.byteLength(event) + 1_024,
    };
  }
}

function ignore(type: new (...args: never[]) => Error) {
  return (error: unknown) => {
    if (!(error instanceof type)) throw error;
  };
}

function fromItem(item: Item): ParkedRecord {
  const key = item[LEDGER_KEY]!.S!;
  const parsed = JSON.parse(item.event!.S!) as PolicyEvent;
  // Tags are a null-prototype object in a decoded event (a tag named `__proto__` is a tag): kept so.
  const event = parsed.type === 'policy.upserted' ? { ...parsed, tags: Object.assign(Object.create(null) as Record<string, string>, parsed.tags) } : parsed;
  const record: StreamRecord = {
    shardId: item.shardId!.S!,
    sequenceNumber: item.sequenceNumber!.S!,
    subSequenceNumber: Number(item.subSequenceNumber!.N),
    partitionKey: item.partitionKey!.S!,
    data: item.data?.B ? gunzipSync(item.data.B) : Buffer.from(item.event!.S!),
    index: 0,
    receivedAt: Number(item.parkedAt!.N),
    ...(item.arrivedAt?.N !== undefined ? { arrivedAt: Number(item.arrivedAt.N) } : {}),
  };
  return { id: key.slice(key.lastIndexOf('/') + 1), ordinal: Number(item.ordinal!.N), record, event, payloadHash: item.payloadHash!.S! };
}
