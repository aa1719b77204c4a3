// Reads the record processors' outcome lines (pino JSON, msg "outcome") from
// a daemon log: the demo's summary and the end-to-end tests use it to see
// what happened to each record.
import { existsSync, readFileSync } from 'node:fs';
import { recordId } from '../../src/contract/record-id.js';
import type { PutResult } from '../../src/ops/producer.js';

export interface OutcomeLine {
  shard: string;
  sequenceNumber: string;
  /** The user record's place in a KPL aggregate (0 when not aggregated; absent in older logs). */
  subSequenceNumber?: number;
  partitionKey: string;
  /** The account the event named, if it named one. */
  account?: string;
  eventId?: string;
  outcome: string;
  reason?: string;
  /** The outcome of a parked record, applied later by the redriver (its first outcome was `parked`). */
  redriven?: boolean;
  latencyMs?: number;
  processingMs?: number;
  time: number;
}

/** The pino JSON lines of a log that contain `marker` (e.g. `"msg":"outcome"`); a line cut by a kill -9 is skipped. */
export function readLogLines<T>(logFile: string, marker: string): T[] {
  if (!existsSync(logFile)) return [];
  const lines: T[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{') || !line.includes(marker)) continue;
    try {
      lines.push(JSON.parse(line) as T);
    } catch {
      /* cut */
    }
  }
  return lines;
}

export function readOutcomes(logFile: string): OutcomeLine[] {
  return readLogLines<OutcomeLine>(logFile, '"msg":"outcome"');
}

/** The record an outcome line is about, as contract/record-id.ts names it. */
export function outcomeRecordId(line: OutcomeLine): string {
  return recordId({ shardId: line.shard, sequenceNumber: line.sequenceNumber, subSequenceNumber: line.subSequenceNumber ?? 0 });
}

/** Where a user record landed: a plain record, or one user record of a KPL aggregate (its subsequence number). */
export type SentPosition = PutResult & { subSequenceNumber?: number };

/** The record a put landed as, named as contract/record-id.ts names it. */
export function sentRecordId(put: SentPosition): string {
  return recordId({ shardId: put.shardId, sequenceNumber: put.sequenceNumber, subSequenceNumber: put.subSequenceNumber ?? 0 });
}
