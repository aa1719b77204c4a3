// A host whose clock is far from AWS's does not claim, end to end against
// DynamoDB Local: the fault proxy rewrites the Date header of DynamoDB's
// answers as AWS's would read on a host whose clock is ten minutes fast, the
// SDK measures the offset from it, and the ledger refuses to claim until the
// clock is right again; the record waits unsettled, and is then applied once.
import test from 'ava';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { METRIC, Metrics } from '../../src/metrics/metrics.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import { startFaultProxy } from '../../tools/harness/fault-proxy.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { FakeIam, MemoryDeadLetters } from '../support/fakes.js';
import { doc, silentLogger, streamRecords, upsertRecord } from '../support/pipeline.js';

const stackOf = useTestStack(test, { shards: 1 });

async function until(condition: () => boolean, ms: number): Promise<boolean> {
  for (const start = Date.now(); Date.now() - start < ms; ) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return condition();
}

test('the SDK measures a skewed Date header, and the ledger refuses to claim until the clock is within the bound again', async (t) => {
  const { stack, config } = stackOf();
  const proxy = await startFaultProxy({ target: stack.env.AWS_ENDPOINT_URL_DYNAMODB!, protocol: 'dynamodb', rate: 0 });
  const metrics = new Metrics();
  const aws = createAwsClients(config, { env: { ...stack.env, AWS_ENDPOINT_URL_DYNAMODB: proxy.endpoint }, observers: [metrics.awsCallCounter()] });
  const truth = createAwsClients(config, { env: stack.env });
  t.teardown(async () => {
    destroyAwsClients(aws);
    destroyAwsClients(truth);
    await proxy.close();
  });
  const ledger = ledgerFromConfig(aws.dynamodb, config, {}, { metrics, logger: silentLogger });
  const iam = new FakeIam();
  const pipeline = createShardPipeline(
    {
      config: { ...config, retryBaseMs: 5, retryBackoffCapMs: 200 },
      logger: silentLogger,
      metrics,
      ledger,
      cache: new DedupCache(1_000),
      applier: iam,
      deadLetters: new MemoryDeadLetters(),
    },
    { shardId: 'shardId-000000000000', lineage: [], hashKeyRange: ALL_HASH_KEYS, epoch: 0, owner: 'worker-fast-clock' },
  );

  await ledger.currentEpoch();
  const honest = aws.dynamodb.config.systemClockOffset;
  t.true(Math.abs(honest) <= 2_000, `an honest clock measures within the Date header's second: ${honest} ms`);

  proxy.skewClock(-10 * 60_000); // AWS's answers say it is ten minutes earlier than this host thinks
  await ledger.currentEpoch();
  const measured = aws.dynamodb.config.systemClockOffset;
  t.true(measured <= -9 * 60_000, `the SDK measured the skew: ${measured} ms`);
  t.is(metrics.gaugeValue(METRIC.clockOffsetMs), measured, 'and it is published');

  let settled = false;
  const batch = pipeline.processBatch(streamRecords([upsertRecord('skewed-clock-1', 'skew-e1', doc(1))])).then((result) => {
    settled = true;
    return result;
  });
  t.true(await until(() => metrics.get(METRIC.claimsRefused, { because: 'clock-skew' }) >= 3, 30_000), 'claims refused for the clock');
  t.true(metrics.get(METRIC.transientRetries, { reason: 'clock-skew' }) >= 1, 'a transient fault: the record is tried again');
  t.false(settled, 'the record waits unsettled: not rejected, not applied');
  t.is(iam.calls.length, 0, 'IAM untouched');
  const untouched = await ledgerFromConfig(truth.dynamodb, config).get('skewed-clock-1');
  t.is(untouched, undefined, 'nothing was written to the ledger');

  proxy.skewClock(0); // the host's time sync catches up
  const [result] = await batch;
  t.is(result!.outcome, 'created');
  t.is(iam.writes.length, 1, 'applied once');
  t.true(Math.abs(aws.dynamodb.config.systemClockOffset) <= 2_000, 'measured right again');
});
