// What real producers do that a hand-written producer does not: KPL
// aggregates (many user records under one sequence number), eventIds reused,
// partition keys other than the policy name, and a policy's records moving to
// a child shard whose sequence numbers run lower than its parent's.
import test from 'ava';
import type { StreamRecord } from '../../src/pipeline/types.js';
import type { PolicyEvent } from '../../src/contract/event.js';
import { payloadHash } from '../../src/contract/payload-hash.js';
import { recordId } from '../../src/contract/record-id.js';
import { FakeIam } from '../support/fakes.js';
import { deleteRecord, doc, harness, streamRecords, upsertRecord } from '../support/pipeline.js';

/** User records of one KPL aggregate: one sequence number, subsequence numbers 0..n-1. */
function aggregate(items: { partitionKey: string; data: Buffer }[], sequenceNumber: string, shardId = 'shardId-000000000000'): StreamRecord[] {
  return items.map((item, index) => ({ shardId, sequenceNumber, subSequenceNumber: index, partitionKey: item.partitionKey, data: item.data, index, receivedAt: Date.now() }));
}

test('a reused eventId with another payload is rejected as event-id-conflict and dead-lettered, across batches', async (t) => {
  const h = harness();
  await h.pipeline.processBatch(streamRecords([upsertRecord('reuse-1', 'same-id', doc(1))]));
  const [second] = await h.pipeline.processBatch(streamRecords([upsertRecord('reuse-1', 'same-id', doc(2))]));
  t.is(second!.outcome, 'rejected');
  t.is(second!.reason, 'event-id-conflict');
  t.is([...h.deadLetters.letters.values()].filter((letter) => letter.reason === 'event-id-conflict').length, 1, 'dead-lettered');
  t.deepEqual(h.iam.policies.get('reuse-1')?.document, doc(1), 'the first payload stays applied');
});

test('a reused eventId with another payload is a conflict for the ledger too (cold cache)', async (t) => {
  const first = harness();
  await first.pipeline.processBatch(streamRecords([upsertRecord('reuse-2', 'id-2', doc(1))]));
  const cold = harness({ ledger: first.ledger, iam: first.iam });
  const [settled] = await cold.pipeline.processBatch(streamRecords([upsertRecord('reuse-2', 'id-2', doc(2))]));
  t.is(settled!.outcome, 'rejected');
  t.is(settled!.reason, 'event-id-conflict');
});

test('a reused eventId with another payload in the same batch is a conflict; the first is applied', async (t) => {
  const h = harness();
  const settlements = await h.pipeline.processBatch(streamRecords([upsertRecord('reuse-3', 'id-3', doc(1)), upsertRecord('reuse-3', 'id-3', doc(2))]));
  t.deepEqual(
    settlements.map((s) => [s.outcome, s.reason]),
    [
      ['created', undefined],
      ['rejected', 'event-id-conflict'],
    ],
  );
  t.deepEqual(h.iam.policies.get('reuse-3')?.document, doc(1));
});

test('a producer retry (same eventId, same payload) stays a duplicate, warm or cold', async (t) => {
  const h = harness();
  await h.pipeline.processBatch(streamRecords([upsertRecord('retry-1', 'r-1', doc(1))]));
  const [warm] = await h.pipeline.processBatch(streamRecords([upsertRecord('retry-1', 'r-1', doc(1))]));
  t.is(warm!.outcome, 'duplicate');
  const cold = harness({ ledger: h.ledger, iam: h.iam });
  const [fromLedger] = await cold.pipeline.processBatch(streamRecords([upsertRecord('retry-1', 'r-1', doc(1))]));
  t.is(fromLedger!.outcome, 'duplicate');
  t.is(h.deadLetters.letters.size + cold.deadLetters.letters.size, 0);
});

