// Metrics as CloudWatch sees them: the Embedded Metric Format documents the
// publisher writes (names, dimensions, values, units) after real work went
// through a shard pipeline and a record processor; the shard progress a
// record processor reports while a batch waits on one policy.
import test from 'ava';
import type { Checkpointer, KclRecord } from 'aws-kcl';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PolicyRecordProcessor } from '../../src/intake/record-processor.js';
import { ProgressReporter, progressKey } from '../../src/intake/progress.js';
import type { ProgressItem } from '../../src/intake/progress.js';
import { EmfPublisher, StreamSink, sinkFor } from '../../src/metrics/emf.js';
import { METRIC, METRIC_SPECS, Metrics, SAMPLES_PER_INTERVAL } from '../../src/metrics/metrics.js';
import type { PolicyEvent } from '../../src/contract/event.js';
import type { IamOutcome } from '../../src/contract/outcome.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import { FakeIam, MemoryDeadLetters, MemoryLedger } from '../support/fakes.js';
import { doc, silentLogger, streamRecords, testConfig, upsertRecord } from '../support/pipeline.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';

interface EmfDocument {
  _aws: { Timestamp: number; CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] };
  [key: string]: unknown;
}

/** A publisher writing into an array, as a child writes to stderr. */
function capture(metrics: Metrics, shard: () => string | undefined = () => 'shardId-000000000007') {
  const lines: string[] = [];
  const publisher = new EmfPublisher({
    metrics,
    sink: new StreamSink({ write: (text: string) => lines.push(text) }),
    namespace: 'IamPolicyStream',
    app: 'iam-policy-stream',
    worker: 'task-1',
    shard,
    properties: () => ({ pid: 4242 }),
  });
  const documents = () => lines.map((line) => JSON.parse(line) as EmfDocument);
  return { publisher, lines, documents };
}

/** The documents holding a metric, with that metric's value. */
function find(documents: EmfDocument[], name: string, labels: Record<string, string> = {}) {
  return documents.filter((d) => d._aws.CloudWatchMetrics[0]!.Metrics.some((m) => m.Name === name) && Object.entries(labels).every(([k, v]) => d[k] === v));
}

test('every metric name in METRIC has a spec, and names are unique', (t) => {
  const names = Object.values(METRIC);
  t.is(new Set(names).size, names.length);
  for (const name of names) t.truthy(METRIC_SPECS[name], name);
  t.deepEqual(Object.keys(METRIC_SPECS).sort(), [...names].sort());
});

test('counters, gauges and distributions keep their readings; a distribution keeps at most 100 samples an interval, the largest among them', (t) => {
  const metrics = new Metrics(() => 0.999);
  metrics.increment(METRIC.outcomes, { outcome: 'created' }, 2);
  metrics.increment(METRIC.outcomes, { outcome: 'duplicate' });
  t.is(metrics.total(METRIC.outcomes), 3);
  metrics.gauge(METRIC.iamBreakerState, 2);
  let age = 10;
  metrics.gauge(METRIC.oldestUnsettledAgeMs, () => age);
  age = 25;
  t.is(metrics.gaugeValue(METRIC.oldestUnsettledAgeMs), 25, 'a gauge function is read when the gauge is');
  for (let i = 1; i <= 1_000; i++) metrics.observe(METRIC.recordAgeMs, i);
  metrics.observe(METRIC.recordAgeMs, Number.NaN);
  t.deepEqual(metrics.distribution(METRIC.recordAgeMs), { count: 1_000, sum: 500_500, min: 1, max: 1_000 });
  const [interval] = metrics.drainIntervals();
  t.is(interval!.values.length, SAMPLES_PER_INTERVAL);
  t.true(interval!.values.includes(1_000), 'the largest value is among the samples');
  t.is(interval!.count, 1_000);
  t.deepEqual(metrics.drainIntervals(), [], 'a drained interval starts empty');
  t.is(metrics.distribution(METRIC.recordAgeMs)!.count, 1_000, 'the totals since start are kept');
  const summary = metrics.summary();
  t.is(summary.counters['outcomes{outcome=created}'], 2);
  t.is(summary.gauges.oldest_unsettled_age_ms, 25);
});

