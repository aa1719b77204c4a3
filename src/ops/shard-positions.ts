// Positions in the stream's shards, for status and replay: the shard tree,
// how far a checkpoint lies behind the tip, and the record just before a given
// record or time (a checkpoint means "processed up to and including", so to
// replay record S the checkpoint must be the record before S).
import { GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-kinesis';
import type { GetShardIteratorCommandInput, KinesisClient, _Record } from '@aws-sdk/client-kinesis';
import { toLedgerSequence } from '../ledger/sequence.js';
import type { ResetPosition } from './lease-table.js';

export type IteratorStart = Pick<GetShardIteratorCommandInput, 'ShardIteratorType' | 'StartingSequenceNumber' | 'Timestamp'>;

/** Reads a shard from `start` page by page until `visit` says stop or the tip is reached. */
export async function readShard(kinesis: KinesisClient, streamName: string, shardId: string, start: IteratorStart, visit: (records: _Record[]) => boolean): Promise<{ millisBehindLatest?: number }> {
  const first = await kinesis.send(new GetShardIteratorCommand({ StreamName: streamName, ShardId: shardId, ...start }));
  let iterator = first.ShardIterator;
  let millisBehindLatest: number | undefined;
  while (iterator) {
    const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }));
    millisBehindLatest = page.MillisBehindLatest;
    const records = page.Records ?? [];
    if (records.length > 0 && !visit(records)) break;
    // At the tip of an open shard the iterator never ends; an empty page with no lag is the tip.
    if (records.length === 0 && (page.MillisBehindLatest ?? 0) === 0) break;
    iterator = page.NextShardIterator;
  }
  return millisBehindLatest === undefined ? {} : { millisBehindLatest };
}

export function startAfter(checkpoint: string | undefined): IteratorStart | undefined {
  if (checkpoint === undefined || checkpoint === 'TRIM_HORIZON') return { ShardIteratorType: 'TRIM_HORIZON' };
  if (/^\d+$/.test(checkpoint)) return { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: checkpoint };
  return undefined; // LATEST, AT_TIMESTAMP, SHARD_END: no records owed
}

/** How far behind the tip a checkpoint is, in ms, and whether records are waiting behind it. */
export async function lagBehind(kinesis: KinesisClient, streamName: string, shardId: string, checkpoint: string | undefined): Promise<{ millisBehind: number; pending: boolean } | undefined> {
  const start = startAfter(checkpoint);
  if (!start) return { millisBehind: 0, pending: false };
  let pending = false;
  const result = await readShard(kinesis, streamName, shardId, start, () => {
    pending = true;
    return false;
  });
  if (result.millisBehindLatest === undefined) return undefined;
  return { millisBehind: result.millisBehindLatest, pending };
}

/** The shard holds no record with the sequence number asked for; `next` is the first one after it, if any. */
export class NoSuchRecordError extends Error {
  override name = 'NoSuchRecordError';
  constructor(
    readonly shardId: string,
    readonly sequenceNumber: string,
    readonly next: string | undefined,
    readonly first: string | undefined,
  ) {
    super(
      `${shardId} holds no record ${sequenceNumber} within the stream's retention` +
        (next !== undefined ? `; the next record is ${next}` : first !== undefined ? `; its records kept run from ${first}` : '; it holds no records'),
    );
  }
}

/**
 * The position that makes the next record read be the record `sequenceNumber`
 * itself. The record must exist: a number between two records (or before the
 * oldest kept) names nothing, and reading from the next record instead would
 * replay something other than what was asked (a mistyped number would become
 * TRIM_HORIZON); NoSuchRecordError says what the shard holds instead.
 */
export async function positionBefore(kinesis: KinesisClient, streamName: string, shardId: string, sequenceNumber: string): Promise<ResetPosition> {
  const target = toLedgerSequence(sequenceNumber);
  let previous: string | undefined;
  let first: string | undefined;
  let found: string | undefined;
  await readShard(kinesis, streamName, shardId, { ShardIteratorType: 'TRIM_HORIZON' }, (records) => {
    for (const record of records) {
      first ??= record.SequenceNumber;
      if (toLedgerSequence(record.SequenceNumber ?? '0') >= target) {
        found = record.SequenceNumber;
        return false;
      }
      previous = record.SequenceNumber;
    }
    return true;
  });
  if (found === undefined || toLedgerSequence(found) !== target) throw new NoSuchRecordError(shardId, sequenceNumber, found, first);
  return previous === undefined ? { kind: 'trim-horizon' } : { kind: 'after', sequenceNumber: previous };
}

/** The first record that reached the shard at or after `at`, if any. */
export async function firstRecordSince(kinesis: KinesisClient, streamName: string, shardId: string, at: Date): Promise<string | undefined> {
  let first: string | undefined;
  await readShard(kinesis, streamName, shardId, { ShardIteratorType: 'AT_TIMESTAMP', Timestamp: at }, (records) => {
    first = records[0]?.SequenceNumber;
    return false;
  });
  return first;
}
