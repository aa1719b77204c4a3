// The registry of parks. Many policies parked, and drained, at once: every
// park's transaction also writes a registry item, and DynamoDB cancels a transaction that meets
// another in progress on an item (TransactionConflict), which DynamoDB Local
// has not been seen to do. The fault proxy in front of
// DynamoDB Local refuses such writes as the service does
// (tools/harness/dynamodb-transactions.ts); the park store must come through
// with every park listed, and every drained one unlisted, none lost to a
// conflict.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { TransactionCanceledException, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import type { AwsClients } from '../../src/aws/clients.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import { decodeRecord } from '../../src/contract/decode.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { isRetriable } from '../../src/faults/classify.js';
import { TransientError } from '../../src/faults/errors.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { LEDGER_KEY } from '../../src/ledger/table.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { METRIC, Metrics } from '../../src/metrics/metrics.js';
import { eventRecord } from '../../src/ops/producer.js';
import { DynamoDbParkStore } from '../../src/park/park-store.js';
import { BEHIND_PARKED } from '../../src/park/parking.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import type { Applier, ValidRecord } from '../../src/pipeline/types.js';
import { startFaultProxy } from '../../tools/harness/fault-proxy.js';
import type { FaultProxy } from '../../tools/harness/fault-proxy.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { MemoryDeadLetters } from '../support/fakes.js';
import { doc, silentLogger, streamRecords } from '../support/pipeline.js';

const SHARD = 'shardId-000000000000';
const DOWN = '222222222222';
let testStack: TestStack | undefined;
let proxy: FaultProxy | undefined;
let aws: AwsClients | undefined;

test.before(async () => {
  testStack = await startTestStack({ shards: 1 });
  const { stack, config } = testStack;
  // A transaction stays in progress 25 ms before DynamoDB Local sees it: concurrent parks meet on the registry item.
  proxy = await startFaultProxy({ target: stack.env.AWS_ENDPOINT_URL_DYNAMODB!, protocol: 'dynamodb', rate: 0, transactions: { holdMs: 25 } });
  aws = createAwsClients(config, { env: { ...stack.env, AWS_ENDPOINT_URL_DYNAMODB: proxy.endpoint } });
});

test.after.always(async () => {
  if (aws) destroyAwsClients(aws);
  await proxy?.close();
  await testStack?.stack.stop();
});

const records = (prefix: string, n: number): ValidRecord[] =>
  streamRecords(
    Array.from({ length: n }, (_, i) => eventRecord(upsertedEvent({ eventId: `${prefix}-${i}`, account: DOWN, name: `${prefix}-${i}`, document: doc(`${prefix}-${i}`) }))),
    SHARD,
  ).map((record) => {
    const decoded = decodeRecord(record.data, record.partitionKey, { managedPathPrefix: testStack!.config.managedPathPrefix, hashKeyRange: ALL_HASH_KEYS });
    if (!decoded.ok) throw new Error(decoded.detail);
    return { record, event: decoded.event, payloadHash: `hash-${record.sequenceNumber}` };
  });

// Serial: each reads the registry of parks, which the ledger table holds for every policy.
test.serial('policies parked at once, and drained at once, all end listed and then unlisted, whatever transactions they met', async (t) => {
  const store = new DynamoDbParkStore(aws!.dynamodb, testStack!.config.ledgerTable);
  const parked = records('contend', 24);
  const before = proxy!.transactions!.refused.cancelled;
  await Promise.all(parked.map((valid, i) => store.park(`${DOWN}/contend-${i}`, [valid], { reason: 'circuit-open', detail: 'account down' })));
  t.true(proxy!.transactions!.refused.cancelled > before, 'the parks really met one another on the registry item');
  const listed = await store.parkedPolicies();
  t.deepEqual([...listed].sort(), parked.map((_, i) => `${DOWN}/contend-${i}`).sort(), 'every park is listed');

  const drained = proxy!.transactions!.refused.cancelled;
  await Promise.all(
    parked.map(async (_, i) => {
      const policy = `${DOWN}/contend-${i}`;
      await store.release(
        policy,
        (await store.records(policy)).map((record) => record.id),
      );
    }),
  );
  t.true(proxy!.transactions!.refused.cancelled > drained, 'the releases really met one another on the registry item');
  t.deepEqual([...(await store.parkedPolicies())], [], 'every drained park is unlisted');
});

