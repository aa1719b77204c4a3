// A shard pipeline wired to in-memory fakes, and helpers to feed it batches.
import { createLogger } from '../../src/log/logger.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { ShardPipeline } from '../../src/pipeline/shard-pipeline.js';
import type { Applier, Settlement, StreamRecord } from '../../src/pipeline/types.js';
import { FakeIam, MemoryDeadLetters, MemoryLedger } from './fakes.js';

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

export function harness(options: { iam?: FakeIam; applier?: Applier; ledger?: MemoryLedger; maxConcurrentPolicies?: number; cacheSize?: number; lineage?: string[]; owner?: string; claimTtlMs?: number; ledgerView?: (ledger: MemoryLedger) => Ledger; signal?: AbortSignal } = {}): Harness {
  const ledger = options.ledger ?? new MemoryLedger();
  const iam = options.iam ?? new FakeIam();
  const applier = options.applier ?? iam;
  const deadLetters = new MemoryDeadLetters();
  const metrics = new Metrics();
  const cache = new DedupCache(options.cacheSize ?? 10_000);
  const settledOrder: Settlement[] = [];
  const pipeline = new ShardPipeline({
    context: {
      ledger: options.ledgerView ? options.ledgerView(ledger) : ledger,
      cache,
      applier,
      deadLetters,
      metrics,
      owner: options.owner ?? 'test-owner',
      epoch: 0,
      recentEventIds: 32,
      lineage: options.lineage ?? [],
      claimTtlMs: options.claimTtlMs ?? 60_000,
    },
    decode: { managedPathPrefix: '/stream-managed/', refuseAdminGrant: true },
    maxConcurrentPolicies: options.maxConcurrentPolicies ?? 8,
    retryBaseMs: 1,
    retryCapMs: 5,
    logger: silentLogger,
    ...(options.signal ? { signal: options.signal } : {}),
    onSettled: (settlement) => settledOrder.push(settlement),
  });
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
  const event = { specVersion: '1', eventId, type: 'policy.upserted', policy: { name: policy }, document, ...(revision !== undefined ? { revision } : {}) };
  return { partitionKey: policy, data: Buffer.from(JSON.stringify(event)) };
}

export function deleteRecord(policy: string, eventId: string, revision?: number) {
  const event = { specVersion: '1', eventId, type: 'policy.deleted', policy: { name: policy }, ...(revision !== undefined ? { revision } : {}) };
  return { partitionKey: policy, data: Buffer.from(JSON.stringify(event)) };
}

export function doc(variant: number | string) {
  return { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::bucket-${variant}/*` }] };
}
