// The ledger's epochs in DynamoDB: the ledger-wide one and one per shard (a
// re-apply replay scoped to shards), drawn from one counter so that every new
// epoch, whatever its scope, is above all earlier ones.
import { GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LEDGER_KEY } from './table.js';

/** The ledger table, its client and clock: what the epochs and adoptions are written with. */
export interface LedgerStore {
  dynamodb: DynamoDBClient;
  tableName: string;
  now: () => number;
}

/** The item holding the ledger-wide epoch. `#` cannot appear in an IAM policy name. */
export const EPOCH_ITEM_KEY = '#epoch';
/** The item holding one shard's epoch (a re-apply replay scoped to shards). */
export const shardEpochKey = (shardId: string) => `#epoch#${shardId}`;
/** The counter epochs are drawn from, so that every new epoch, whatever its scope, is above all earlier ones. */
const EPOCH_COUNTER_KEY = '#epoch-counter';

/** The highest of the ledger-wide epoch and the given shards' epochs. */
export async function currentEpoch(store: LedgerStore, shards: string[] = []): Promise<number> {
  const keys = [EPOCH_ITEM_KEY, ...shards.map(shardEpochKey)];
  const epochs = await Promise.all(keys.map((key) => readEpoch(store, key)));
  return Math.max(0, ...epochs);
}

async function readEpoch(store: LedgerStore, key: string): Promise<number> {
  const result = await store.dynamodb.send(new GetItemCommand({ TableName: store.tableName, Key: { [LEDGER_KEY]: { S: key } }, ConsistentRead: true }));
  return result.Item?.epoch?.N ? Number(result.Item.epoch.N) : 0;
}

/**
 * Moves to a new epoch, in which every applied event may run again
 * (re-apply replay): the whole ledger, or only the given shards (a replay
 * of those shards), so that other shards keep their history. Epochs only
 * move forward: a new one is drawn from a counter above every earlier one.
 */
export async function advanceEpoch(store: LedgerStore, shards?: string[]): Promise<number> {
  const counter = await store.dynamodb.send(
    new UpdateItemCommand({
      TableName: store.tableName,
      Key: { [LEDGER_KEY]: { S: EPOCH_COUNTER_KEY } },
      UpdateExpression: 'ADD epoch :one',
      ExpressionAttributeValues: { ':one': { N: '1' } },
      ReturnValues: 'UPDATED_NEW',
    }),
  );
  // The counter starts at the ledger-wide epoch a ledger written before scoped epochs already has.
  const next = Math.max(Number(counter.Attributes?.epoch?.N ?? 1), (await readEpoch(store, EPOCH_ITEM_KEY)) + 1);
  const at = { S: new Date(store.now()).toISOString() };
  for (const key of shards === undefined ? [EPOCH_ITEM_KEY] : shards.map(shardEpochKey)) {
    await store.dynamodb.send(
      new UpdateItemCommand({
        TableName: store.tableName,
        Key: { [LEDGER_KEY]: { S: key } },
        UpdateExpression: 'SET epoch = :epoch, updatedAt = :at',
        ConditionExpression: 'attribute_not_exists(epoch) OR epoch < :epoch',
        ExpressionAttributeValues: { ':epoch': { N: String(next) }, ':at': at },
      }),
    );
  }
  if (next > Number(counter.Attributes?.epoch?.N ?? 1)) {
    await store.dynamodb.send(
      new UpdateItemCommand({
        TableName: store.tableName,
        Key: { [LEDGER_KEY]: { S: EPOCH_COUNTER_KEY } },
        UpdateExpression: 'SET epoch = :epoch',
        ConditionExpression: 'epoch < :epoch',
        ExpressionAttributeValues: { ':epoch': { N: String(next) } },
      }),
    );
  }
  return next;
}
