// Puts records on the stream with PutRecords (500 records and 5 MiB a call at
// most), re-sending the entries Kinesis refused (throttled) until all are in.
// Returns where each record landed, in input order, so callers can check
// outcomes per record. KPL aggregates go through here too (ops/aggregate.ts).
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { AGAIN, retry } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';
import type { WireEvent } from '../contract/wire-event.js';
import { policyKey } from '../contract/policy-key.js';

export interface OutgoingRecord {
  partitionKey: string;
  data: Buffer;
  /** A 128-bit hash key in decimal: routes the record instead of the MD5 of its partition key. */
  explicitHashKey?: string;
}

export interface PutResult {
  partitionKey: string;
  shardId: string;
  sequenceNumber: string;
}

const BATCH = 500;
/** PutRecords takes 5 MiB a call, data and partition keys counted. */
const BATCH_BYTES = 5 * 1024 * 1024;

/** Consecutive index ranges [start, end) of at most BATCH records and BATCH_BYTES. */
function batches(records: OutgoingRecord[]): [number, number][] {
  const ranges: [number, number][] = [];
  let start = 0;
  let bytes = 0;
  records.forEach((record, i) => {
    const size = record.data.length + Buffer.byteLength(record.partitionKey);
    if (i > start && (i - start === BATCH || bytes + size > BATCH_BYTES)) {
      ranges.push([start, i]);
      start = i;
      bytes = 0;
    }
    bytes += size;
  });
  if (start < records.length) ranges.push([start, records.length]);
  return ranges;
}

export async function putRecords(kinesis: KinesisClient, streamName: string, records: OutgoingRecord[]): Promise<PutResult[]> {
  const results: PutResult[] = new Array(records.length);
  for (const [start, end] of batches(records)) {
    let pending = records.slice(start, end).map((record, offset) => ({ record, index: start + offset }));
    // Entries Kinesis refused (throttling) are sent again until all are in (RETRY.producerPut); a failed call goes up.
    await retry(
      RETRY.producerPut,
      async () => {
        if (pending.length === 0) return pending;
        const response = await kinesis.send(
          new PutRecordsCommand({
            StreamName: streamName,
            Records: pending.map(({ record }) => ({
              PartitionKey: record.partitionKey,
              Data: record.data,
              ...(record.explicitHashKey !== undefined ? { ExplicitHashKey: record.explicitHashKey } : {}),
            })),
          }),
        );
        const refused: typeof pending = [];
        (response.Records ?? []).forEach((entry, i) => {
          const item = pending[i]!;
          if (entry.ErrorCode || !entry.SequenceNumber || !entry.ShardId) refused.push(item);
          else results[item.index] = { partitionKey: item.record.partitionKey, shardId: entry.ShardId, sequenceNumber: entry.SequenceNumber };
        });
        pending = refused;
        return pending.length > 0 ? AGAIN : pending;
      },
      { retriable: () => false },
    );
  }
  return results;
}

/** A contract event as a record: JSON, partition key = the policy's key (`<account>/<name>`, or the name). */
export function eventRecord(event: WireEvent): OutgoingRecord {
  return { partitionKey: policyKey({ account: event.account, policyName: event.policy.name }), data: Buffer.from(JSON.stringify(event)) };
}
