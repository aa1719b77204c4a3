// Reads the record processors' outcome lines (pino JSON, msg "outcome") from
// a daemon log: the demo's summary and the end-to-end tests use it to see
// what happened to each record.
import { existsSync, readFileSync } from 'node:fs';

export interface OutcomeLine {
  shard: string;
  sequenceNumber: string;
  partitionKey: string;
  eventId?: string;
  outcome: string;
  reason?: string;
  latencyMs?: number;
  processingMs?: number;
  time: number;
}

export function readOutcomes(logFile: string): OutcomeLine[] {
  if (!existsSync(logFile)) return [];
  const outcomes: OutcomeLine[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{') || !line.includes('"msg":"outcome"')) continue;
    try {
      outcomes.push(JSON.parse(line) as OutcomeLine);
    } catch {
      /* a line cut by a kill -9: not an outcome */
    }
  }
  return outcomes;
}

/** The outcome of each record, keyed by shard and sequence number; later lines win (redelivery). */
export function outcomesByRecord(lines: OutcomeLine[]): Map<string, OutcomeLine> {
  const byRecord = new Map<string, OutcomeLine>();
  for (const line of lines) byRecord.set(`${line.shard}#${line.sequenceNumber}`, line);
  return byRecord;
}
