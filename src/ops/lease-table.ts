// The KCL lease table, read and edited from outside the daemon. One item per
// shard lease: `leaseKey` (the shard id), `leaseOwner` (the worker holding it),
// `leaseCounter` (bumped at every renewal; the daemon's writes are conditional
// on it), `checkpoint` and `checkpointSubSequenceNumber`, `pendingCheckpoint*`
// (a two-phase checkpoint in flight), `parentShardIds` and `childShardIds`.
import { ResourceNotFoundException, UpdateItemCommand, paginateScan } from '@aws-sdk/client-dynamodb';
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Lease {
  shardId: string;
  owner?: string;
  counter: number;
  /** A sequence number or a sentinel: TRIM_HORIZON, LATEST, AT_TIMESTAMP, SHARD_END. */
  checkpoint?: string;
  parentShardIds: string[];
  childShardIds: string[];
  pendingCheckpoint?: string;
}

/** The positions a lease can be reset to: a sentinel, or "processed up to and including" a record. */
export type ResetPosition = { kind: 'trim-horizon' } | { kind: 'after'; sequenceNumber: string };

export class LeaseChangedError extends Error {
  override name = 'LeaseChangedError';
}

function toLease(item: Record<string, AttributeValue>): Lease {
  return {
    shardId: item.leaseKey?.S ?? '',
    ...(item.leaseOwner?.S ? { owner: item.leaseOwner.S } : {}),
    counter: Number(item.leaseCounter?.N ?? 0),
    ...(item.checkpoint?.S ? { checkpoint: item.checkpoint.S } : {}),
    ...(item.pendingCheckpoint?.S ? { pendingCheckpoint: item.pendingCheckpoint.S } : {}),
    parentShardIds: item.parentShardIds?.SS ?? [],
    childShardIds: item.childShardIds?.SS ?? [],
  };
}

export async function readLeases(dynamodb: DynamoDBClient, leaseTable: string): Promise<Lease[]> {
  const leases: Lease[] = [];
  try {
    for await (const page of paginateScan({ client: dynamodb }, { TableName: leaseTable, ConsistentRead: true })) {
      for (const item of page.Items ?? []) if (item.leaseKey?.S) leases.push(toLease(item));
    }
  } catch (error) {
    // The first worker creates the table: before that, there are no leases.
    if (error instanceof ResourceNotFoundException) return [];
    throw error;
  }
  return leases.sort((a, b) => a.shardId.localeCompare(b.shardId));
}

/**
 * Leases a live worker holds: an owner renews its leases (bumping the counter)
 * several times per failover period, so a counter that moves within `windowMs`
 * belongs to a live worker. Owners of leases that did not move are gone.
 */
export async function liveLeases(dynamodb: DynamoDBClient, leaseTable: string, windowMs: number): Promise<Lease[]> {
  const before = new Map((await readLeases(dynamodb, leaseTable)).map((lease) => [lease.shardId, lease.counter]));
  await sleep(windowMs);
  const after = await readLeases(dynamodb, leaseTable);
  return after.filter((lease) => lease.owner !== undefined && before.get(lease.shardId) !== lease.counter);
}

/**
 * Resets one lease's checkpoint. The write is conditional on the counter read
 * with the lease, and it releases the lease (no owner, counter bumped): a
 * worker that still held it fails its next renewal and checkpoint (both are
 * conditional on the counter), drops the shard, and whichever worker takes the
 * lease next starts from the new checkpoint.
 */
export async function resetLease(dynamodb: DynamoDBClient, leaseTable: string, lease: Lease, position: ResetPosition): Promise<void> {
  const checkpoint = position.kind === 'trim-horizon' ? 'TRIM_HORIZON' : position.sequenceNumber;
  try {
    await dynamodb.send(
      new UpdateItemCommand({
        TableName: leaseTable,
        Key: { leaseKey: { S: lease.shardId } },
        UpdateExpression:
          'SET checkpoint = :checkpoint, checkpointSubSequenceNumber = :zero, leaseCounter = leaseCounter + :one, ownerSwitchesSinceCheckpoint = :zero' +
          ' REMOVE leaseOwner, pendingCheckpoint, pendingCheckpointSubSequenceNumber, pendingCheckpointState',
        ConditionExpression: 'leaseCounter = :counter',
        ExpressionAttributeValues: {
          ':checkpoint': { S: checkpoint },
          ':zero': { N: '0' },
          ':one': { N: '1' },
          ':counter': { N: String(lease.counter) },
        },
      }),
    );
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) {
      throw new LeaseChangedError(`the lease of ${lease.shardId} changed while it was being reset (a worker renewed it); run again`);
    }
    throw error;
  }
}
