// A shard's records as the record processor would be handed them: read from a
// position to the tip (or to a last sequence number), KPL aggregates
// deaggregated into their user records (the aggregate's sequence number, each
// its own subsequence number), as the KCL does for the daemon. The KCL drops
// an aggregate whole when one of its user records' hash keys lies outside the
// shard's range (docs/operations.md, "Aggregated, as the KPL writes"); such
// aggregates are counted, not returned. Reads only (GetShardIterator,
// GetRecords): `ips plan --from-stream` and `ips replay --dry-run` use it.
import type { KinesisClient, _Record } from '@aws-sdk/client-kinesis';
import agg from 'aws-kinesis-agg';
import { hashKeyOf, inHashKeyRange } from '../contract/hash-key.js';
import type { HashKeyRange } from '../contract/hash-key.js';
import { compareSequence } from '../ledger/sequence.js';
import { readShard } from './shard-positions.js';
import type { IteratorStart } from './shard-positions.js';

/** The KPL's magic bytes: an aggregate starts with them. */
const KPL_MAGIC = Buffer.from([0xf3, 0x89, 0x9a, 0xc2]);

export interface ShardRecord {
  shardId: string;
  sequenceNumber: string;
  subSequenceNumber: number;
  partitionKey: string;
  data: Buffer;
}

export interface ShardRead {
  records: ShardRecord[];
  /** Aggregates the KCL would drop whole (a user record's hash key outside the shard's range), or that cannot be read. */
  droppedAggregates: number;
}

/**
 * The user records of `shardId` from `start`, up to and including the record
 * `last` when given (else to the tip).
 */
export async function readShardRecords(kinesis: KinesisClient, streamName: string, shard: { shardId: string } & HashKeyRange, start: IteratorStart, last?: string): Promise<ShardRead> {
  const read: ShardRead = { records: [], droppedAggregates: 0 };
  await readShard(kinesis, streamName, shard.shardId, start, (records) => {
    for (const record of records) {
      if (last !== undefined && compareSequence(record.SequenceNumber ?? '0', last) > 0) return false;
      const users = userRecords(record, shard);
      if (users === undefined) read.droppedAggregates++;
      else read.records.push(...users);
    }
    return true;
  });
  return read;
}

/** A Kinesis record's user records; undefined when the KCL would drop it. */
function userRecords(record: _Record, shard: { shardId: string } & HashKeyRange): ShardRecord[] | undefined {
  const data = Buffer.from(record.Data ?? new Uint8Array());
  const base = { shardId: shard.shardId, sequenceNumber: record.SequenceNumber ?? '0', partitionKey: record.PartitionKey ?? '' };
  if (data.length < KPL_MAGIC.length || !data.subarray(0, KPL_MAGIC.length).equals(KPL_MAGIC)) return [{ ...base, subSequenceNumber: 0, data }];
  let users: ShardRecord[] | undefined;
  agg.deaggregateSync({ partitionKey: base.partitionKey, sequenceNumber: base.sequenceNumber, data: data.toString('base64') }, true, (error, found) => {
    if (error || !found) return;
    const inRange = found.every((user) => inHashKeyRange(user.explicitPartitionKey ? BigInt(user.explicitPartitionKey) : hashKeyOf(user.partitionKey), shard));
    if (!inRange) return;
    users = found.map((user, index) => ({ ...base, partitionKey: user.partitionKey, subSequenceNumber: user.subSequenceNumber ?? index, data: Buffer.from(user.data, 'base64') }));
  });
  return users;
}
