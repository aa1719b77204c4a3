// A shard pipeline of real parts on a test stack: the DynamoDB ledger, the IAM
// reconciler and a duplicate cache, with fast retries, as the integration
// tests drive it batch by batch without a daemon. Dead letters are kept in
// memory.
import type { AwsClients } from '../../src/aws/clients.js';
import type { Config } from '../../src/config/config.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import { reconcilerApplier } from '../../src/intake/applier.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import type { ShardPipeline } from '../../src/pipeline/shard-pipeline.js';
import { MemoryDeadLetters } from './fakes.js';
import { silentLogger } from './pipeline.js';

export function stackPipeline(config: Config, aws: Pick<AwsClients, 'dynamodb' | 'iam' | 'sts'>, owner: string, epoch = 0): ShardPipeline {
  const metrics = new Metrics();
  return createShardPipeline(
    {
      config: { ...config, retryBaseMs: 5, retryBackoffCapMs: 200 },
      logger: silentLogger,
      metrics,
      ledger: ledgerFromConfig(aws.dynamodb, config),
      cache: new DedupCache(1_000),
      applier: reconcilerApplier(new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger })),
      deadLetters: new MemoryDeadLetters(),
    },
    { shardId: 'shardId-000000000000', lineage: [], hashKeyRange: ALL_HASH_KEYS, epoch, owner },
  );
}
