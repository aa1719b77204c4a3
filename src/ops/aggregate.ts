// KPL aggregation, as real producers write it: many user records in one
// Kinesis record (magic bytes F3 89 9A C2, a protobuf AggregatedRecord, an MD5
// of it), encoded by aws-kinesis-agg. The KCL deaggregates them and hands each
// user record on with the aggregate's sequence number and its own subsequence
// number; but it checks every user record's hash key (the MD5 of its
// partition key, a 128-bit number) against the range of the shard the
// aggregate landed on, and one record outside it makes the KCL drop the whole
// aggregate. So, like the KPL, this module aggregates only user records bound
// for the same shard (read from ListShards), and routes each aggregate with an
// ExplicitHashKey inside that shard's range.
//
// The message is encoded with the package's own protobuf type; the partition
// key table is built here. (The package's RecordAggregator keeps that table in
// a plain object: integer-like keys such as "5" come out of Object.keys first,
// so records get another record's partition key, and "__proto__" or
// "hasOwnProperty" break it.)
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { createHash } from 'node:crypto';
import kpl from 'aws-kinesis-agg/lib/common.js';
import type { OutgoingRecord, PutResult } from './producer.js';
import { putRecords } from './producer.js';
import { AGAIN, retry } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';
import { listShards } from '../stream/shard-tree.js';
import { hashKeyOf, inHashKeyRange } from '../contract/hash-key.js';
import type { HashKeyRange } from '../contract/hash-key.js';

/** A user record's hash key (contract/hash-key.ts), for the callers of this module. */
export { hashKeyOf };

/** A record as its producer means it: the aggregate carries many. */
export interface UserRecord {
  partitionKey: string;
  data: Buffer;
}

/** The most a Kinesis record may carry: its data and its partition key. */
export const MAX_RECORD_BYTES = 1024 * 1024;
const MAGIC_BYTES = 4;
const DIGEST_BYTES = 16;

export interface ShardRange extends HashKeyRange {
  shardId: string;
  /** Open shards take new records; closed ones (split or merged) do not. */
  open: boolean;
}

/** Every shard the stream lists, with its hash key range. */
export async function listShardRanges(kinesis: KinesisClient, streamName: string): Promise<ShardRange[]> {
  return (await listShards(kinesis, streamName)).map((shard) => ({
    shardId: shard.shardId,
    startingHashKey: shard.startingHashKey,
    endingHashKey: shard.endingHashKey,
    open: !shard.closed,
  }));
}

export function inRange(hashKey: bigint, shard: ShardRange): boolean {
  return inHashKeyRange(hashKey, shard);
}

/** The open shard whose range holds the hash key. */
export function shardFor(hashKey: bigint, shards: ShardRange[]): ShardRange {
  const shard = shards.find((s) => s.open && inRange(hashKey, s));
  if (!shard) throw new Error(`no open shard holds hash key ${hashKey}`);
  return shard;
}

function varintBytes(value: number): number {
  let bytes = 1;
  for (let rest = value; rest >= 0x80; rest = Math.floor(rest / 0x80)) bytes++;
  return bytes;
}

/**
 * The exact size of an aggregate as it grows, record by record: magic bytes,
 * the protobuf message (a partition key table entry per distinct key, a
 * Record of key index and data per user record) and the digest.
 */
class AggregateSize {
  private readonly keys = new Map<string, number>();
  bytes = MAGIC_BYTES + DIGEST_BYTES;

  /** What adding the record would add. */
  cost(record: UserRecord): number {
    let cost = 0;
    let index = this.keys.get(record.partitionKey);
    if (index === undefined) {
      const keyBytes = Buffer.byteLength(record.partitionKey, 'utf8');
      cost += 1 + varintBytes(keyBytes) + keyBytes;
      index = this.keys.size;
    }
    const inner = 1 + varintBytes(index) + 1 + varintBytes(record.data.length) + record.data.length;
    return cost + 1 + varintBytes(inner) + inner;
  }

  add(record: UserRecord): void {
    this.bytes += this.cost(record);
    if (!this.keys.has(record.partitionKey)) this.keys.set(record.partitionKey, this.keys.size);
  }
}

/** The size of the aggregate `buildAggregate(records)` makes. */
export function aggregatedSize(records: UserRecord[]): number {
  const size = new AggregateSize();
  for (const record of records) size.add(record);
  return size.bytes;
}