test('EMF: one document per label set, under the namespace, with App, ShardId and Worker dimension sets as each metric is scoped; counters publish what they gained', async (t) => {
  const metrics = new Metrics();
  const { publisher, documents, lines } = capture(metrics);
  metrics.increment(METRIC.outcomes, { outcome: 'created' }, 3);
  metrics.increment(METRIC.awsCalls, { service: 'iam', operation: 'CreatePolicy', outcome: 'ok' }, 3);
  metrics.increment(METRIC.claimsLost);
  metrics.gauge(METRIC.iamBreakerState, 0);
  metrics.observe(METRIC.batchDurationMs, 120);
  metrics.observe(METRIC.batchDurationMs, 80);
  await publisher.publish();

  const first = documents();
  t.true(
    lines.every((line) => line.endsWith('\n') && !line.slice(0, -1).includes('\n')),
    'one JSON line per document',
  );
  t.true(first.every((d) => d._aws.CloudWatchMetrics[0]!.Namespace === 'IamPolicyStream'));
  t.true(first.every((d) => d.App === 'iam-policy-stream' && d.Worker === 'task-1' && d.pid === 4242));

  const [outcomes] = find(first, METRIC.outcomes, { outcome: 'created' });
  t.deepEqual(outcomes!._aws.CloudWatchMetrics[0]!.Dimensions, [
    ['App', 'outcome'],
    ['App', 'ShardId', 'outcome'],
  ]);
  t.is(outcomes!.ShardId, 'shardId-000000000007');
  t.is(outcomes!.outcomes, 3);
  t.deepEqual(outcomes!._aws.CloudWatchMetrics[0]!.Metrics, [{ Name: 'outcomes', Unit: 'Count' }]);

  const [calls] = find(first, METRIC.awsCalls);
  t.deepEqual(calls!._aws.CloudWatchMetrics[0]!.Dimensions, [
    ['App', 'operation', 'outcome', 'service'],
    ['App', 'Worker', 'operation', 'outcome', 'service'],
  ]);
  t.is(calls!.aws_calls, 3);

  // Metrics without labels share one document per scope combination.
  const [fleetOnly] = find(first, METRIC.claimsLost);
  t.deepEqual(fleetOnly!._aws.CloudWatchMetrics[0]!.Dimensions, [['App']]);
  const [breaker] = find(first, METRIC.iamBreakerState);
  t.deepEqual(breaker!._aws.CloudWatchMetrics[0]!.Dimensions, [['App'], ['App', 'Worker']]);
  t.is(breaker!.iam_breaker_state, 0);
  const [batches] = find(first, METRIC.batchDurationMs);
  t.deepEqual(batches!._aws.CloudWatchMetrics[0]!.Dimensions, [['App'], ['App', 'ShardId']]);
  t.deepEqual(batches!.batch_duration_ms, [120, 80]);
  t.true(batches!._aws.CloudWatchMetrics[0]!.Metrics.some((m) => m.Name === 'batch_duration_ms' && m.Unit === 'Milliseconds'));

  // The next publication: counters as deltas (0 when nothing happened), distributions only when they saw values.
  lines.length = 0;
  metrics.increment(METRIC.outcomes, { outcome: 'created' }, 2);
  await publisher.publish();
  const second = documents();
  t.is(find(second, METRIC.outcomes, { outcome: 'created' })[0]!.outcomes, 2);
  t.is(find(second, METRIC.awsCalls)[0]!.aws_calls, 0);
  t.deepEqual(find(second, METRIC.batchDurationMs), []);
});

test('EMF: before a shard is known, per-shard dimension sets are left out; metrics of no spec are published at fleet level', async (t) => {
  const metrics = new Metrics();
  const { publisher, documents } = capture(metrics, () => undefined);
  metrics.increment(METRIC.outcomes, { outcome: 'created' });
  metrics.increment('a_test_counter', { kind: 'x' });
  await publisher.publish();
  t.deepEqual(find(documents(), METRIC.outcomes)[0]!._aws.CloudWatchMetrics[0]!.Dimensions, [['App', 'outcome']]);
  t.deepEqual(find(documents(), 'a_test_counter')[0]!._aws.CloudWatchMetrics[0]!.Dimensions, [['App', 'kind']]);
});

