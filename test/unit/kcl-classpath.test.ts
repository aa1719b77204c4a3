// The daemon's classpath (kcl/lib, from kcl/pom.xml) must deaggregate what
// real producers write: KPL aggregates. The KCL's KPL message classes refuse a
// protobuf runtime older than the one they were generated with, and the daemon
// then exits on the first aggregated record. These tests run the KCL's own
// deaggregation (test/support/KclDeaggregate.java) on kcl/lib over aggregates
// as `ips produce --aggregate` writes them (aws-kinesis-agg's protobuf type,
// src/ops/aggregate.ts), so a runtime older than the generated code fails
// here, not in production. KCL_LIB=<folder> points them at another classpath
// (KCL_LIB=/tmp/old-lib with protobuf-java 4.27.5 fails both tests).
import test from 'ava';
import { buildAggregate, hashKeyOf } from '../../src/ops/aggregate.js';
import type { UserRecord } from '../../src/ops/aggregate.js';
import { kclDeaggregate } from '../support/kcl-deaggregate.js';
import { aggregateWithHashKeys } from '../support/kpl.js';

test('the daemon classpath deaggregates a KPL aggregate into its user records, in order', (t) => {
  const records: UserRecord[] = [
    { partitionKey: 'reports-read', data: Buffer.from(JSON.stringify({ specVersion: '1', eventId: 'e1', type: 'policy.deleted', policy: { name: 'reports-read' } })) },
    { partitionKey: 'reports-read', data: Buffer.from('{"not":"a contract event"}') },
    { partitionKey: 'billing-admin', data: Buffer.from([0xff, 0xfe, 0x00, 0x01]) },
    { partitionKey: 'politique-é', data: Buffer.from('données ✓', 'utf8') },
    { partitionKey: '42', data: Buffer.from('an integer-like key') },
    { partitionKey: 'reports-read', data: Buffer.alloc(0) },
  ];
  const users = kclDeaggregate(buildAggregate(records));
  t.deepEqual(
    users.map((user) => ({ partitionKey: user.partitionKey, data: user.data.toString('base64') })),
    records.map((record) => ({ partitionKey: record.partitionKey, data: record.data.toString('base64') })),
  );
  t.deepEqual(
    users.map((user) => user.subSequenceNumber),
    [0, 1, 2, 3, 4, 5],
  );
});

// The KCL checks each user record's hash key (the MD5 of its partition key)
// against the shard's range, and one record outside it makes the KCL drop the
// whole aggregate, records inside the range included. Hence a producer
// aggregates only user records bound for the same shard.
test('the KCL hands on an aggregate whose hash keys lie in the shard range, and drops all of one that strays', (t) => {
  const half = 2n ** 127n;
  const records: UserRecord[] = Array.from({ length: 12 }, (_, i) => ({ partitionKey: `policy-${i}`, data: Buffer.from(`event ${i}`) }));
  const lower = records.filter((record) => hashKeyOf(record.partitionKey) < half);
  t.true(lower.length > 1 && lower.length < records.length, 'the sample spans both halves');
  const range: [bigint, bigint] = [0n, half - 1n];
  t.deepEqual(
    kclDeaggregate(buildAggregate(lower), range).map((user) => user.partitionKey),
    lower.map((record) => record.partitionKey),
    'every user record of a one-shard aggregate is handed on',
  );
  t.deepEqual(kclDeaggregate(buildAggregate(records), range), [], 'an aggregate with one stray user record is dropped whole');
});

// The KCL checks a user record's effective hash key: its explicit hash key
// when it has one, else the MD5 of its partition key. A user record whose
// explicit hash key lies in the shard's range is handed on whatever its
// partition key, so the KCL's check does not keep a policy's records on the
// policy's shard: the record processor checks the partition key's hash itself
// (reason hash-key-mismatch, contract/decode.ts).
test('the KCL hands on a user record whose explicit hash key lies in the shard range though its partition key hashes outside it', (t) => {
  const half = 2n ** 127n;
  const names = Array.from({ length: 20 }, (_, i) => `policy-${i}`);
  const inside = names.find((name) => hashKeyOf(name) < half)!;
  const outside = names.find((name) => hashKeyOf(name) >= half)!;
  const record = aggregateWithHashKeys([
    { partitionKey: inside, data: Buffer.from('routed by its partition key') },
    { partitionKey: outside, data: Buffer.from('routed by its explicit hash key'), explicitHashKey: 5n },
  ]);
  t.deepEqual(
    kclDeaggregate(record, [0n, half - 1n]).map((user) => user.partitionKey),
    [inside, outside],
    'both user records reach the record processor of the lower shard',
  );
});
