// The shard pipeline's behaviour, pinned with fakes for the ledger and IAM.
import test from 'ava';
import fc from 'fast-check';
import type { PolicyEvent } from '../../src/contract/event.js';
import type { IamOutcome } from '../../src/contract/outcome.js';
import { CheckpointTracker } from '../../src/pipeline/checkpoint-tracker.js';
import { FakeIam } from '../support/fakes.js';
import { deleteRecord, doc, harness, streamRecords, upsertRecord } from '../support/pipeline.js';
import { RejectedEventError, TransientError } from '../../src/faults/errors.js';

test('final IAM state equals the fold of the stream, whatever the delays and batch boundaries', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ policy: fc.integer({ min: 0, max: 5 }), remove: fc.boolean(), variant: fc.integer({ min: 0, max: 3 }) }), { minLength: 1, maxLength: 60 }),
      fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 10 }),
      fc.infiniteStream(fc.integer({ min: 0, max: 3 })),
      async (ops, cuts, delays) => {
        const delayIterator = delays[Symbol.iterator]();
        const iam = new FakeIam(() => delayIterator.next().value as number);
        const h = harness({ iam, maxConcurrentPolicies: 3 });
        const items = ops.map((op, i) => (op.remove ? deleteRecord(`p${op.policy}`, `e${i}`) : upsertRecord(`p${op.policy}`, `e${i}`, doc(op.variant))));
        // Expected: apply in stream order.
        const expected = new Map<string, unknown>();
        for (const op of ops) {
          if (op.remove) expected.delete(`p${op.policy}`);
          else expected.set(`p${op.policy}`, doc(op.variant));
        }
        let offset = 0;
        let cut = 0;
        let settled = 0;
        while (offset < items.length) {
          const size = cuts[cut++ % cuts.length]!;
          const batch = streamRecords(items.slice(offset, offset + size));
          offset += size;
          const settlements = await h.pipeline.processBatch(batch);
          settled += settlements.length;
        }
        const actual = new Map([...iam.policies].map(([name, value]) => [name, value.document]));
        return settled === items.length && JSON.stringify([...actual].sort()) === JSON.stringify([...expected].sort());
      },
    ),
    { numRuns: 60 },
  );
  t.pass();
});

test('IAM writes for one policy happen in stream order across batches', async (t) => {
  const iam = new FakeIam(() => Math.floor(Math.random() * 3));
  const h = harness({ iam });
  const all: string[] = [];
  for (let b = 0; b < 10; b++) {
    const items = Array.from({ length: 3 }, (_, i) => {
      const id = `b${b}-${i}`;
      return upsertRecord(`p${i}`, id, doc(id));
    });
    all.push(...items.map((_, i) => `b${b}-${i}`));
    await h.pipeline.processBatch(streamRecords(items));
  }
  for (let p = 0; p < 3; p++) {
    const order = iam.writes.filter((w) => w.policy === `p${p}`).map((w) => Number(w.eventId.split('-')[0]!.slice(1)));
    t.deepEqual(
      order,
      [...order].sort((a, b) => a - b),
      `p${p} in order`,
    );
    t.is(order.length, 10);
  }
});

test('different policies run concurrently up to the bound, never beyond', async (t) => {
  const iam = new FakeIam(() => 15);
  const h = harness({ iam, maxConcurrentPolicies: 4 });
  await h.pipeline.processBatch(streamRecords(Array.from({ length: 24 }, (_, i) => upsertRecord(`p${i}`, `e${i}`, doc(i)))));
  t.is(iam.maxInFlight, 4);
});

test('coalescing: at most one IAM write per policy per batch; earlier events are superseded', async (t) => {
  const h = harness();
  const items = [];
  for (let round = 0; round < 10; round++) for (let p = 0; p < 5; p++) items.push(upsertRecord(`p${p}`, `e${round}-${p}`, doc(`${round}-${p}`)));
  const records = streamRecords(items);
  const settlements = await h.pipeline.processBatch(records);
  t.is(h.iam.writes.length, 5);
  t.is(settlements.filter((s) => s.outcome === 'superseded').length, 45);
  t.is(settlements.filter((s) => s.outcome === 'created').length, 5);
  // A redelivery of the same records is all duplicates, without IAM or ledger calls.
  const ledgerCalls = h.ledger.calls;
  const again = await h.pipeline.processBatch(records);
  t.true(again.every((s) => s.outcome === 'duplicate'));
  t.is(h.ledger.calls, ledgerCalls, 'a warm cache answers redeliveries without the ledger');
  t.is(h.iam.writes.length, 5);
});

test('every record gets exactly one outcome: the sum equals the records delivered', async (t) => {
  const h = harness();
  const items = [
    upsertRecord('a', 'e1', doc(1)),
    { partitionKey: 'junk', data: Buffer.from('not json') },
    upsertRecord('a', 'e1', doc(1)), // producer retry in the same batch
    deleteRecord('b', 'e2'),
    upsertRecord('c', 'e3', doc(3), 5),
    upsertRecord('c', 'e4', doc(4), 4), // late revision
  ];
  const settlements = await h.pipeline.processBatch(streamRecords(items));
  t.is(settlements.length, items.length);
  t.deepEqual(
    settlements.map((s) => s.outcome),
    ['created', 'rejected', 'duplicate', 'absent', 'created', 'stale'],
  );
  t.is(h.deadLetters.letters.size, 1);
  t.is([...h.deadLetters.letters.values()][0]!.reason, 'invalid-json');
});

