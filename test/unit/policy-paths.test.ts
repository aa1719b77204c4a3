// IAM names are unique per account whatever the path, and IAM cannot move a
// policy: the ledger remembers where each policy lives.
import test from 'ava';
import { doc, harness, streamRecords } from '../support/pipeline.js';

function event(type: 'policy.upserted' | 'policy.deleted', policy: string, eventId: string, options: { path?: string; variant?: number } = {}) {
  const body = {
    specVersion: '1',
    eventId,
    type,
    policy: { name: policy, ...(options.path !== undefined ? { path: options.path } : {}) },
    ...(type === 'policy.upserted' ? { document: doc(options.variant ?? 1) } : {}),
  };
  return { partitionKey: policy, data: Buffer.from(JSON.stringify(body)) };
}

test('a delete that names no path deletes the policy where the ledger knows it lives', async (t) => {
  const h = harness();
  await h.pipeline.processBatch(streamRecords([event('policy.upserted', 'team-policy', 'tp-1', { path: '/stream-managed/team-x/' })]));
  const [deleted] = await h.pipeline.processBatch(streamRecords([event('policy.deleted', 'team-policy', 'tp-2')]));
  t.is(deleted!.outcome, 'deleted');
  t.false(h.iam.policies.has('team-policy'), 'the policy under the deeper path is gone');
  t.is(h.ledger.entries.get('team-policy')?.state, 'deleted');
});

test('an upsert that names no path updates the policy where it lives', async (t) => {
  const h = harness();
  await h.pipeline.processBatch(streamRecords([event('policy.upserted', 'team-policy-2', 'tq-1', { path: '/stream-managed/team-x/' })]));
  const [updated] = await h.pipeline.processBatch(streamRecords([event('policy.upserted', 'team-policy-2', 'tq-2', { variant: 2 })]));
  t.is(updated!.outcome, 'updated');
  t.is(h.iam.policies.get('team-policy-2')?.path, '/stream-managed/team-x/');
  t.deepEqual(h.iam.policies.get('team-policy-2')?.document, doc(2));
});

test("an upsert that names another path than the existing policy's is rejected as path-conflict", async (t) => {
  const h = harness();
  await h.pipeline.processBatch(streamRecords([event('policy.upserted', 'team-policy-3', 'tr-1', { path: '/stream-managed/team-x/' })]));
  const [moved] = await h.pipeline.processBatch(streamRecords([event('policy.upserted', 'team-policy-3', 'tr-2', { path: '/stream-managed/team-y/', variant: 2 })]));
  t.is(moved!.outcome, 'rejected');
  t.is(moved!.reason, 'path-conflict');
  t.deepEqual(h.iam.policies.get('team-policy-3')?.document, doc(1), 'unchanged');
  t.is([...h.deadLetters.letters.values()][0]?.reason, 'path-conflict');
});

test('the ledger keeps the desired state it last applied: path, document, tags', async (t) => {
  const h = harness();
  await h.pipeline.processBatch(streamRecords([event('policy.upserted', 'kept-state', 'ks-1', { path: '/stream-managed/team-z/', variant: 3 })]));
  t.deepEqual(h.ledger.entries.get('kept-state')?.desired, { path: '/stream-managed/team-z/', document: doc(3), tags: {} });
  await h.pipeline.processBatch(streamRecords([event('policy.deleted', 'kept-state', 'ks-2')]));
  t.deepEqual(h.ledger.entries.get('kept-state')?.desired, { path: '/stream-managed/team-z/' });
});

test('a new policy: an upsert with no path then one naming a deeper path in one batch acts as in order (created at the prefix, then path-conflict)', async (t) => {
  const h = harness();
  const settlements = await h.pipeline.processBatch(
    streamRecords([event('policy.upserted', 'order-1', 'o1-1'), event('policy.upserted', 'order-1', 'o1-2', { path: '/stream-managed/team-a/', variant: 2 })]),
  );
  t.deepEqual(
    settlements.map((s) => [s.outcome, s.reason]),
    [
      ['created', undefined],
      ['rejected', 'path-conflict'],
    ],
  );
  t.is(h.iam.policies.get('order-1')?.path, '/stream-managed/');
});

test('a delete then an upsert naming another path in one batch: deleted, then created under the new path', async (t) => {
  const h = harness();
  await h.pipeline.processBatch(streamRecords([event('policy.upserted', 'order-2', 'o2-1', { path: '/stream-managed/team-a/' })]));
  const settlements = await h.pipeline.processBatch(
    streamRecords([event('policy.deleted', 'order-2', 'o2-2'), event('policy.upserted', 'order-2', 'o2-3', { path: '/stream-managed/team-b/', variant: 3 })]),
  );
  t.deepEqual(
    settlements.map((s) => s.outcome),
    ['deleted', 'created'],
  );
  t.is(h.iam.policies.get('order-2')?.path, '/stream-managed/team-b/');
  t.deepEqual(h.ledger.entries.get('order-2')?.desired?.path, '/stream-managed/team-b/');
});

test('a delete then an upsert with no path in one batch: the policy comes back at the prefix, as in order', async (t) => {
  const h = harness();
  await h.pipeline.processBatch(streamRecords([event('policy.upserted', 'order-3', 'o3-1', { path: '/stream-managed/team-a/' })]));
  const settlements = await h.pipeline.processBatch(streamRecords([event('policy.deleted', 'order-3', 'o3-2'), event('policy.upserted', 'order-3', 'o3-3', { variant: 3 })]));
  t.deepEqual(
    settlements.map((s) => s.outcome),
    ['deleted', 'created'],
  );
  t.is(h.iam.policies.get('order-3')?.path, '/stream-managed/');
});

test('events that all act at one path still coalesce: one IAM step for the batch', async (t) => {
  const h = harness();
  await h.pipeline.processBatch(streamRecords([event('policy.upserted', 'order-4', 'o4-1', { path: '/stream-managed/team-a/' })]));
  const settlements = await h.pipeline.processBatch(
    streamRecords([
      event('policy.upserted', 'order-4', 'o4-2', { variant: 2 }),
      event('policy.upserted', 'order-4', 'o4-3', { path: '/stream-managed/team-a/', variant: 3 }),
      event('policy.upserted', 'order-4', 'o4-4', { variant: 4 }),
    ]),
  );
  t.deepEqual(
    settlements.map((s) => s.outcome),
    ['superseded', 'superseded', 'updated'],
  );
  t.is(h.iam.calls.length, 2, 'one IAM step per batch');
});
