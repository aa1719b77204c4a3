// Wires one shard's pipeline from the process-wide parts: the ledger and its
// epoch, the duplicate cache, the IAM reconciler, the dead-letter store. The
// claim owner names the worker, the shard and this process, so a claim left
// by a crashed child is recognised as someone else's once it expires.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from '../config/config.js';
import type { DeadLetterSink } from '../deadletter/dead-letter-store.js';
import type { Logger } from '../log/logger.js';
import type { DedupCache } from '../ledger/dedup-cache.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Metrics } from '../metrics/metrics.js';
import { retryUntilSettled } from '../pipeline/retry.js';
import { ShardPipeline } from '../pipeline/shard-pipeline.js';
import type { Applier, Settlement } from '../pipeline/types.js';

export interface ProcessParts {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  ledger: Ledger;
  cache: DedupCache;
  applier: Applier;
  deadLetters: DeadLetterSink;
  /** The ancestor shards of a shard (stream/shard-tree.ts): the ledger orders a policy's records by lineage. */
  shardLineage(shardId: string): Promise<string[]>;
  /** Base delay of the pipeline's retries (tests shorten it). */
  retryBaseMs?: number;
}

export function claimOwner(shardId: string): string {
  return `${hostname()}/${process.pid}/${shardId}/${randomUUID().slice(0, 8)}`;
}

export async function startShardPipeline(
  parts: ProcessParts,
  shardId: string,
  onSettled: (settlement: Settlement) => void,
  signal: AbortSignal,
): Promise<ShardPipeline> {
  const { config, logger, metrics } = parts;
  const log = logger.child({ shard: shardId });
  const retry = { baseMs: parts.retryBaseMs ?? 100, capMs: config.retryBackoffCapMs, logger: log, metrics, signal };
  const lineage = await retryUntilSettled(() => parts.shardLineage(shardId), { ...retry, what: { step: 'read-lineage' } });
  const epoch = await retryUntilSettled(() => parts.ledger.currentEpoch([shardId, ...lineage]), { ...retry, what: { step: 'read-epoch' } });
  const owner = claimOwner(shardId);
  log.info({ epoch, owner, lineage }, 'shard pipeline ready');
  return new ShardPipeline({
    context: {
      ledger: parts.ledger,
      cache: parts.cache,
      applier: parts.applier,
      deadLetters: parts.deadLetters,
      metrics,
      owner,
      epoch,
      recentEventIds: config.recentEventIds,
      lineage,
      claimTtlMs: config.claimTtlMs,
    },
    decode: { managedPathPrefix: config.managedPathPrefix, refuseAdminGrant: config.refuseAdminGrant },
    maxConcurrentPolicies: config.maxConcurrentPolicies,
    retryBaseMs: retry.baseMs,
    retryCapMs: retry.capMs,
    logger: log,
    signal,
    onSettled,
  });
}
