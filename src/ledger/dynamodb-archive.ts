// The ledger's archive in DynamoDB: the eventIds that left a policy entry's
// window, one item each under a key no policy name can have, removed by
// DynamoDB's TTL after IPS_EVENT_ID_TTL_DAYS. Writes and reads go in batches,
// several in flight, with what DynamoDB leaves unprocessed sent again.
import { BatchGetItemCommand, BatchWriteItemCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, BatchGetItemCommandOutput, BatchWriteItemCommandInput, BatchWriteItemCommandOutput, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { from, lastValueFrom, mergeMap } from 'rxjs';
import { TransientError } from '../faults/errors.js';
import { AGAIN, retry } from '../faults/retry.js';
import { RETRY } from '../faults/retry-policies.js';
import type { RememberedEvent } from './ledger.js';
import { archiveHolds } from './ledger.js';
import type { LedgerPosition } from './position.js';
import { fromLedgerSequence, toLedgerSequence } from './sequence.js';
import { LEDGER_KEY, LEDGER_TTL_ATTRIBUTE } from './table.js';

/** Where the archive lives and how long it keeps an eventId. */
export interface ArchiveStore {
  dynamodb: DynamoDBClient;
  tableName: string;
  /** Days an archived eventId is kept (Config.eventIdTtlDays). */
  eventIdTtlDays: number;
  now: () => number;
}

/**
 * Batch calls of one archive write or read in flight at once. A hot policy's
 * batch of 1,000 events leaves the window as 40 BatchWriteItem calls; one
 * after the other their round trips would hold the batch's checkpoint.
 */
const BATCH_CALLS_IN_FLIGHT = 8;

/** `items` in chunks of `size`, each sent by `send`, up to BATCH_CALLS_IN_FLIGHT at once; settles when all have. */
async function inChunks<T>(items: T[], size: number, send: (chunk: T[]) => Promise<void>): Promise<void> {
  const chunks = Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
  await lastValueFrom(from(chunks).pipe(mergeMap(send, BATCH_CALLS_IN_FLIGHT)), { defaultValue: undefined });
}

/**
 * Sends a batch, then what DynamoDB left unprocessed (throttling), with
 * backoff (RETRY.batchUnprocessed); then the fault goes up as transient.
 */
async function untilProcessed<T>(batch: T[], what: string, send: (pending: T[]) => Promise<T[] | undefined>): Promise<void> {
  let pending: T[] = batch;
  await retry(RETRY.batchUnprocessed, async () => {
    if (pending.length > 0) pending = (await send(pending)) ?? [];
    return pending.length > 0 ? AGAIN : pending;
  });
  if (pending.length > 0) throw new TransientError('ledger-batch-unprocessed', `${pending.length} ${what} left unprocessed by DynamoDB`);
}

/** The key of an archived event: `#` keeps it out of the entries (LedgerEntry), the name cannot hold one. */
export const archivedEventKey = (policy: string, eventId: string) => `#event#${policy}#${eventId}`;

/** Writes `events` to the archive, tagged with `settledBy` when given (Ledger.archiveEvents). */
export async function archiveEvents(store: ArchiveStore, policy: string, epoch: number, events: RememberedEvent[], settledBy?: LedgerPosition): Promise<void> {
  // DynamoDB's TTL removes an item within days of `expiresAt` (epoch seconds); readers check it themselves.
  const expiresAt = Math.floor(store.now() / 1000) + Math.round(store.eventIdTtlDays * 86_400);
  await inChunks(events, 25, async (chunk) => {
    const requests: NonNullable<BatchWriteItemCommandInput['RequestItems']>[string] = chunk.map((event) => ({
      PutRequest: {
        Item: {
          [LEDGER_KEY]: { S: archivedEventKey(policy, event.eventId) },
          epoch: { N: String(epoch) },
          [LEDGER_TTL_ATTRIBUTE]: { N: String(expiresAt) },
          // The position whose completion holds this event (Ledger.archiveEvents).
          ...(settledBy
            ? {
                settledShard: { S: settledBy.shardId },
                settledSeq: { S: toLedgerSequence(settledBy.sequenceNumber) },
                settledSub: { N: String(settledBy.subSequenceNumber) },
                settledLineage: { L: settledBy.lineage.map((shard) => ({ S: shard })) },
              }
            : {}),
          ...(event.payloadHash !== undefined ? { payloadHash: { S: event.payloadHash } } : {}),
        },
      },
    }));
    await untilProcessed(requests, `archived events of ${policy}`, async (pending) => {
      const result: BatchWriteItemCommandOutput = await store.dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [store.tableName]: pending } }));
      return result.UnprocessedItems?.[store.tableName];
    });
  });
}

/** The archived events among `eventIds` that still count at `position` (Ledger.archivedEvents). */
export async function archivedEvents(store: ArchiveStore, policy: string, epoch: number, eventIds: string[], position: LedgerPosition | undefined): Promise<RememberedEvent[]> {
  const found: RememberedEvent[] = [];
  const now = Math.floor(store.now() / 1000);
  const unique = [...new Set(eventIds)];
  await inChunks(unique, 100, async (chunk) => {
    const keys: Record<string, AttributeValue>[] = chunk.map((eventId) => ({ [LEDGER_KEY]: { S: archivedEventKey(policy, eventId) } }));
    await untilProcessed(keys, `archived eventIds of ${policy}`, async (pending) => {
      const result: BatchGetItemCommandOutput = await store.dynamodb.send(new BatchGetItemCommand({ RequestItems: { [store.tableName]: { Keys: pending, ConsistentRead: true } } }));
      for (const item of result.Responses?.[store.tableName] ?? []) {
        const key = item[LEDGER_KEY]?.S ?? '';
        if (Number(item.epoch?.N ?? 0) < epoch || Number(item[LEDGER_TTL_ATTRIBUTE]?.N ?? 0) < now) continue;
        const settledBy = item.settledShard?.S && item.settledSeq?.S
          ? { shardId: item.settledShard.S, sequenceNumber: fromLedgerSequence(item.settledSeq.S), subSequenceNumber: Number(item.settledSub?.N ?? 0), lineage: (item.settledLineage?.L ?? []).map((value) => value.S ?? '') }
          : undefined;
        if (!archiveHolds(position, settledBy)) continue; // archived by a step whose completion never landed
        found.push({ eventId: key.slice(archivedEventKey(policy, '').length), ...(item.payloadHash?.S ? { payloadHash: item.payloadHash.S } : {}) });
      }
      return result.UnprocessedKeys?.[store.tableName]?.Keys;
    });
  });
  return found;
}