test('a partition key other than the policy name is rejected as partition-key-mismatch and dead-lettered', async (t) => {
  const h = harness();
  const record = upsertRecord('pk-1', 'pk-e1', doc(1));
  const [settled] = await h.pipeline.processBatch(streamRecords([{ ...record, partitionKey: 'some-other-key' }]));
  t.is(settled!.outcome, 'rejected');
  t.is(settled!.reason, 'partition-key-mismatch');
  t.is([...h.deadLetters.letters.values()][0]?.reason, 'partition-key-mismatch');
  t.false(h.iam.policies.has('pk-1'));
});

test("after a reshard, a child record whose sequence number is lower than the parent's last one is applied, not dropped", async (t) => {
  const parent = 'shardId-000000000000';
  const child = 'shardId-000000000002';
  const onParent = harness();
  await onParent.pipeline.processBatch(aggregate([upsertRecord('moved-1', 'm-1', doc(1))], '900000', parent));
  const onChild = harness({ ledger: onParent.ledger, iam: onParent.iam, lineage: [parent] });
  const [settled] = await onChild.pipeline.processBatch(aggregate([upsertRecord('moved-1', 'm-2', doc(2))], '100', child));
  t.is(settled!.outcome, 'updated', 'the later event on the child shard takes effect');
  t.deepEqual(onParent.iam.policies.get('moved-1')?.document, doc(2));

  // A replay of the parent after the child moved on: its records are behind the position.
  const replayParent = harness({ ledger: onParent.ledger, iam: onParent.iam });
  const [replayed] = await replayParent.pipeline.processBatch(aggregate([upsertRecord('moved-1', 'm-1-replayed', doc(1))], '900000', parent));
  t.is(replayed!.outcome, 'duplicate', 'the parent lies behind the child in the lineage');
  t.deepEqual(onParent.iam.policies.get('moved-1')?.document, doc(2), 'no roll-back');
});

test("one aggregate: a policy's successive revisions apply the last, and a redelivery of the aggregate is all duplicates", async (t) => {
  const h = harness();
  const records = aggregate([upsertRecord('agg-1', 'a-1', doc(1), 1), upsertRecord('agg-1', 'a-2', doc(2), 2), upsertRecord('agg-1', 'a-3', doc(3), 3)], '5000');
  const first = await h.pipeline.processBatch(records);
  t.deepEqual(
    first.map((s) => s.outcome),
    ['superseded', 'superseded', 'created'],
  );
  t.deepEqual(h.iam.policies.get('agg-1')?.document, doc(3));
  // A restart after a checkpoint at sequence 5000 (subsequence 0) delivers subsequences 1..2 again.
  const cold = harness({ ledger: h.ledger, iam: h.iam });
  const again = await cold.pipeline.processBatch(records.slice(1).map((record, index) => ({ ...record, index })));
  t.deepEqual(
    again.map((s) => s.outcome),
    ['duplicate', 'duplicate'],
  );
  t.is(h.iam.writes.length, 1);
});

test('one aggregate with many policies, bad and good user records: each bad one is its own dead letter', async (t) => {
  const h = harness();
  const records = aggregate(
    [upsertRecord('mix-1', 'x-1', doc(1)), { partitionKey: 'mix-bad', data: Buffer.from('{not json') }, upsertRecord('mix-2', 'x-2', doc(2)), { partitionKey: 'mix-bad', data: Buffer.from('[]') }],
    '7000',
  );
  const settlements = await h.pipeline.processBatch(records);
  t.deepEqual(
    settlements.map((s) => s.outcome),
    ['created', 'rejected', 'created', 'rejected'],
  );
  t.deepEqual([...h.deadLetters.letters.keys()].sort(), [recordId(records[1]!), recordId(records[3]!)].sort());
  t.deepEqual([...h.deadLetters.letters.keys()].sort(), ['shardId-000000000000#7000#1', 'shardId-000000000000#7000#3']);
});

