// The stream's shard tree: which shards exist within the retention period,
// which shards each was split or merged from, and the hash keys each owns. The
// record processor reads its own shard's place from it: its ancestors (the
// ledger orders a policy's records by shard lineage: ledger/position.ts) and
// its hash key range (only records whose partition key hashes into it are its
// to apply: contract/decode.ts). The operator tool reads children for status
// and replay.
import { ListShardsCommand } from '@aws-sdk/client-kinesis';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { HashKeyRange } from '../contract/hash-key.js';

/** A shard as ListShards lists it; its hash key range holds the 128-bit hash keys it takes records for (contract/hash-key.ts). */
export interface ShardInfo extends HashKeyRange {
  shardId: string;
  parents: string[];
  /** Closed shards (split or merged) have an ending sequence number. */
  closed: boolean;
}

export async function listShards(kinesis: KinesisClient, streamName: string): Promise<ShardInfo[]> {
  const shards: ShardInfo[] = [];
  let nextToken: string | undefined;
  do {
    // ListShards takes either the stream or a continuation token, never both.
    const page = await kinesis.send(new ListShardsCommand(nextToken ? { NextToken: nextToken } : { StreamName: streamName }));
    nextToken = page.NextToken;
    for (const shard of page.Shards ?? []) {
      shards.push({
        shardId: shard.ShardId ?? '',
        parents: [shard.ParentShardId, shard.AdjacentParentShardId].filter((id): id is string => Boolean(id)),
        closed: shard.SequenceNumberRange?.EndingSequenceNumber !== undefined,
        startingHashKey: BigInt(shard.HashKeyRange?.StartingHashKey ?? '0'),
        endingHashKey: BigInt(shard.HashKeyRange?.EndingHashKey ?? '0'),
      });
    }
  } while (nextToken);
  return shards;
}

/** Shards split or merged from `shardId`. */
export function childrenOf(shards: ShardInfo[], shardId: string): string[] {
  return shards.filter((shard) => shard.parents.includes(shardId)).map((shard) => shard.shardId);
}

/** The shard and all shards that descend from it, parents first. */
export function descendantsOf(shards: ShardInfo[], shardId: string): string[] {
  const found: string[] = [];
  const queue = childrenOf(shards, shardId);
  while (queue.length > 0) {
    const next = queue.shift()!;
    if (found.includes(next)) continue;
    found.push(next);
    queue.push(...childrenOf(shards, next));
  }
  return found;
}

/**
 * Every shard `shardId` descends from, nearest first: its parents, their
 * parents, and so on, as far as the stream still lists them (older ones are
 * past retention and can no longer be replayed).
 */
export function ancestorsOf(shards: ShardInfo[], shardId: string): string[] {
  const parentsOf = new Map(shards.map((shard) => [shard.shardId, shard.parents]));
  const found: string[] = [];
  const queue = [...(parentsOf.get(shardId) ?? [])];
  while (queue.length > 0) {
    const next = queue.shift()!;
    if (found.includes(next)) continue;
    found.push(next);
    queue.push(...(parentsOf.get(next) ?? []));
  }
  return found;
}

/** Where a shard sits in the stream: the shards it descends from, nearest first, and the hash keys it owns. */
export interface ShardPlace {
  lineage: string[];
  hashKeyRange: HashKeyRange;
}

/**
 * The shard's place, or undefined when the listing does not show it (a
 * shard's range is never guessed: a child shard owns part of its parent's
 * range, a merged one the union of its parents').
 */
export function placeOf(shards: ShardInfo[], shardId: string): ShardPlace | undefined {
  const shard = shards.find((candidate) => candidate.shardId === shardId);
  if (!shard) return undefined;
  return { lineage: ancestorsOf(shards, shardId), hashKeyRange: { startingHashKey: shard.startingHashKey, endingHashKey: shard.endingHashKey } };
}

/**
 * The shards in an order that keeps each policy's records in stream order
 * when read one shard after the other: every shard after its parents (a
 * policy's records only move from a shard to its descendants).
 */
export function parentsFirst(shards: ShardInfo[]): ShardInfo[] {
  const ordered: ShardInfo[] = [];
  const placed = new Set<string>();
  const ids = new Set(shards.map((shard) => shard.shardId));
  let left = [...shards];
  while (left.length > 0) {
    const ready = left.filter((shard) => shard.parents.every((parent) => placed.has(parent) || !ids.has(parent)));
    const next = ready.length > 0 ? ready : left.slice(0, 1); // a cycle cannot happen; never loop on one
    for (const shard of next) {
      ordered.push(shard);
      placed.add(shard.shardId);
    }
    left = left.filter((shard) => !placed.has(shard.shardId));
  }
  return ordered;
}
