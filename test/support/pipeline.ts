// A shard pipeline wired to in-memory fakes, and helpers to feed it batches.
import type { AccountGate } from '../../src/contract/account-gate.js';
import { createLogger } from '../../src/log/logger.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { loadConfig } from '../../src/config/config.js';
import type { Config } from '../../src/config/config.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import type { ShardPipeline } from '../../src/pipeline/shard-pipeline.js';
import type { Applier, Settlement, StreamRecord } from '../../src/pipeline/types.js';
import { FakeIam, MemoryDeadLetters, MemoryLedger } from './fakes.js';
import { deletedEvent, upsertedEvent } from '../../src/contract/wire-event.js';
import { eventRecord } from '../../src/ops/producer.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import type { HashKeyRange } from '../../src/contract/hash-key.js';

export interface Harness {
  pipeline: ShardPipeline;
  ledger: MemoryLedger;
  iam: FakeIam;
  applier: Applier;
  deadLetters: MemoryDeadLetters;
  metrics: Metrics;
  cache: DedupCache;
  settledOrder: Settlement[];
}

export const silentLogger = createLogger('silent');

/**
 * The configuration tests run with: the defaults, with the pipeline's backoff
 * shortened (faults a test injects pass in milliseconds), and what the test sets.
 */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ IPS_RETRY_BASE_MS: '1', IPS_RETRY_BACKOFF_CAP_MS: '10', IPS_MAX_CONCURRENT_POLICIES: '8', ...env });
}

export function harness(
  options: {
    iam?: FakeIam;
    applier?: Applier;
    ledger?: MemoryLedger;
    maxConcurrentPolicies?: number;
    cacheSize?: number;
    lineage?: string[];
    owner?: string;
    claimTtlMs?: number;
    ledgerView?: (ledger: MemoryLedger) => Ledger;
    signal?: AbortSignal;
    env?: Record<string, string>;
    epoch?: number;
    hashKeyRange?: HashKeyRange;
    deadLetters?: MemoryDeadLetters;
    accounts?: AccountGate;
  } = {},
): Harness {
  const ledger = options.ledger ?? new MemoryLedger();
  const iam = options.iam ?? new FakeIam();
  const applier = options.applier ?? iam;
  const deadLetters = options.deadLetters ?? new MemoryDeadLetters();
  const metrics = new Metrics();
  const cache = new DedupCache(options.cacheSize ?? 10_000);
  const settledOrder: Settlement[] = [];
  const config = testConfig({
    ...(options.maxConcurrentPolicies !== undefined ? { IPS_MAX_CONCURRENT_POLICIES: String(options.maxConcurrentPolicies) } : {}),
    ...(options.claimTtlMs !== undefined ? { IPS_CLAIM_TTL_MS: String(options.claimTtlMs) } : {}),
    ...options.env,
  });
  const parts = { config, logger: silentLogger, metrics, ledger: options.ledgerView ? options.ledgerView(ledger) : ledger, cache, applier, deadLetters };
  const pipeline = createShardPipeline(
    parts,
    {
      shardId: 'shardId-000000000000',
      lineage: options.lineage ?? [],
      epoch: options.epoch ?? 0,
      owner: options.owner ?? 'test-owner',
      hashKeyRange: options.hashKeyRange ?? ALL_HASH_KEYS,
      ...(options.accounts ? { accounts: options.accounts } : {}),
    },
    { ...(options.signal ? { signal: options.signal } : {}), onSettled: (settlement) => settledOrder.push(settlement) },
  );
  return { pipeline, ledger, iam, applier, deadLetters, metrics, cache, settledOrder };
}

let sequence = 10n ** 20n;

/** Stream records with increasing sequence numbers, as one shard would deliver them. */
export function streamRecords(items: { partitionKey: string; data: Buffer }[], shardId = 'shardId-000000000000'): StreamRecord[] {
  return items.map((item, index) => ({
    shardId,
    sequenceNumber: String((sequence += 1000n)),
    subSequenceNumber: 0,
    partitionKey: item.partitionKey,
    data: item.data,
    index,
    receivedAt: Date.now(),
  }));
}

export function upsertRecord(policy: string, eventId: string, document: object, revision?: number) {
  return eventRecord(upsertedEvent({ eventId, name: policy, document, ...(revision !== undefined ? { revision } : {}) }));
}

export function deleteRecord(policy: string, eventId: string, revision?: number) {
  return eventRecord(deletedEvent({ eventId, name: policy, ...(revision !== undefined ? { revision } : {}) }));
}

export function doc(variant: number | string) {
  return { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::bucket-${variant}/*` }] };
}