test('an upsert followed by a delete of an attached policy in one batch: the upsert takes effect, the delete keeps the policy', async (t) => {
  const iam = new FakeIam();
  const h = harness({ iam });
  await h.pipeline.processBatch(streamRecords([upsertRecord('kept-1', 'k-1', doc(1))]));
  iam.attached.add('kept-1');
  const settlements = await h.pipeline.processBatch(streamRecords([upsertRecord('kept-1', 'k-2', doc(2)), deleteRecord('kept-1', 'k-3')]));
  t.deepEqual(
    settlements.map((s) => s.outcome),
    ['updated', 'retained-in-use'],
  );
  t.deepEqual(iam.policies.get('kept-1')?.document, doc(2), 'the fold: B applied, then the delete kept the policy');
});

test('a producer retry that comes after more events than the ledger item remembers is still a duplicate, and a reuse still a conflict', async (t) => {
  // 40 events of one policy, 8 per batch, all but each batch's last superseded:
  // they leave the entry's window of 32 eventIds. The producer then retries
  // the first (same eventId, same payload) as a new record, and reuses the
  // second's eventId for another document: applied, either would roll the policy back.
  const h = harness();
  const events = Array.from({ length: 40 }, (_, i) => upsertRecord('window-1', `w-${i}`, doc(i)));
  for (let i = 0; i < 40; i += 8) await h.pipeline.processBatch(streamRecords(events.slice(i, i + 8)));
  t.deepEqual(h.iam.policies.get('window-1')?.document, doc(39));
  t.is(h.ledger.entries.get('window-1')?.events.length, 32);
  // A new child (cold cache), as after a restart: the ledger answers.
  const fresh = harness({ ledger: h.ledger, iam: h.iam });
  const [retry, reuse] = await fresh.pipeline.processBatch(streamRecords([events[0]!, upsertRecord('window-1', 'w-1', doc('other'))]));
  t.is(retry!.outcome, 'duplicate');
  t.is(reuse!.outcome, 'rejected');
  t.is(reuse!.reason, 'event-id-conflict');
  t.deepEqual(h.iam.policies.get('window-1')?.document, doc(39), 'nothing rolled back');
});

test("eventIds archived by a worker still on an older epoch are kept under the entry's epoch: a retry read in that epoch is still a duplicate", async (t) => {
  // A re-apply replay of another shard moved the policy's entry to epoch 1; a
  // worker on this shard still works in epoch 0 and pushes events out of the window.
  const h = harness({ epoch: 1 });
  await h.pipeline.processBatch(streamRecords([upsertRecord('epoch-window-1', 'ew-first', doc('first'))]));
  const older = harness({ ledger: h.ledger, iam: h.iam, epoch: 0 });
  const events = Array.from({ length: 40 }, (_, i) => upsertRecord('epoch-window-1', `ew-${i}`, doc(i)));
  for (let i = 0; i < 40; i += 8) await older.pipeline.processBatch(streamRecords(events.slice(i, i + 8)));
  t.is(h.ledger.entries.get('epoch-window-1')?.epoch, 1, 'the entry kept its epoch');
  const fresh = harness({ ledger: h.ledger, iam: h.iam, epoch: 1 });
  const [retry] = await fresh.pipeline.processBatch(streamRecords([events[0]!]));
  t.is(retry!.outcome, 'duplicate');
  t.deepEqual(h.iam.policies.get('epoch-window-1')?.document, doc(39), 'nothing rolled back');
});

// Ledgers hold the hashes of applied events (32 per policy, and the archive):
// a hash that changed its value would turn every producer retry across an
// upgrade into an event-id-conflict. The value below is what ledgers
// already hold for this event.
test("an event's payload hash keeps the value the ledger already holds", (t) => {
  const event: PolicyEvent = {
    specVersion: '1',
    eventId: 'evt-1',
    type: 'policy.upserted',
    policyName: 'billing-read',
    policyPath: '/stream-managed/',
    document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] },
    tags: { team: 'billing' },
  };
  t.is(payloadHash(event), 'lRDwPnvD8phVOaZu6JVHis');
  t.not(payloadHash({ ...event, policyName: 'billing-write' }), payloadHash(event), "the hash covers the policy's name: one eventId under two policies is two events");
});
