// The KCL lease table, as the daemon left it: checkpoint per shard.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { readLeases } from '../../src/ops/lease-table.js';

export async function checkpoints(dynamodb: DynamoDBClient, leaseTable: string): Promise<Map<string, string>> {
  return new Map((await readLeases(dynamodb, leaseTable)).map((lease) => [lease.shardId, lease.checkpoint ?? '']));
}
