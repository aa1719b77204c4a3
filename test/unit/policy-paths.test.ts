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

test('an upsert that names another path than the existing policy\'s is rejected as path-conflict', async (t) => {
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
