// KPL aggregation as `ips produce --aggregate` writes it (src/ops/aggregate.ts):
// an aggregate reads back, with awslabs' own deaggregation, as the user
// records put in, in order; only records bound for one shard share an
// aggregate; aggregates stay within the Kinesis record limit; and a reshard
// between reading the shard map and putting never leaves a user record in an
// aggregate the KCL would drop.
import test from 'ava';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { ListShardsCommand, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import type { KinesisClient, PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import agg from 'aws-kinesis-agg';
import type { DeaggregatedUserRecord } from 'aws-kinesis-agg';
import { MAX_RECORD_BYTES, aggregateRecord, aggregatedSize, buildAggregate, hashKeyOf, inRange, planAggregates, putAggregate, putAggregated } from '../../src/ops/aggregate.js';
import type { ShardRange, UserRecord } from '../../src/ops/aggregate.js';
import { putRecords } from '../../src/ops/producer.js';

/** awslabs' deaggregation, with the checksum checked. */
function deaggregate(data: Buffer): DeaggregatedUserRecord[] {
  let found: DeaggregatedUserRecord[] | undefined;
  let failure: Error | undefined;
  agg.deaggregateSync({ partitionKey: 'outer', sequenceNumber: '1', data: data.toString('base64') }, true, (error, records) => {
    if (error) failure ??= error;
    else found = records;
  });
  if (failure || !found) throw failure ?? new Error('no user records');
  return found;
}

const plain = (records: { partitionKey: string; data: Buffer | string }[]) =>
  records.map((r) => ({ partitionKey: r.partitionKey, data: Buffer.isBuffer(r.data) ? r.data.toString('base64') : r.data }));

/** `count` shards splitting the hash key space evenly, as CreateStream does. */
function evenShards(count: number): ShardRange[] {
  const space = 2n ** 128n;
  return Array.from({ length: count }, (_, i) => ({
    shardId: `shardId-${String(i).padStart(12, '0')}`,
    startingHashKey: (space * BigInt(i)) / BigInt(count),
    endingHashKey: (space * BigInt(i + 1)) / BigInt(count) - 1n,
    open: true,
  }));
}

const userRecord = fc.record({
  partitionKey: fc.string({ minLength: 1, maxLength: 40, unit: 'binary' }),
  data: fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
});

test('the hash key is the MD5 of the partition key as a 128-bit number', (t) => {
  t.is(hashKeyOf('a'), 0x0cc175b9c0f1b6a831c399e269772661n);
  t.is(
    hashKeyOf('é'),
    BigInt(
      `0x${createHash('md5')
        .update(Buffer.from([0xc3, 0xa9]))
        .digest('hex')}`,
    ),
    'of the UTF-8 bytes',
  );
  t.true(hashKeyOf('\u{1F600}'.repeat(3)) < 2n ** 128n);
});

test('an aggregate deaggregates to the same user records, in order, with subsequence numbers 0..n-1', (t) => {
  fc.assert(
    fc.property(fc.array(userRecord, { minLength: 1, maxLength: 30 }), (records) => {
      const data = buildAggregate(records);
      t.is(data.subarray(0, 4).toString('hex'), 'f3899ac2', 'KPL magic bytes');
      t.is(data.length, aggregatedSize(records), 'the size is known before encoding');
      const users = deaggregate(data);
      t.deepEqual(plain(users), plain(records));
      t.deepEqual(
        users.map((u) => u.subSequenceNumber),
        records.map((_, i) => i),
      );
    }),
    { numRuns: 200 },
  );
});

test('partition keys that are integers or Object property names keep their own records', (t) => {
  // aws-kinesis-agg's RecordAggregator gets these wrong (its key table is a plain object).
  const keys = ['a', '5', '__proto__', 'hasOwnProperty', 'constructor', '0', 'a', '5', 'toString'];
  const records = keys.map((partitionKey, i) => ({ partitionKey, data: Buffer.from(`record ${i}`) }));
  t.deepEqual(plain(deaggregate(buildAggregate(records))), plain(records));
  t.deepEqual(plain(deaggregate(planAggregates(records, evenShards(1), 100)[0]!.data)), plain(records));
});

test('aggregateRecord routes the aggregate by its first record: same partition key, explicit hash key inside its range', (t) => {
  const records: UserRecord[] = [
    { partitionKey: 'reports-read', data: Buffer.from('{"bad json') },
    { partitionKey: 'reports-read', data: Buffer.from('{"specVersion":"1"}') },
  ];
  const outgoing = aggregateRecord(records);
  t.is(outgoing.partitionKey, 'reports-read');
  t.is(outgoing.explicitHashKey, hashKeyOf('reports-read').toString());
  t.deepEqual(plain(deaggregate(outgoing.data)), plain(records));
});

test('records for different shards never share an aggregate; each shard keeps its order; at most n per aggregate', (t) => {
  fc.assert(
    fc.property(fc.array(userRecord, { minLength: 1, maxLength: 120 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 25 }), (records, shardCount, max) => {
      const shards = evenShards(shardCount);
      const plan = planAggregates(records, shards, max);
      const seen: number[] = [];
      const lastOfShard = new Map<string, number>();
      for (const aggregate of plan) {
        const shard = shards.find((s) => s.shardId === aggregate.shardId)!;
        t.true(aggregate.members.length >= 1 && aggregate.members.length <= max);
        t.true(inRange(BigInt(aggregate.explicitHashKey), shard), 'routed into its shard');
        for (const m of aggregate.members) t.true(inRange(hashKeyOf(records[m]!.partitionKey), shard), 'every member hashes into the shard');
        t.true(aggregate.members[0]! > (lastOfShard.get(shard.shardId) ?? -1), "a shard's records in input order");
        t.deepEqual(
          aggregate.members,
          [...aggregate.members].sort((a, b) => a - b),
        );
        lastOfShard.set(shard.shardId, aggregate.members.at(-1)!);
        t.deepEqual(plain(deaggregate(aggregate.data)), plain(aggregate.members.map((m) => records[m]!)));
        seen.push(...aggregate.members);
      }
      t.deepEqual(
        seen.sort((a, b) => a - b),
        records.map((_, i) => i),
        'every record exactly once',
      );
    }),
    { numRuns: 150 },
  );
});

test('with n above their count, the records of each shard fill one aggregate', (t) => {
  const shards = evenShards(2);
  const records = Array.from({ length: 40 }, (_, i) => ({ partitionKey: `policy-${i % 10}`, data: Buffer.from(`event ${i}`) }));
  const plan = planAggregates(records, shards, 100);
  t.is(plan.length, new Set(records.map((r) => shards.find((s) => inRange(hashKeyOf(r.partitionKey), s))!.shardId)).size);
});

test('aggregates stay within the 1 MiB Kinesis record limit, partition key counted', (t) => {
  const partitionKey = 'k'.repeat(256);
  const records = Array.from({ length: 10 }, () => ({ partitionKey, data: Buffer.alloc(300_000, 7) }));
  const plan = planAggregates(records, evenShards(1), 1_000);
  t.deepEqual(
    plan.map((a) => a.members.length),
    [3, 3, 3, 1],
  );
  for (const aggregate of plan) t.true(aggregate.data.length + Buffer.byteLength(aggregate.partitionKey) <= MAX_RECORD_BYTES);
  // A record that fills a Kinesis record to the byte fits; one byte more does not.
  const single = (size: number) => [{ partitionKey: 'x', data: Buffer.alloc(size) }];
  let size = MAX_RECORD_BYTES - 1 - aggregatedSize(single(0));
  while (aggregatedSize(single(size)) + 1 > MAX_RECORD_BYTES) size--;
  while (aggregatedSize(single(size + 1)) + 1 <= MAX_RECORD_BYTES) size++;
  const [full] = planAggregates(single(size), evenShards(1), 1);
  t.is(full!.data.length + 1, MAX_RECORD_BYTES);
  t.throws(() => planAggregates(single(size + 1), evenShards(1), 1), { message: /does not fit in a Kinesis record/ });
  t.throws(() => buildAggregate(single(size + 1)), { message: /more than a Kinesis record holds/ });
});

/**
 * A Kinesis stand-in for the producer's two calls: ListShards answers with
 * `listed`, PutRecords routes each entry by its explicit hash key (or the MD5
 * of its partition key) over `routing`, as Kinesis does.
 */
function fakeKinesis(state: { listed: ShardRange[]; routing: ShardRange[] }) {
  const calls: PutRecordsRequestEntry[][] = [];
  let sequence = 1000n;
  const kinesis = {
    async send(command: unknown) {
      if (command instanceof ListShardsCommand) {
        return {
          Shards: state.listed.map((s) => ({
            ShardId: s.shardId,
            HashKeyRange: { StartingHashKey: String(s.startingHashKey), EndingHashKey: String(s.endingHashKey) },
            SequenceNumberRange: { StartingSequenceNumber: '1', ...(s.open ? {} : { EndingSequenceNumber: '2' }) },
          })),
        };
      }
      if (command instanceof PutRecordsCommand) {
        const entries = command.input.Records ?? [];
        calls.push(entries);
        return {
          Records: entries.map((entry) => {
            const key = entry.ExplicitHashKey !== undefined ? BigInt(entry.ExplicitHashKey) : hashKeyOf(entry.PartitionKey!);
            const shard = state.routing.find((s) => s.open && inRange(key, s))!;
            return { ShardId: shard.shardId, SequenceNumber: String(sequence++) };
          }),
        };
      }
      throw new Error(`unexpected command ${String(command)}`);
    },
  };
  return { kinesis: kinesis as unknown as KinesisClient, calls };
}

test('putRecords keeps each call within 500 records and 5 MiB, and passes explicit hash keys', async (t) => {
  const shards = evenShards(1);
  const { kinesis, calls } = fakeKinesis({ listed: shards, routing: shards });
  const big = Array.from({ length: 12 }, (_, i) => ({ partitionKey: `p${i}`, data: Buffer.alloc(1_000_000), explicitHashKey: '5' }));
  const puts = await putRecords(kinesis, 'stream', big);
  t.is(puts.length, 12);
  t.deepEqual(
    calls.map((c) => c.length),
    [5, 5, 2],
  );
  t.true(calls.every((c) => c.every((entry) => entry.ExplicitHashKey === '5')));
  const small = Array.from({ length: 1_200 }, (_, i) => ({ partitionKey: `p${i}`, data: Buffer.from('x') }));
  calls.length = 0;
  await putRecords(kinesis, 'stream', small);
  t.deepEqual(
    calls.map((c) => c.length),
    [500, 500, 200],
  );
  t.true(
    calls.every((c) => c.every((entry) => entry.ExplicitHashKey === undefined)),
    'plain records are routed by their partition key',
  );
});

test('putAggregated gives each user record its aggregate sequence number and its place as subsequence number', async (t) => {
  const shards = evenShards(2);
  const { kinesis, calls } = fakeKinesis({ listed: shards, routing: shards });
  const records = Array.from({ length: 30 }, (_, i) => ({ partitionKey: `policy-${i % 6}`, data: Buffer.from(`event ${i}`) }));
  const put = await putAggregated(kinesis, 'stream', records, { maxRecords: 4 });
  const entries = calls.flat();
  t.is(put.kinesisRecords, entries.length);
  t.true(entries.length < records.length);
  put.results.forEach((result, i) => {
    t.is(result.partitionKey, records[i]!.partitionKey);
    t.true(inRange(hashKeyOf(result.partitionKey), shards.find((s) => s.shardId === result.shardId)!));
  });
  // Per aggregate (sequence number): its user records in subsequence order are the records put, in order.
  const bySequence = new Map<string, { sub: number; index: number }[]>();
  for (const [index, r] of put.results.entries()) bySequence.set(r.sequenceNumber, [...(bySequence.get(r.sequenceNumber) ?? []), { sub: r.subSequenceNumber, index }]);
  t.is(bySequence.size, entries.length);
  for (const members of bySequence.values()) {
    t.deepEqual(
      members.map((m) => m.sub),
      members.map((_, i) => i),
    );
  }
});

test('after a reshard, an aggregate that landed where not all its records belong is put again on the new shard map', async (t) => {
  const [parent] = evenShards(1);
  const half = 2n ** 127n;
  const children: ShardRange[] = [
    { shardId: 'shardId-000000000001', startingHashKey: 0n, endingHashKey: half - 1n, open: true },
    { shardId: 'shardId-000000000002', startingHashKey: half, endingHashKey: 2n ** 128n - 1n, open: true },
  ];
  const after = [{ ...parent!, open: false }, ...children];
  // The producer read the map before the split; Kinesis already routes by the children.
  const state = { listed: [parent!], routing: after };
  const { kinesis, calls } = fakeKinesis(state);
  const records = Array.from({ length: 20 }, (_, i) => ({ partitionKey: `policy-${i}`, data: Buffer.from(`event ${i}`) }));
  state.listed = after; // what ListShards answers from now on
  const put = await putAggregated(kinesis, 'stream', records, { maxRecords: 100, shards: [parent!] });
  t.is(calls.length, 2, 'one put on the stale map, one for the records that strayed');
  t.is(put.kinesisRecords, 3);
  for (const [i, result] of put.results.entries()) {
    const shard = after.find((s) => s.shardId === result.shardId)!;
    t.true(shard.open && inRange(hashKeyOf(records[i]!.partitionKey), shard), `${records[i]!.partitionKey} ends in an aggregate its shard keeps`);
  }
  t.deepEqual(put.shards, after, 'the fresh map is handed back for the next call');
});

test('putAggregate puts one aggregate of records for one shard and refuses records of two shards', async (t) => {
  const shards = evenShards(2);
  const { kinesis, calls } = fakeKinesis({ listed: shards, routing: shards });
  const key = 'reports-read';
  const results = await putAggregate(kinesis, 'stream', [
    { partitionKey: key, data: Buffer.from('not json') },
    { partitionKey: key, data: Buffer.from('{"specVersion":"1"}') },
  ]);
  t.is(calls.length, 1);
  t.is(calls[0]!.length, 1);
  t.deepEqual(
    results.map((r) => r.subSequenceNumber),
    [0, 1],
  );
  t.is(results[0]!.sequenceNumber, results[1]!.sequenceNumber);
  const other = Array.from({ length: 50 }, (_, i) => `p-${i}`).find((pk) => !inRange(hashKeyOf(pk), shards.find((s) => inRange(hashKeyOf(key), s))!))!;
  await t.throwsAsync(
    putAggregate(kinesis, 'stream', [
      { partitionKey: key, data: Buffer.from('a') },
      { partitionKey: other, data: Buffer.from('b') },
    ]),
    { message: /belong to 2 shards/ },
  );
});
