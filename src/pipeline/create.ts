// The composition root of a shard pipeline: the one place that turns the
// process-wide parts (ledger, duplicate cache, IAM step, dead-letter store)
// and a shard's identity into a ShardPipeline, with every setting from
// Config. The record-processor child, the tests and the benchmarks all build
// their pipelines here, so they run what production runs.
import type { Config } from '../config/config.js';
import type { HashKeyRange } from '../contract/hash-key.js';
import type { AccountGate } from '../contract/account-gate.js';
import type { DeadLetterSink } from '../deadletter/dead-letter-store.js';
import type { DedupCache } from '../ledger/dedup-cache.js';
import type { Ledger } from '../ledger/ledger.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { documentGuardFromConfig } from '../policy/document-guard.js';
import { ShardPipeline } from './shard-pipeline.js';
import type { ShardPipelineOptions } from './shard-pipeline.js';
import type { Applier } from './types.js';
import { settle } from '../faults/retry-policies.js';
import type { ParkStore } from '../park/park-store.js';
import { AccountOutages, outagesRememberedMs } from '../park/parking.js';

/** What a process builds once and shares across the shards it is given. */
export interface PipelineParts {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  ledger: Ledger;
  cache: DedupCache;
  applier: Applier;
  deadLetters: DeadLetterSink;
  /** Where records are parked (IPS_PARK_AFTER_MS > 0); absent: none is. */
  parks?: ParkStore;
  /** Whether a target account is rate-bound lately (ParkingOptions.rateBoundLately); absent: a slow account is waited for. */
  rateBoundLately?: (account: string) => boolean;
  /** Calls per second the host's gate allows a target account (ParkingOptions.allowedRate); absent: a slow account is judged by its pace. */
  allowedRate?: (account: string) => number | undefined;
  /** The accounts found unavailable lately, shared by the process's shards; absent: each pipeline keeps its own. */
  outages?: AccountOutages;
}

/** Who a shard's pipeline is: its shard, its lineage, its hash key range, its ledger epoch and its claim owner. */
export interface ShardIdentity {
  shardId: string;
  /** Ancestor shard ids (stream/shard-tree.ts). */
  lineage: string[];
  /** The hash keys the shard owns: records whose partition key hashes elsewhere are refused (hash-key-mismatch). */
  hashKeyRange: HashKeyRange;
  epoch: number;
  /** Claim owner: worker, shard and process. */
  owner: string;
  /** The accounts events may name (the worker's own and IPS_TARGET_ACCOUNTS); absent: no event is refused for its account. */
  accounts?: AccountGate;
}

export function createShardPipeline(parts: PipelineParts, shard: ShardIdentity, overrides: Partial<ShardPipelineOptions> = {}): ShardPipeline {
  const { config } = parts;
  return new ShardPipeline({
    context: {
      ledger: parts.ledger,
      cache: parts.cache,
      applier: parts.applier,
      deadLetters: parts.deadLetters,
      metrics: parts.metrics,
      owner: shard.owner,
      epoch: shard.epoch,
      recentEventIds: config.recentEventIds,
      lineage: shard.lineage,
      claimTtlMs: config.claimTtlMs,
      lateWriteMs: config.lateWriteMs,
    },
    decode: { managedPathPrefix: config.managedPathPrefix, guard: documentGuardFromConfig(config), hashKeyRange: shard.hashKeyRange },
    ...(shard.accounts ? { accounts: shard.accounts } : {}),
    maxConcurrentPolicies: config.maxConcurrentPolicies,
    retry: settle(config),
    logger: parts.logger.child({ shard: shard.shardId }),
    // A shadow writes nothing to IAM, so nothing of it waits on an account: no parking.
    ...(parts.parks && config.parkAfterMs > 0 && config.mode === 'live'
      ? {
          parking: {
            store: parts.parks,
            afterMs: config.parkAfterMs,
            outages: parts.outages ?? new AccountOutages(Date.now, outagesRememberedMs(config.redriveEveryMs)),
            ...(parts.rateBoundLately ? { rateBoundLately: parts.rateBoundLately } : {}),
            ...(parts.allowedRate ? { allowedRate: parts.allowedRate } : {}),
          },
        }
      : {}),
    ...(config.mode === 'shadow' ? { shadow: true } : {}),
    ...overrides,
  });
}
