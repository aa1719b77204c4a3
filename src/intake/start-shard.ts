// Starts one shard's pipeline in the record-processor child: reads the
// shard's lineage and ledger epoch, names the claim owner, and builds the
// pipeline through the composition root (pipeline/create.ts). The claim owner
// names the worker, the shard and this process, so a claim left by a crashed
// child is recognised as someone else's once it expires.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { createShardPipeline } from '../pipeline/create.js';
import type { PipelineParts } from '../pipeline/create.js';
import type { ShardPipeline } from '../pipeline/shard-pipeline.js';
import type { Settlement } from '../pipeline/types.js';
import { retryUntilSettled } from '../faults/retry.js';

export interface ProcessParts extends PipelineParts {
  /** The ancestor shards of a shard (stream/shard-tree.ts): the ledger orders a policy's records by lineage. */
  shardLineage(shardId: string): Promise<string[]>;
}

export function claimOwner(shardId: string): string {
  return `${hostname()}/${process.pid}/${shardId}/${randomUUID().slice(0, 8)}`;
}

/** Reads what a shard's pipeline needs to know (lineage, epoch), retrying until it can, and builds it. */
export async function startShardPipeline(
  parts: ProcessParts,
  shardId: string,
  onSettled: (settlement: Settlement) => void,
  signal: AbortSignal,
): Promise<ShardPipeline> {
  const { config, logger, metrics } = parts;
  const log = logger.child({ shard: shardId });
  const retry = { baseMs: config.retryBaseMs, capMs: config.retryBackoffCapMs, logger: log, metrics, signal };
  const lineage = await retryUntilSettled(() => parts.shardLineage(shardId), { ...retry, what: { step: 'read-lineage' } });
  const epoch = await retryUntilSettled(() => parts.ledger.currentEpoch([shardId, ...lineage]), { ...retry, what: { step: 'read-epoch' } });
  const owner = claimOwner(shardId);
  log.info({ epoch, owner, lineage }, 'shard pipeline ready');
  return createShardPipeline(parts, { shardId, lineage, epoch, owner }, { signal, onSettled });
}