/** How many bytes an aggregate routed by this partition key may have. */
function capacityFor(partitionKey: string): number {
  return MAX_RECORD_BYTES - Buffer.byteLength(partitionKey, 'utf8');
}

/**
 * One aggregate (KPL format) of the user records, in order. It does not look
 * at shards: put it so that it lands where every one of its records' hash
 * keys belongs (aggregateRecord does, for the first record's shard).
 */
export function buildAggregate(records: UserRecord[]): Buffer {
  if (records.length === 0) throw new Error('an aggregate needs at least one user record');
  const keys = new Map<string, number>();
  const message = {
    partition_key_table: [] as string[],
    explicit_hash_key_table: [] as string[],
    records: records.map((record) => {
      let index = keys.get(record.partitionKey);
      if (index === undefined) {
        index = keys.size;
        keys.set(record.partitionKey, index);
      }
      return { partition_key_index: index, data: record.data };
    }),
  };
  message.partition_key_table = [...keys.keys()];
  const body = kpl.AggregatedRecord.encode(message).finish();
  const digest = createHash('md5').update(body).digest();
  const data = Buffer.concat([kpl.magic, body, digest]);
  if (data.length > capacityFor(records[0]!.partitionKey)) throw new Error(`the aggregate of ${records.length} user records is ${data.length} bytes, more than a Kinesis record holds`);
  return data;
}

/**
 * The aggregate as a Kinesis record to put: partition key and explicit hash
 * key of its first user record, so it lands on that record's shard. Every
 * other record must belong to the same shard, or the KCL drops the aggregate.
 */
export function aggregateRecord(records: UserRecord[]): OutgoingRecord {
  const first = records[0];
  if (!first) throw new Error('an aggregate needs at least one user record');
  return { partitionKey: first.partitionKey, explicitHashKey: hashKeyOf(first.partitionKey).toString(), data: buildAggregate(records) };
}

export interface PlannedAggregate extends OutgoingRecord {
  explicitHashKey: string;
  /** The shard it is meant for. */
  shardId: string;
  /** Indexes of its user records in the input, in order: a member's place is its subsequence number. */
  members: number[];
}

/**
 * Groups user records into aggregates as the KPL does: only records bound for
 * the same shard share one, at most `maxRecords` each and within the Kinesis
 * record limit, each shard's records in input order. Aggregates come out in
 * the order of their first record.
 */
export function planAggregates(records: UserRecord[], shards: ShardRange[], maxRecords: number): PlannedAggregate[] {
  if (!Number.isInteger(maxRecords) || maxRecords < 1) throw new Error(`maxRecords must be a positive integer, got ${maxRecords}`);
  interface Open {
    shardId: string;
    members: number[];
    size: AggregateSize;
  }
  const done: Open[] = [];
  const open = new Map<string, Open>();
  const close = (current: Open) => {
    done.push(current);
    open.delete(current.shardId);
  };
  records.forEach((record, index) => {
    const shardId = shardFor(hashKeyOf(record.partitionKey), shards).shardId;
    let current = open.get(shardId);
    // The aggregate is routed by its first record's partition key, which counts towards the record limit.
    const fits = (o: Open) => o.members.length < maxRecords && o.size.bytes + o.size.cost(record) <= capacityFor(o.members.length > 0 ? records[o.members[0]!]!.partitionKey : record.partitionKey);
    if (current && !fits(current)) {
      close(current);
      current = undefined;
    }
    if (!current) {
      current = { shardId, members: [], size: new AggregateSize() };
      open.set(shardId, current);
      if (!fits(current)) throw new Error(`the user record with partition key ${JSON.stringify(record.partitionKey)} (${record.data.length} bytes) does not fit in a Kinesis record`);
    }
    current.size.add(record);
    current.members.push(index);
  });
  for (const current of [...open.values()]) close(current);
  return done
    .sort((a, b) => a.members[0]! - b.members[0]!)
    .map(({ shardId, members }) => {
      const first = records[members[0]!]!.partitionKey;
      return { shardId, members, partitionKey: first, explicitHashKey: hashKeyOf(first).toString(), data: buildAggregate(members.map((m) => records[m]!)) };
    });
}

/** Where a user record landed: the aggregate's shard and sequence number, and its own subsequence number. */
export interface AggregatedPutResult extends PutResult {
  subSequenceNumber: number;
}