test('a producer retry in a later batch is a duplicate; a late revision is stale; neither calls IAM', async (t) => {
  const h = harness();
  await h.pipeline.processBatch(streamRecords([upsertRecord('a', 'e1', doc(1), 3), upsertRecord('b', 'e2', doc(2), 4)]));
  const writes = h.iam.writes.length;
  const [retry, late] = await h.pipeline.processBatch(streamRecords([upsertRecord('a', 'e1', doc(1), 3), upsertRecord('b', 'e9', doc(9), 3)]));
  t.is(retry!.outcome, 'duplicate');
  t.is(late!.outcome, 'stale');
  t.is(h.iam.writes.length, writes);
});

test('a permanent IAM refusal of the last event falls back to the one before it', async (t) => {
  const iam = new FakeIam();
  const applier = {
    apply: (event: PolicyEvent): Promise<IamOutcome> => (event.eventId === 'bad' ? Promise.reject(new RejectedEventError('iam:MalformedPolicyDocument', 'no')) : iam.apply(event)),
  };
  const h = harness({ iam, applier });
  const settlements = await h.pipeline.processBatch(streamRecords([upsertRecord('a', 'good', doc(1)), upsertRecord('a', 'bad', doc(2))]));
  t.deepEqual(
    settlements.map((s) => s.outcome),
    ['created', 'rejected'],
  );
  t.is(settlements[1]!.reason, 'iam:MalformedPolicyDocument');
  t.deepEqual(iam.policies.get('a')?.document, doc(1));
  t.is(h.deadLetters.letters.size, 1);
});

test('a transient fault is retried until it settles; it is never rejected', async (t) => {
  const iam = new FakeIam();
  let failures = 5;
  const applier = {
    apply: (event: PolicyEvent) => (failures-- > 0 ? Promise.reject(new TransientError('Throttling', 'slow down')) : iam.apply(event)),
  };
  const h = harness({ iam, applier });
  const settlements = await h.pipeline.processBatch(streamRecords([upsertRecord('a', 'e1', doc(1)), upsertRecord('b', 'e2', doc(2))]));
  t.deepEqual(settlements.map((s) => s.outcome).sort(), ['created', 'created']);
  t.true(h.metrics.total('transient_retries') >= 5);
});

test('the checkpoint never passes a record that has no outcome yet', async (t) => {
  // Policy "slow" fails transiently several times while the others settle.
  const iam = new FakeIam();
  let failures = 8;
  const applier = {
    apply: (event: PolicyEvent) => (event.policyName === 'slow' && failures-- > 0 ? Promise.reject(new TransientError('Throttling', 'slow')) : iam.apply(event)),
  };
  const h = harness({ iam, applier });
  const records = streamRecords([upsertRecord('fast1', 'a', doc(1)), upsertRecord('slow', 'b', doc(2)), upsertRecord('fast2', 'c', doc(3)), upsertRecord('fast3', 'd', doc(4))]);
  const tracker = new CheckpointTracker(records);
  const slowIndex = 1;
  let slowSettled = false;
  const settlements = await h.pipeline.processBatch(records);
  for (const settlement of h.settledOrder) {
    tracker.markSettled(settlement.record.index);
    if (settlement.record.index === slowIndex) slowSettled = true;
    const safe = tracker.safePosition()?.sequenceNumber;
    if (!slowSettled && safe !== undefined) t.true(BigInt(safe) < BigInt(records[slowIndex]!.sequenceNumber), 'never past the unsettled record');
  }
  t.is(h.settledOrder.at(-1)!.record.index, slowIndex, 'the slow policy settled last');
  t.is(tracker.safePosition(), records.at(-1));
  t.is(settlements.length, 4);
});

test('checkpoint tracker: the safe point is the end of the settled prefix (property)', (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 50 }).chain((n) => fc.tuple(fc.constant(n), fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }))),
      ([n, order]) => {
        const sequences = Array.from({ length: n }, (_, i) => ({ shardId: 's', sequenceNumber: String(1000 + Math.floor(i / 3)), subSequenceNumber: i % 3 }));
        const tracker = new CheckpointTracker(sequences);
        const settled = new Set<number>();
        for (const index of order) {
          tracker.markSettled(index);
          settled.add(index);
          let prefix = 0;
          while (settled.has(prefix)) prefix++;
          if (tracker.safePosition() !== (prefix === 0 ? undefined : sequences[prefix - 1])) return false;
        }
        return tracker.complete;
      },
    ),
  );
  t.pass();
});

test('oversized, malformed and admin-granting documents are rejected before any IAM or ledger call', async (t) => {
  const h = harness();
  const big = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: Array.from({ length: 400 }, (_, i) => `arn:aws:s3:::b-${i}/*`) }] };
  const settlements = await h.pipeline.processBatch(
    streamRecords([
      upsertRecord('big', 'e1', big),
      upsertRecord('bad', 'e2', { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Resource: '*' }] }),
      upsertRecord('admin', 'e3', { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }),
    ]),
  );
  t.deepEqual(
    settlements.map((s) => s.reason),
    ['document-too-large', 'malformed-document', 'admin-grant-refused'],
  );
  t.is(h.iam.calls.length, 0);
  t.is(h.ledger.calls, 0);
  t.is(h.deadLetters.letters.size, 3);
});
