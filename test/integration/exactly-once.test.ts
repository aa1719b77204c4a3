// The same 1,000 events delivered three ways, through the real ledger
// (DynamoDB Local) and the real IAM reconciler (moto): each policy is created
// once and gets one version per distinct document change.
import test from 'ava';
import { ListPolicyVersionsCommand } from '@aws-sdk/client-iam';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import { reconcilerApplier } from '../../src/intake/applier.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { generateLoad } from '../../src/ops/load.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import type { ShardPipeline } from '../../src/pipeline/shard-pipeline.js';
import type { Settlement } from '../../src/pipeline/types.js';
import { MemoryDeadLetters } from '../support/fakes.js';
import { silentLogger, streamRecords } from '../support/pipeline.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';

const stackOf = useTestStack(test, { shards: 1 });

/** A fresh record-processor child: new cache, new claim owner (as after a crash or lease move). */
function freshChild(name: string, metrics = new Metrics()) {
  const { config, clients } = stackOf();
  const aws = clients({ observers: [metrics.awsCallCounter()] });
  const reconciler = new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger });
  const parts = {
    config: { ...config, retryBaseMs: 5, retryBackoffCapMs: 200 },
    logger: silentLogger,
    metrics,
    ledger: ledgerFromConfig(aws.dynamodb, config),
    cache: new DedupCache(10_000),
    applier: reconcilerApplier(reconciler),
    deadLetters: new MemoryDeadLetters(),
  };
  return createShardPipeline(parts, { shardId: 'shardId-000000000000', lineage: [], epoch: 0, owner: name, hashKeyRange: ALL_HASH_KEYS });
}

async function inBatches(pipeline: ShardPipeline, records: ReturnType<typeof streamRecords>, size = 250): Promise<Settlement[]> {
  const all: Settlement[] = [];
  for (let i = 0; i < records.length; i += size) {
    const batch = records.slice(i, i + size).map((record, index) => ({ ...record, index }));
    all.push(...(await pipeline.processBatch(batch)));
  }
  return all;
}

test('1,000 events delivered, redelivered, replayed and re-put by the producer: one create per policy, one version per document change', async (t) => {
  // 250 policies, about 4 upserts each, documents drawn from 3 variants (some updates repeat the document).
  const load = generateLoad({ policies: 250, events: 1_000, seed: 11, prefix: 'once', documentsPerPolicy: 3 });
  const records = streamRecords(load);

  const first = await inBatches(freshChild('child-1'), records);
  // Daemon redelivery after a crash: a new child gets the same records (same sequence numbers).
  const redelivered = await inBatches(freshChild('child-2'), records);
  // Replay from TRIM_HORIZON: the same records again, to yet another child, in other batch sizes.
  const replayed = await inBatches(freshChild('child-3'), records, 97);
  // A producer re-puts every event: new records, new sequence numbers, the same eventIds.
  const reput = await inBatches(freshChild('child-4'), streamRecords(load));

  t.is(first.length, 1_000);
  t.true(
    redelivered.every((s) => s.outcome === 'duplicate'),
    'redelivery: all duplicates',
  );
  t.true(
    replayed.every((s) => s.outcome === 'duplicate'),
    'replay: all duplicates',
  );
  const reputOutcomes = new Set(reput.map((s) => s.outcome));
  t.true(
    [...reputOutcomes].every((o) => o === 'duplicate' || o === 'stale'),
    `producer re-put: only duplicates or stale, got ${[...reputOutcomes]}`,
  );

  const created = first.filter((s) => s.outcome === 'created').length;
  t.is(created, new Set(load.map((r) => r.policy)).size, 'each policy created once');

  // Version count = distinct document changes, as applied in stream order (coalescing skips
  // intermediate documents of a batch, so count the changes between applied documents).
  const { config, clients } = stackOf();
  const iam = clients().iam;
  const appliedByPolicy = new Map<string, string[]>();
  first.forEach((settlement, i) => {
    if (!['created', 'updated', 'unchanged'].includes(settlement.outcome)) return;
    const document = JSON.parse(load[i]!.data.toString()).document;
    const list = appliedByPolicy.get(load[i]!.policy) ?? [];
    const key = JSON.stringify(document);
    if (list.at(-1) !== key) list.push(key);
    appliedByPolicy.set(load[i]!.policy, list);
  });
  for (const [policy, documents] of appliedByPolicy) {
    const versions = await iam.send(new ListPolicyVersionsCommand({ PolicyArn: `arn:aws:iam::${LOCAL_ACCOUNT_ID}:policy${config.managedPathPrefix}${policy}` }));
    t.is(versions.Versions?.length, Math.min(5, documents.length), `${policy}: one version per document change (at most 5 kept)`);
  }
});