export interface AggregatedPut {
  /** Per user record, in input order. */
  results: AggregatedPutResult[];
  /** Kinesis records written (aggregates, counting any re-sent after a reshard). */
  kinesisRecords: number;
  /** The shard map the last aggregates were planned with: pass it to the next call. */
  shards: ShardRange[];
}

/**
 * Puts the user records as KPL aggregates (see planAggregates), at most
 * `maxRecords` user records each (default: as many as fit). `shards` saves a
 * ListShards call when the caller has the map. If the stream was resharded
 * meanwhile and an aggregate lands on a shard whose range does not hold all
 * its records (the KCL would drop it whole), those records are planned again
 * on a fresh shard map and put again.
 */
export async function putAggregated(kinesis: KinesisClient, streamName: string, records: UserRecord[], options: { maxRecords?: number; shards?: ShardRange[] } = {}): Promise<AggregatedPut> {
  const results: AggregatedPutResult[] = new Array(records.length);
  let shards = options.shards ?? (await listShardRanges(kinesis, streamName));
  let pending = records.map((_, index) => index);
  let kinesisRecords = 0;
  await retry(
    RETRY.aggregateReshard,
    async () => {
      if (pending.length === 0) return pending;
      const subset = pending.map((index) => records[index]!);
      const planned = planAggregates(subset, shards, options.maxRecords ?? Number.MAX_SAFE_INTEGER);
      const puts = await putRecords(kinesis, streamName, planned);
      kinesisRecords += planned.length;
      const strays: number[] = [];
      let known = shards;
      for (const [i, aggregate] of planned.entries()) {
        const put = puts[i]!;
        const members = aggregate.members.map((m) => pending[m]!);
        if (put.shardId !== aggregate.shardId) {
          // Resharded since the map was read: does the shard it landed on hold every record?
          if (!known.some((s) => s.shardId === put.shardId)) known = await listShardRanges(kinesis, streamName);
          const landed = known.find((s) => s.shardId === put.shardId);
          if (!landed || !members.every((m) => inRange(hashKeyOf(records[m]!.partitionKey), landed))) {
            strays.push(...members);
            continue;
          }
        }
        members.forEach((m, sub) => {
          results[m] = { partitionKey: records[m]!.partitionKey, shardId: put.shardId, sequenceNumber: put.sequenceNumber, subSequenceNumber: sub };
        });
      }
      if (strays.length > 0) known = await listShardRanges(kinesis, streamName);
      shards = known;
      pending = strays.sort((a, b) => a - b);
      return pending.length > 0 ? AGAIN : pending;
    },
    { retriable: () => false },
  );
  if (pending.length > 0) throw new Error(`${pending.length} user records still landed outside their shard after ${RETRY.aggregateReshard.attempts} tries: is the stream being resharded?`);
  return { results, kinesisRecords, shards };
}

/**
 * Puts the user records as exactly one aggregate, in this order, routed to
 * the shard of the first (tests use it to put chosen records together; put
 * `aggregateRecord(records)` with putRecords to send the same aggregate
 * again). They must all belong to one shard: it checks, and fails if the
 * aggregate landed where the KCL would drop it (the stream was resharded).
 */
export async function putAggregate(kinesis: KinesisClient, streamName: string, records: UserRecord[], options: { shards?: ShardRange[] } = {}): Promise<AggregatedPutResult[]> {
  let shards = options.shards ?? (await listShardRanges(kinesis, streamName));
  const targets = new Set(records.map((record) => shardFor(hashKeyOf(record.partitionKey), shards).shardId));
  if (targets.size > 1) throw new Error(`the user records belong to ${targets.size} shards (${[...targets].join(', ')}); the KCL would drop an aggregate spanning them`);
  const [put] = await putRecords(kinesis, streamName, [aggregateRecord(records)]);
  if (!shards.some((s) => s.shardId === put!.shardId)) shards = await listShardRanges(kinesis, streamName);
  const landed = shards.find((s) => s.shardId === put!.shardId);
  if (!landed || !records.every((record) => inRange(hashKeyOf(record.partitionKey), landed))) {
    throw new Error(`the aggregate landed on ${put!.shardId}, which does not hold all its records' hash keys (the stream was resharded): the KCL will drop it`);
  }
  return records.map((record, sub) => ({ partitionKey: record.partitionKey, shardId: put!.shardId, sequenceNumber: put!.sequenceNumber, subSequenceNumber: sub }));
}
