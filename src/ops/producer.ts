// Puts records on the stream with PutRecords (500 a call), re-sending the
// entries Kinesis refused (throttled) until all are in. Returns where each
// record landed, in input order, so callers can check outcomes per record.
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { setTimeout as sleep } from 'node:timers/promises';

export interface OutgoingRecord {
  partitionKey: string;
  data: Buffer;
}

export interface PutResult {
  partitionKey: string;
  shardId: string;
  sequenceNumber: string;
}

const BATCH = 500;

export async function putRecords(kinesis: KinesisClient, streamName: string, records: OutgoingRecord[]): Promise<PutResult[]> {
  const results: PutResult[] = new Array(records.length);
  for (let start = 0; start < records.length; start += BATCH) {
    let pending = records.slice(start, start + BATCH).map((record, offset) => ({ record, index: start + offset }));
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 0) await sleep(Math.min(2_000, 50 * 2 ** attempt));
      const response = await kinesis.send(
        new PutRecordsCommand({
          StreamName: streamName,
          Records: pending.map(({ record }) => ({ PartitionKey: record.partitionKey, Data: record.data })),
        }),
      );
      const retry: typeof pending = [];
      (response.Records ?? []).forEach((entry, i) => {
        const item = pending[i]!;
        if (entry.ErrorCode || !entry.SequenceNumber || !entry.ShardId) retry.push(item);
        else results[item.index] = { partitionKey: item.record.partitionKey, shardId: entry.ShardId, sequenceNumber: entry.SequenceNumber };
      });
      pending = retry;
    }
  }
  return results;
}

/** A contract event as a record: JSON, partition key = policy name. */
export function eventRecord(event: { policy: { name: string } } & Record<string, unknown>): OutgoingRecord {
  return { partitionKey: event.policy.name, data: Buffer.from(JSON.stringify(event)) };
}
