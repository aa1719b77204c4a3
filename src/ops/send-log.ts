// The log of what a producer sent: one JSON line per record, in stream order
// per shard, with where Kinesis put it. The invariant checker reads it back to
// compute the expected IAM state.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import type { LoadRecord } from './load.js';
import type { PutResult } from './producer.js';

export interface LoggedRecord {
  record: LoadRecord;
  put: PutResult;
}

export function startSendLog(file: string): void {
  writeFileSync(file, '');
}

export function appendSendLog(file: string, sent: LoggedRecord[]): void {
  const lines = sent.map(({ record, put }) =>
    JSON.stringify({
      kind: record.kind,
      policy: record.policy,
      eventId: record.eventId,
      revision: record.revision,
      partitionKey: record.partitionKey,
      shardId: put.shardId,
      sequenceNumber: put.sequenceNumber,
      dataBase64: record.data.toString('base64'),
    }),
  );
  if (lines.length > 0) appendFileSync(file, `${lines.join('\n')}\n`);
}

export function readSendLog(file: string): LoggedRecord[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => {
      const entry = JSON.parse(line) as {
        kind: LoadRecord['kind'];
        policy: string;
        eventId?: string;
        revision?: number;
        partitionKey: string;
        shardId: string;
        sequenceNumber: string;
        dataBase64: string;
      };
      const record: LoadRecord = {
        kind: entry.kind,
        policy: entry.policy,
        partitionKey: entry.partitionKey,
        data: Buffer.from(entry.dataBase64, 'base64'),
        ...(entry.eventId !== undefined ? { eventId: entry.eventId } : {}),
        ...(entry.revision !== undefined ? { revision: entry.revision } : {}),
      };
      return { record, put: { partitionKey: entry.partitionKey, shardId: entry.shardId, sequenceNumber: entry.sequenceNumber } };
    });
}
