// The event archive in DynamoDB: the applied eventIds that left their
// policy's window in the ledger entry, kept IPS_EVENT_ID_TTL_DAYS so that a
// producer retry of an old event is still a `duplicate` (docs/ledger.md,
// "The event archive"). The ledger archives a step's events here before its
// completion and asks here when a full window cannot tell (DynamoDbLedger).
//
// Versions before this table kept the archive in the ledger table under
// `#event#<policy>#<eventId>`. Those items live until their TTL; every
// lookup reads that location too, in the same BatchGetItem, so an upgrade
// forgets no eventId archived before it. Nothing is written there any more.
import { BatchGetItemCommand, BatchWriteItemCommand } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, BatchGetItemCommandOutput, BatchWriteItemCommandInput, BatchWriteItemCommandOutput, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { from, lastValueFrom, mergeMap } from 'rxjs';
import type { RememberedEvent } from './ledger.js';
import { archiveHolds } from './ledger.js';
import type { LedgerPosition } from './position.js';
import { fromLedgerSequence, toLedgerSequence } from './sequence.js';
import { EVENT_ARCHIVE_KEY, EVENT_ARCHIVE_TTL_ATTRIBUTE, eventArchiveKey } from './event-archive-table.js';
import { LEDGER_KEY } from './table.js';
import { untilProcessed } from './until-processed.js';

type Item = Record<string, AttributeValue>;

/** Where versions before the archive table kept an archived eventId: in the ledger table, under a key no policy name can have. */
export const legacyArchivedEventKey = (policy: string, eventId: string) => `#event#${policy}#${eventId}`;

/**
 * Batch calls of one archive write or read in flight at once. A hot policy's
 * batch of 1,000 events leaves the window as 40 BatchWriteItem calls; one
 * after the other their round trips would hold the batch's checkpoint.
 */
const BATCH_CALLS_IN_FLIGHT = 8;
/** BatchWriteItem's limit. */
const WRITES_PER_CALL = 25;
/** BatchGetItem's limit is 100 keys: each eventId is looked up at two keys (the archive table, the ledger's old location). */
const EVENT_IDS_PER_READ = 50;

/** `items` in chunks of `size`, each sent by `send`, up to BATCH_CALLS_IN_FLIGHT at once; settles when all have. */
async function inChunks<T>(items: T[], size: number, send: (chunk: T[]) => Promise<void>): Promise<void> {
  const chunks = Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));
  await lastValueFrom(from(chunks).pipe(mergeMap(send, BATCH_CALLS_IN_FLIGHT)), { defaultValue: undefined });
}

export interface EventArchiveOptions {
  /** The archive table (Config.eventArchiveTable). */
  table: string;
  /** The ledger table, whose `#event#` items versions before the archive table wrote: read, never written. */
  legacyTable: string;
  /** How long an archived eventId is kept (Config.eventIdTtlDays), in days. */
  eventIdTtlDays: number;
  now: () => number;
}

/** One key to read, and in which table. */
interface Lookup {
  table: string;
  key: Item;
}

export class DynamoDbEventArchive {
  constructor(
    private readonly dynamodb: DynamoDBClient,
    private readonly options: EventArchiveOptions,
  ) {}

  /**
   * Archives `events` of `policy` in `epoch`; `settledBy` is the position of
   * the completion that holds them (Ledger.archiveEvents). Idempotent: the
   * same event archived again is the same item.
   */
  async archive(policy: string, epoch: number, events: RememberedEvent[], settledBy?: LedgerPosition): Promise<void> {
    const { table } = this.options;
    // DynamoDB's TTL removes an item within days of `expiresAt` (epoch seconds); readers check it themselves.
    const expiresAt = Math.floor(this.options.now() / 1000) + Math.round(this.options.eventIdTtlDays * 86_400);
    await inChunks(events, WRITES_PER_CALL, async (chunk) => {
      const requests: NonNullable<BatchWriteItemCommandInput['RequestItems']>[string] = chunk.map((event) => ({
        PutRequest: {
          Item: {
            [EVENT_ARCHIVE_KEY]: { S: eventArchiveKey(policy, event.eventId) },
            epoch: { N: String(epoch) },
            [EVENT_ARCHIVE_TTL_ATTRIBUTE]: { N: String(expiresAt) },
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
        const result: BatchWriteItemCommandOutput = await this.dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [table]: pending } }));
        return result.UnprocessedItems?.[table];
      });
    });
  }

  /**
   * Which of `eventIds` of `policy` were archived in `epoch` or later, not
   * expired, and held by a completion at or before `position` (archiveHolds):
   * what a step archived before a completion that never landed does not count.
   */
  async find(policy: string, epoch: number, eventIds: string[], position: LedgerPosition | undefined): Promise<RememberedEvent[]> {
    const { table, legacyTable } = this.options;
    const found = new Map<string, RememberedEvent>();
    const now = Math.floor(this.options.now() / 1000);
    const unique = [...new Set(eventIds)];
    const prefixes = { current: eventArchiveKey(policy, ''), legacy: legacyArchivedEventKey(policy, '') };
    const take = (item: Item, eventId: string) => {
      if (Number(item.epoch?.N ?? 0) < epoch || Number(item[EVENT_ARCHIVE_TTL_ATTRIBUTE]?.N ?? 0) < now) return;
      const settledBy =
        item.settledShard?.S && item.settledSeq?.S
          ? {
              shardId: item.settledShard.S,
              sequenceNumber: fromLedgerSequence(item.settledSeq.S),
              subSequenceNumber: Number(item.settledSub?.N ?? 0),
              lineage: (item.settledLineage?.L ?? []).map((value) => value.S ?? ''),
            }
          : undefined;
      if (!archiveHolds(position, settledBy)) return; // archived by a step whose completion never landed
      if (!found.has(eventId)) found.set(eventId, { eventId, ...(item.payloadHash?.S ? { payloadHash: item.payloadHash.S } : {}) });
    };
    await inChunks(unique, EVENT_IDS_PER_READ, async (chunk) => {
      const lookups = chunk.flatMap((eventId): Lookup[] => [
        { table, key: { [EVENT_ARCHIVE_KEY]: { S: eventArchiveKey(policy, eventId) } } },
        { table: legacyTable, key: { [LEDGER_KEY]: { S: legacyArchivedEventKey(policy, eventId) } } },
      ]);
      await untilProcessed(lookups, `archived eventIds of ${policy}`, async (pending) => {
        const requestItems: Record<string, { Keys: Item[]; ConsistentRead: true }> = {};
        for (const lookup of pending) (requestItems[lookup.table] ??= { Keys: [], ConsistentRead: true }).Keys.push(lookup.key);
        const result: BatchGetItemCommandOutput = await this.dynamodb.send(new BatchGetItemCommand({ RequestItems: requestItems }));
        for (const item of result.Responses?.[table] ?? []) take(item, (item[EVENT_ARCHIVE_KEY]?.S ?? '').slice(prefixes.current.length));
        for (const item of result.Responses?.[legacyTable] ?? []) take(item, (item[LEDGER_KEY]?.S ?? '').slice(prefixes.legacy.length));
        return Object.entries(result.UnprocessedKeys ?? {}).flatMap(([unprocessedTable, keys]) => (keys.Keys ?? []).map((key) => ({ table: unprocessedTable, key })));
      });
    });
    return [...found.values()];
  }
}
