// Hash keys, as Kinesis computes them: a record goes to the shard whose range
// holds its hash key, the MD5 of its UTF-8 partition key read as a 128-bit
// unsigned big-endian integer (or the producer's explicit hash key, which
// overrides it). The one place that computes a partition key's hash: the
// decoder checks records against their shard's range with it, the KPL
// aggregator routes aggregates with it.
import { createHash } from 'node:crypto';

/** The hash keys a shard owns, both ends included (ListShards' HashKeyRange). */
export interface HashKeyRange {
  startingHashKey: bigint;
  endingHashKey: bigint;
}

/** Every hash key: the range of a stream's only shard. */
export const ALL_HASH_KEYS: HashKeyRange = Object.freeze({ startingHashKey: 0n, endingHashKey: 2n ** 128n - 1n });

/** A partition key's hash key: MD5 of its UTF-8 bytes, big-endian. */
export function hashKeyOf(partitionKey: string): bigint {
  return BigInt(`0x${createHash('md5').update(partitionKey, 'utf8').digest('hex')}`);
}

export function inHashKeyRange(hashKey: bigint, range: HashKeyRange): boolean {
  return hashKey >= range.startingHashKey && hashKey <= range.endingHashKey;
}
