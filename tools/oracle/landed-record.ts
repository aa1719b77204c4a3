// Decodes a record that was put as the record processor of the shard it
// landed on decodes it: with that shard's hash key range, so a record routed
// onto another shard than its partition key's (an explicit hash key) counts
// as rejected (hash-key-mismatch) here too. The invariant checker and the
// end-to-end tests compute the fold of the stream from it.
import { decodeRecord } from '../../src/contract/decode.js';
import type { Decoded } from '../../src/contract/decode.js';
import type { OutgoingRecord } from '../../src/ops/producer.js';
import { placeOf } from '../../src/stream/shard-tree.js';
import type { ShardInfo } from '../../src/stream/shard-tree.js';

export function decodeLanded(record: OutgoingRecord, shardId: string, shards: ShardInfo[], managedPathPrefix: string): Decoded {
  const place = placeOf(shards, shardId);
  if (!place) throw new Error(`${shardId} is not in the stream's shard listing: list the shards after the records were put`);
  return decodeRecord(record.data, record.partitionKey, { managedPathPrefix, hashKeyRange: place.hashKeyRange });
}
