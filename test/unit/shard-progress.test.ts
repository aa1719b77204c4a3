// The shard progress item `ips status` reads: its outcomes of the last minute
// count from the child's start, so what settles before the first report
// (10 s after the record processor starts) is counted too.
import test from 'ava';
import type { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { ProgressReporter } from '../../src/intake/progress.js';
import type { ProgressItem } from '../../src/intake/progress.js';
import type { ShardProgress } from '../../src/intake/record-processor.js';
import { METRIC, Metrics } from '../../src/metrics/metrics.js';
import { silentLogger } from '../support/pipeline.js';

function rig() {
  const sent: UpdateItemCommand[] = [];
  const dynamodb = { send: async (command: UpdateItemCommand) => void sent.push(command) } as unknown as DynamoDBClient;
  const metrics = new Metrics();
  const clock = { now: 1_000_000 };
  let state: ShardProgress['state'] = 'initializing';
  const source = () => ({ shardId: 'shardId-000000000000', state }) as ShardProgress;
  // Built as the child builds it: when the process starts, before the shard is known.
  const reporter = new ProgressReporter({ dynamodb, tableName: 'ledger', worker: 'task-1', source, metrics, intervalMs: 10_000, logger: silentLogger, now: () => clock.now });
  const items = () => sent.map((command) => JSON.parse(command.input.ExpressionAttributeValues![':progress']!.S!) as ProgressItem);
  return { reporter, metrics, clock, items, ready: () => (state = 'ready') };
}

test('outcomes settled before the first report are counted', async (t) => {
  const { reporter, metrics, clock, items, ready } = rig();
  ready();
  clock.now += 3_000;
  // The demo's first outcomes land within the child's first seconds.
  for (let i = 0; i < 4; i++) metrics.increment(METRIC.outcomes, { outcome: 'created', shard: 'shardId-000000000000' });
  metrics.increment(METRIC.outcomes, { outcome: 'updated', shard: 'shardId-000000000000' });
  clock.now += 7_000;
  await reporter.tick();
  t.deepEqual(items()[0]?.outcomes, { created: 4, updated: 1 });
  t.is(items()[0]?.windowMs, 10_000, 'the window runs from the child start');

  // A minute after they settled they leave the window.
  clock.now += 60_000;
  await reporter.tick();
  t.deepEqual(items().at(-1)?.outcomes, {});
});

test('outcomes settled while the shard was still initializing are counted at the first report', async (t) => {
  const { reporter, metrics, clock, items, ready } = rig();
  clock.now += 5_000;
  await reporter.tick(); // initializing: nothing written
  t.is(items().length, 0);
  metrics.increment(METRIC.outcomes, { outcome: 'deleted', shard: 'shardId-000000000000' });
  ready();
  clock.now += 5_000;
  await reporter.tick();
  t.deepEqual(items()[0]?.outcomes, { deleted: 1 });
});

test('outcomes of every account are counted: series that differ by account add up', async (t) => {
  const { reporter, metrics, clock, items, ready } = rig();
  ready();
  metrics.increment(METRIC.outcomes, { outcome: 'created', shard: 'shardId-000000000000' });
  metrics.increment(METRIC.outcomes, { outcome: 'created', shard: 'shardId-000000000000', account: '111111111111' });
  metrics.increment(METRIC.outcomes, { outcome: 'created', shard: 'shardId-000000000000', account: '222222222222' });
  metrics.increment(METRIC.outcomes, { outcome: 'rejected', reason: 'invalid-json', shard: 'shardId-000000000000' });
  metrics.increment(METRIC.outcomes, { outcome: 'rejected', reason: 'account-not-allowed', shard: 'shardId-000000000000', account: '333333333333' });
  clock.now += 10_000;
  await reporter.tick();
  t.deepEqual(items()[0]?.outcomes, { created: 3, rejected: 2 });
});