test.serial('a batch that parks many policies at once settles every record parked: a conflict on the registry is waited out, not taken for a bug', async (t) => {
  const { config } = testStack!;
  const metrics = new Metrics();
  const down: Applier = {
    apply: async (event) => {
      throw new TransientError('circuit-open', `account ${event.account}: IAM circuit breaker open`);
    },
  };
  const pipeline = createShardPipeline(
    {
      config: { ...config, retryBaseMs: 5, retryBackoffCapMs: 50, parkAfterMs: 200 },
      logger: silentLogger,
      metrics,
      ledger: ledgerFromConfig(aws!.dynamodb, config),
      cache: new DedupCache(1_000),
      applier: down,
      deadLetters: new MemoryDeadLetters(),
      parks: new DynamoDbParkStore(aws!.dynamodb, config.ledgerTable),
    },
    { shardId: SHARD, lineage: [], hashKeyRange: ALL_HASH_KEYS, epoch: 0, owner: 'worker-1' },
  );
  const batch = streamRecords(
    Array.from({ length: 20 }, (_, i) => eventRecord(upsertedEvent({ eventId: `batch-${i}`, account: DOWN, name: `batch-${i}`, document: doc(`batch-${i}`) }))),
    SHARD,
  ).map((record, index) => ({ ...record, index }));
  const before = proxy!.transactions!.refused.cancelled;
  // A liveness bound, not a timing: a step taken for a bug waits for the processor to stop, and the batch never settles.
  const settled = await Promise.race([
    pipeline.processBatch(batch),
    sleep(60_000).then(() => {
      throw new Error(`the batch did not settle in 60 s (pipeline_bugs ${metrics.get(METRIC.pipelineBugs, { shard: SHARD })})`);
    }),
  ]);
  t.deepEqual(
    settled.map((s) => s.outcome),
    batch.map(() => 'parked'),
  );
  t.is(metrics.get(METRIC.pipelineBugs, { shard: SHARD }), 0, 'no step was taken for a bug');
  t.true(proxy!.transactions!.refused.cancelled > before, 'the parks really met one another');
});

test.serial('a park listed in the single registry item an earlier version kept is read, and unlisted there when drained', async (t) => {
  const store = new DynamoDbParkStore(aws!.dynamodb, testStack!.config.ledgerTable);
  const [valid] = records('single', 1);
  const policy = `${DOWN}/single-0`;
  await store.park(policy, [valid!], { reason: 'circuit-open', detail: 'account down' });
  // As an earlier version listed it: in `#parks`, not in its bucket.
  await aws!.dynamodb.send(
    new UpdateItemCommand({
      TableName: testStack!.config.ledgerTable,
      Key: { [LEDGER_KEY]: { S: '#parks' } },
      UpdateExpression: 'ADD #keys :key',
      ExpressionAttributeNames: { '#keys': 'keys' },
      ExpressionAttributeValues: { ':key': { SS: [policy] } },
    }),
  );
  const buckets = Array.from({ length: 16 }, (_, n) => ({ [LEDGER_KEY]: { S: `#parks/${n}` } }));
  for (const Key of buckets) {
    await aws!.dynamodb.send(
      new UpdateItemCommand({
        TableName: testStack!.config.ledgerTable,
        Key,
        UpdateExpression: 'DELETE #keys :key',
        ExpressionAttributeNames: { '#keys': 'keys' },
        ExpressionAttributeValues: { ':key': { SS: [policy] } },
      }),
    );
  }
  t.true((await store.parkedPolicies()).has(policy), 'read from the single item (the batch test left its parks listed)');
  await store.release(
    policy,
    (await store.records(policy)).map((record) => record.id),
  );
  t.false((await store.parkedPolicies()).has(policy), 'unlisted there too');
});

test.serial("a park's records come back in order whether written in its listing's transaction (a few) or one by one before it (many)", async (t) => {
  const store = new DynamoDbParkStore(aws!.dynamodb, testStack!.config.ledgerTable);
  for (const [policy, count] of [
    [`${DOWN}/few-0`, 3],
    [`${DOWN}/many-0`, 60],
  ] as const) {
    const parked = records(policy.slice(DOWN.length + 1), count);
    await store.park(policy, parked.slice(0, 1), { reason: 'circuit-open', detail: 'account down' });
    await store.park(policy, parked.slice(1), { reason: BEHIND_PARKED, detail: 'behind' });
    const back = await store.records(policy);
    t.deepEqual(
      back.map((record) => record.record.sequenceNumber),
      parked.map((valid) => valid.record.sequenceNumber),
      `${policy}: every record, in the order parked`,
    );
    t.deepEqual(
      back.map((record) => record.event.eventId),
      parked.map((valid) => valid.event.eventId),
    );
    t.is((await store.summary(policy))?.records, count);
    await store.release(
      policy,
      back.map((record) => record.id),
    );
    t.false((await store.parkedPolicies()).has(policy));
  }
});

test('a transaction cancelled for a conflict or throttling is transient; one cancelled by its condition or a validation error is not', (t) => {
  const cancelled = (...codes: string[]) =>
    new TransactionCanceledException({ message: `Transaction cancelled [${codes.join(', ')}]`, $metadata: { httpStatusCode: 400 }, CancellationReasons: codes.map((Code) => ({ Code })) });
  t.true(isRetriable(cancelled('None', 'TransactionConflict')));
  t.true(isRetriable(cancelled('ThrottlingError', 'None')));
  t.true(isRetriable(cancelled('ProvisionedThroughputExceeded')));
  t.false(isRetriable(cancelled('ConditionalCheckFailed', 'None')));
  t.false(isRetriable(cancelled('ConditionalCheckFailed', 'TransactionConflict')), 'a failed condition is a decision, whatever else met it');
  t.false(isRetriable(cancelled('None', 'ValidationError')));
});
