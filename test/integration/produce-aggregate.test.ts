// `ips produce --aggregate` against the local Kinesis emulator: it writes
// fewer Kinesis records than events, every Kinesis record is a KPL aggregate
// whose user records all hash into the shard it landed on (so the KCL keeps
// them all), and the send log says where each event went.
import test from 'ava';
import { GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-kinesis';
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import agg from 'aws-kinesis-agg';
import type { DeaggregatedUserRecord } from 'aws-kinesis-agg';
import { runCli } from '../../src/ops/cli.js';
import { hashKeyOf, inRange, listShardRanges } from '../../src/ops/aggregate.js';
import { readSendLog } from '../../src/ops/send-log.js';
import { kclDeaggregate } from '../support/kcl-deaggregate.js';
import { useTestStack } from '../../tools/harness/stack.js';

const stack = useTestStack(test, { shards: 3 });

interface StoredRecord {
  shardId: string;
  sequenceNumber: string;
  partitionKey: string;
  data: Buffer;
}

/** Every record in the shard, oldest first. */
async function readShard(kinesis: KinesisClient, streamName: string, shardId: string): Promise<StoredRecord[]> {
  const found: StoredRecord[] = [];
  let iterator = (await kinesis.send(new GetShardIteratorCommand({ StreamName: streamName, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
  while (iterator) {
    const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
    for (const record of page.Records ?? []) {
      found.push({ shardId, sequenceNumber: record.SequenceNumber!, partitionKey: record.PartitionKey!, data: Buffer.from(record.Data!) });
    }
    if ((page.Records ?? []).length === 0 && (page.MillisBehindLatest ?? 0) === 0) break;
    iterator = page.NextShardIterator;
  }
  return found;
}

function deaggregate(record: StoredRecord): DeaggregatedUserRecord[] {
  let users: DeaggregatedUserRecord[] | undefined;
  let failure: Error | undefined;
  agg.deaggregateSync({ partitionKey: record.partitionKey, sequenceNumber: record.sequenceNumber, data: record.data.toString('base64') }, true, (error, found) => {
    if (error) failure ??= error;
    else users = found;
  });
  if (failure || !users) throw failure ?? new Error('no user records');
  return users;
}

test('produce --aggregate writes KPL aggregates of at most n events, each holding only events of the shard it landed on', async (t) => {
  const { stack: local, config, clients } = stack();
  const kinesis = clients().kinesis;
  const dir = mkdtempSync(join(tmpdir(), 'ips-produce-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'sent.jsonl');
  const events = 300;
  const max = 10;

  const code = await runCli(['produce', '--aggregate', String(max), '--policies', '60', '--events', String(events), '--malformed-ratio', '0.05', '--seed', '11', '--out', log], local.env);
  t.is(code, 0);

  const shards = await listShardRanges(kinesis, config.streamName);
  t.is(shards.length, 3);
  const stored = (await Promise.all(shards.map((shard) => readShard(kinesis, config.streamName, shard.shardId)))).flat();
  t.true(stored.length < events, `${stored.length} Kinesis records for ${events} events`);
  t.true(stored.length >= Math.ceil(events / max));

  const delivered = new Map<string, DeaggregatedUserRecord[]>();
  for (const record of stored) {
    t.is(record.data.subarray(0, 4).toString('hex'), 'f3899ac2', 'a KPL aggregate');
    const shard = shards.find((s) => s.shardId === record.shardId)!;
    const users = deaggregate(record);
    t.true(users.length >= 1 && users.length <= max, `${users.length} user records in one aggregate`);
    for (const user of users) t.true(inRange(hashKeyOf(user.partitionKey), shard), `${user.partitionKey} hashes into ${shard.shardId}`);
    delivered.set(`${record.shardId}#${record.sequenceNumber}`, users);
  }
  t.is(
    [...delivered.values()].reduce((n, users) => n + users.length, 0),
    events,
    'every event is in exactly one aggregate',
  );

  // The send log names, for each event, the aggregate that carries it.
  const sent = readSendLog(log);
  t.is(sent.length, events);
  const claimed = new Map<string, number>();
  for (const { record, put } of sent) {
    const key = `${put.shardId}#${put.sequenceNumber}`;
    const users = delivered.get(key);
    t.truthy(users, `the aggregate ${key} is in the stream`);
    const at = users?.findIndex((user, i) => i >= (claimed.get(key) ?? 0) && user.partitionKey === record.partitionKey && user.data === record.data.toString('base64')) ?? -1;
    t.true(at >= 0, `${record.eventId ?? record.kind} is in ${key}, after the events logged before it`);
    claimed.set(key, at + 1);
  }

  // And the KCL itself, run for the shard's range, hands on every user record of an aggregate from each shard.
  for (const shard of shards) {
    const record = stored.find((r) => r.shardId === shard.shardId);
    if (!record) continue;
    const users = kclDeaggregate(record.data, [shard.startingHashKey, shard.endingHashKey]);
    t.deepEqual(
      users.map((u) => [u.partitionKey, u.data.toString('base64'), u.subSequenceNumber]),
      deaggregate(record).map((u) => [u.partitionKey, u.data, u.subSequenceNumber]),
    );
  }
});