test('sinkFor: stderr by default, nothing when off', (t) => {
  t.is(sinkFor({ appName: 'a', metricsSink: 'off', emfAgentEndpoint: undefined }), undefined);
  t.is(sinkFor({ appName: 'a', metricsSink: 'stderr', emfAgentEndpoint: undefined }, { write: () => true })?.name, 'StreamSink');
});

test('the agent sink sends the documents over TCP to the CloudWatch agent, with the log group; an agent that is down costs an error, not the process', async (t) => {
  const received: string[] = [];
  const server = createServer((socket) => socket.on('data', (chunk) => received.push(chunk.toString())));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const metrics = new Metrics();
  metrics.increment(METRIC.outcomes, { outcome: 'created' }, 4);
  const sink = sinkFor({ appName: 'iam-policy-stream', metricsSink: 'agent', emfAgentEndpoint: `tcp://127.0.0.1:${port}` }, undefined, {});
  t.is(sink?.name, 'AgentSink');
  const publisher = new EmfPublisher({ metrics, sink: sink!, namespace: 'IamPolicyStream', app: 'iam-policy-stream', worker: 'task-1' });
  await publisher.publish();
  for (let i = 0; i < 50 && !received.join('').includes('\n'); i++) await sleep(20);
  server.close();
  const [document] = received
    .join('')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as EmfDocument);
  t.is(document!.outcomes, 4);
  t.is((document!._aws as unknown as { LogGroupName: string }).LogGroupName, 'iam-policy-stream-metrics');

  // Nothing listens on this loopback port.
  const errors: unknown[] = [];
  const down = new EmfPublisher({
    metrics,
    sink: sinkFor({ appName: 'a', metricsSink: 'agent', emfAgentEndpoint: 'tcp://127.0.0.1:9' }, undefined, {})!,
    namespace: 'X',
    app: 'a',
    worker: 'w',
    onError: (error) => errors.push(error),
  });
  await down.publish();
  t.is(errors.length, 1);
});

/** A checkpointer that records what it was asked. */
function recordingCheckpointer(): Checkpointer & { taken: (string | null)[] } {
  const taken: (string | null)[] = [];
  const checkpoint = (...args: unknown[]) => {
    const callback = args[args.length - 1] as (error: string | null) => void;
    taken.push(args.length === 2 ? (args[0] as string) : null);
    callback(null);
  };
  return { taken, checkpoint } as unknown as Checkpointer & { taken: (string | null)[] };
}

/** An IAM step that holds one policy until released. */
class HeldIam extends FakeIam {
  release!: () => void;
  readonly held = new Promise<void>((resolve) => (this.release = resolve));
  constructor(private readonly holdPolicy: string) {
    super();
  }
  override async apply(event: PolicyEvent): Promise<IamOutcome> {
    if (event.policyName === this.holdPolicy) await this.held;
    return super.apply(event);
  }
}

