// In-process measurements on the local stack, for what cannot happen under
// the daemon: a replay that meets a warm duplicate cache. (A daemon
// redelivers a shard's records only to a new child, after a restart or a
// lease move, so the cache is always cold then; that case is the daemon-level
// `replay-256` scenario.) Run by bench/run.ts as a child process:
//
//   node --import tsx bench/in-process.ts '<json options>'   (stack endpoints in the environment)
//
// stderr receives the pipeline's logs (the parent sends it to a file);
// stdout receives one JSON object with the results.
//
// The pipeline is wired exactly as a record-processor child wires it
// (src/intake/process-parts.ts and start-shard.ts: the real DynamoDbLedger,
// DedupCache, IamReconciler and dead-letter store), and every
// AWS call is counted with Metrics.awsCallCounter().
//
//   cold      the records once, batch by batch (fills the ledger, IAM, the cache)
//   warm      the same records (same sequence numbers) again, `passes` times,
//             through the same pipeline: a redelivery meeting a warm cache
//   noop      the same batches through the no-op baseline's per-record work
//             (one outcome line per record, same logger): the in-process ceiling
//   ledger    the same records through a new pipeline (empty cache, new claim
//             owner): duplicates answered by the ledger, as after a restart
import { createAwsClients, destroyAwsClients } from '../src/aws/clients.js';
import { loadConfig } from '../src/config/config.js';
import { buildProcessParts } from '../src/intake/process-parts.js';
import { startShardPipeline } from '../src/intake/start-shard.js';
import type { ProcessParts } from '../src/intake/start-shard.js';
import { createLogger } from '../src/log/logger.js';
import { Metrics } from '../src/metrics/metrics.js';
import { generateLoad } from '../src/ops/load.js';
import { provision } from '../src/ops/provision.js';
import type { ShardPipeline } from '../src/pipeline/shard-pipeline.js';
import type { StreamRecord } from '../src/pipeline/types.js';
import { reportOutcome } from './baselines/common.js';
import type { BatchRecord } from './baselines/common.js';

export interface InProcessOptions {
  events: number;
  policies: number;
  /** Warm passes over the same records. */
  passes: number;
  batchSize: number;
  seed: number;
}

export interface PassResult {
  records: number;
  ms: number;
  eventsPerSecond: number;
  outcomes: Record<string, number>;
  dynamodbCalls: number;
  iamCalls: number;
  dynamodbCallsPerRecord: number;
  iamCallsPerRecord: number;
}

export interface InProcessResult {
  options: InProcessOptions;
  appName: string;
  cold: PassResult;
  warm: PassResult;
  noop: PassResult;
  ledger: PassResult;
  cacheSize: number;
}

const SHARD = 'shardId-000000000000';

/** Records with Kinesis-shaped (56-digit) sequence numbers, in stream order. */
export function kinesisRecords(items: { partitionKey: string; data: Buffer }[], shardId = SHARD): StreamRecord[] {
  let sequence = 49680464252519823727834655071869294981423994413795770370n;
  const now = Date.now();
  return items.map((item, index) => ({
    shardId,
    sequenceNumber: String((sequence += 1208925819614629174706176n)),
    subSequenceNumber: 0,
    partitionKey: item.partitionKey,
    data: item.data,
    index,
    arrivedAt: now,
    receivedAt: now,
  }));
}

/** The records cut into daemon-sized batches, each re-indexed and stamped as just received. */
function batchesOf(records: StreamRecord[], size: number): StreamRecord[][] {
  const batches: StreamRecord[][] = [];
  for (let i = 0; i < records.length; i += size) batches.push(records.slice(i, i + size));
  return batches;
}

function stamp(batch: StreamRecord[]): StreamRecord[] {
  const now = Date.now();
  return batch.map((record, index) => ({ ...record, index, receivedAt: now }));
}

function calls(metrics: Metrics) {
  return { dynamodb: metrics.total('aws_calls', { service: 'dynamodb' }), iam: metrics.total('aws_calls', { service: 'iam' }) };
}

async function measure(metrics: Metrics, batches: StreamRecord[][], passes: number, run: (batch: StreamRecord[]) => Promise<{ outcome: string }[]>): Promise<PassResult> {
  const before = calls(metrics);
  const outcomes: Record<string, number> = {};
  let records = 0;
  const started = performance.now();
  for (let pass = 0; pass < passes; pass++) {
    for (const batch of batches) {
      for (const settlement of await run(stamp(batch))) outcomes[settlement.outcome] = (outcomes[settlement.outcome] ?? 0) + 1;
      records += batch.length;
    }
  }
  const ms = performance.now() - started;
  const after = calls(metrics);
  const dynamodbCalls = after.dynamodb - before.dynamodb;
  const iamCalls = after.iam - before.iam;
  return {
    records,
    ms,
    eventsPerSecond: (records / ms) * 1000,
    outcomes,
    dynamodbCalls,
    iamCalls,
    dynamodbCallsPerRecord: dynamodbCalls / records,
    iamCallsPerRecord: iamCalls / records,
  };
}

export async function runInProcess(options: InProcessOptions): Promise<InProcessResult> {
  const config = loadConfig(process.env);
  const metrics = new Metrics();
  const clients = createAwsClients(config, { observers: [metrics.awsCallCounter()] });
  const logger = createLogger(config.logLevel, { app: config.appName, component: 'record-processor' });
  try {
    await provision(config, clients, 1);
    const parts = (): ProcessParts => buildProcessParts(config, clients, logger, metrics);
    const signal = new AbortController().signal;
    const first = parts();
    const pipeline: ShardPipeline = await startShardPipeline(first, SHARD, () => {}, signal);
    const load = generateLoad({ policies: options.policies, events: options.events, seed: options.seed, prefix: 'warm' });
    const batches = batchesOf(kinesisRecords(load), options.batchSize);

    const cold = await measure(metrics, batches, 1, (batch) => pipeline.processBatch(batch));
    const warm = await measure(metrics, batches, options.passes, (batch) => pipeline.processBatch(batch));
    const noopChild = { logger, metrics, config };
    const noop = await measure(metrics, batches, options.passes, async (batch) => {
      const records: BatchRecord[] = batch;
      for (const record of records) reportOutcome(noopChild, record, 'noop');
      return records.map(() => ({ outcome: 'noop' }));
    });
    const restarted = await startShardPipeline(parts(), SHARD, () => {}, signal);
    const ledger = await measure(metrics, batches, 1, (batch) => restarted.processBatch(batch));
    return { options, appName: config.appName, cold, warm, noop, ledger, cacheSize: first.cache.size };
  } finally {
    logger.flush();
    destroyAwsClients(clients);
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const options = JSON.parse(process.argv[2] ?? '{}') as Partial<InProcessOptions>;
  const result = await runInProcess({ events: 2_000, policies: 256, passes: 10, batchSize: 1_000, seed: 42, ...options });
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
