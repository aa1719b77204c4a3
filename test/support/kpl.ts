// KPL aggregates whose user records carry explicit hash keys, as the KPL
// writes them when a producer sets one per user record (the explicit hash key
// table of the AggregatedRecord message). src/ops/aggregate.ts never writes
// them: it routes by partition key. Tests use these to put, through the
// KCL's own deaggregation, a user record whose explicit hash key lies in one
// shard's range while its partition key hashes into another's.
import { createHash } from 'node:crypto';
import kpl from 'aws-kinesis-agg/lib/common.js';

export interface KeyedUserRecord {
  partitionKey: string;
  data: Buffer;
  /** Routes the user record instead of the MD5 of its partition key. */
  explicitHashKey?: bigint;
}

/** One aggregate (magic bytes, AggregatedRecord, MD5 of it) of the user records, in order. */
export function aggregateWithHashKeys(records: KeyedUserRecord[]): Buffer {
  const partitionKeys: string[] = [];
  const hashKeys: string[] = [];
  const indexOf = (table: string[], value: string) => (table.includes(value) ? table.indexOf(value) : table.push(value) - 1);
  const message = {
    partition_key_table: partitionKeys,
    explicit_hash_key_table: hashKeys,
    records: records.map((record) => ({
      partition_key_index: indexOf(partitionKeys, record.partitionKey),
      ...(record.explicitHashKey !== undefined ? { explicit_hash_key_index: indexOf(hashKeys, record.explicitHashKey.toString()) } : {}),
      data: record.data,
    })),
  };
  const body = kpl.AggregatedRecord.encode(message).finish();
  return Buffer.concat([kpl.magic, body, createHash('md5').update(body).digest()]);
}