test('a batch held by one policy: the record processor reports its oldest unsettled record and that policy; when it settles, the batch is timed and counted', async (t) => {
  const iam = new HeldIam('slow-policy');
  const metrics = new Metrics();
  const parts = { config: testConfig(), logger: silentLogger, metrics, ledger: new MemoryLedger(), cache: new DedupCache(100), applier: iam, deadLetters: new MemoryDeadLetters() };
  const processor = new PolicyRecordProcessor({
    logger: silentLogger,
    progressCheckpointMs: 60_000,
    checkpointAttempts: 1,
    metrics,
    startShard: async (shardId, onSettled, signal) => ({ pipeline: createShardPipeline(parts, { shardId, lineage: [], epoch: 0, owner: 'test', hashKeyRange: ALL_HASH_KEYS }, { onSettled, signal }) }),
  });
  await new Promise<void>((resolve) => processor.initialize({ shardId: 'shardId-000000000000' }, resolve));
  t.is(processor.progress().state, 'ready');
  t.is(processor.oldestUnsettledAgeMs(), 0, 'nothing waits');

  const arrivedAt = Date.now() - 5_000;
  const items = [upsertRecord('fast-a', 'e1', doc(1)), upsertRecord('slow-policy', 'e2', doc(2)), upsertRecord('fast-b', 'e3', doc(3))];
  const records: KclRecord[] = streamRecords(items).map((record) => ({
    data: record.data.toString('base64'),
    partitionKey: record.partitionKey,
    sequenceNumber: record.sequenceNumber,
    subSequenceNumber: 0,
    approximateArrivalTimestamp: arrivedAt,
  }));
  const checkpointer = recordingCheckpointer();
  const answered = new Promise<void>((resolve) => processor.processRecords({ records, checkpointer }, resolve));
  await sleep(100);

  const held = processor.progress();
  t.is(held.batch?.records, 3);
  t.is(held.batch?.settled, 2, 'the other policies settled meanwhile');
  t.is(held.batch?.oldestUnsettled?.partitionKey, 'slow-policy');
  t.is(held.batch?.oldestUnsettled?.sequenceNumber, records[1]!.sequenceNumber);
  t.true(processor.oldestUnsettledAgeMs() >= 5_000, 'aged from its arrival in the stream');

  // The progress item it would write now.
  const sent: unknown[] = [];
  const dynamodb = { send: async (command: unknown) => void sent.push(command) } as unknown as DynamoDBClient;
  let now = 1_000_000;
  const reporter = new ProgressReporter({ dynamodb, tableName: 'ledger', worker: 'task-1', source: () => processor.progress(), metrics, intervalMs: 10_000, logger: silentLogger, now: () => now });
  await reporter.tick();
  const put = sent[0] as UpdateItemCommand;
  t.true(put instanceof UpdateItemCommand, 'an update: a worker may not put or delete ledger items');
  t.is(put.input.Key?.policy?.S, progressKey('shardId-000000000000'));
  const itemOf = (command: unknown) => JSON.parse((command as UpdateItemCommand).input.ExpressionAttributeValues![':progress']!.S!) as ProgressItem;
  const item = itemOf(put);
  t.is(item.batch?.oldestUnsettled?.partitionKey, 'slow-policy');
  t.is(item.batch?.oldestUnsettled?.arrivedAt, arrivedAt);
  t.regex(item.worker, /^task-1\/\d+$/);
  t.is(item.updatedAt, now);

  iam.release();
  await answered;
  t.deepEqual(checkpointer.taken, [records[2]!.sequenceNumber]);
  t.is(processor.progress().batch, undefined);
  t.is(processor.oldestUnsettledAgeMs(), 0);
  t.is(metrics.distribution(METRIC.batchRecords)?.sum, 3);
  t.is(metrics.distribution(METRIC.batchDurationMs)?.count, 1);
  t.true(metrics.distribution(METRIC.recordAgeMs)!.min >= 5_000, 'record age at the outcome, from the arrival');

  // Settled: the item says so once (outcomes of the last minute), then nothing new until the window moves.
  now += 10_000;
  await reporter.tick();
  const settled = itemOf(sent[1]);
  t.is(settled.batch, undefined);
  t.deepEqual(settled.outcomes, { created: 3 }, 'outcomes since the reporter started, the two fast policies that settled before its first look included');
  now += 10_000;
  await reporter.tick();
  t.is(sent.length, 2, 'no news, no write');
  now += 60_000;
  await reporter.tick();
  t.deepEqual(itemOf(sent[2]).outcomes, {}, 'a minute later the window is empty');

  // The shard ends: said once more, then nothing.
  processor.shardEnded({ checkpointer }, () => undefined);
  now += 10_000;
  await reporter.tick();
  t.is(itemOf(sent[3]).state, 'shard-ended');
  now += 60_000;
  await reporter.tick();
  t.is(sent.length, 4);
  processor.stop();
});
