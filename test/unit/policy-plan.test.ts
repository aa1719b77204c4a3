// The decisions of a policy batch, from values alone (src/pipeline/policy-plan.ts): no ledger, no
// IAM, no fakes; the policy batch does what these return.
import test from 'ava';
import type { PolicyEvent } from '../../src/contract/event.js';
import type { LedgerEntry } from '../../src/ledger/ledger.js';
import { placed, planPolicyBatch, screenBatch, settleWaiting } from '../../src/pipeline/policy-plan.js';
import type { ValidRecord } from '../../src/pipeline/types.js';

const SHARD = 'shardId-000000000000';
const PREFIX = '/stream-managed/';
const DOC = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] };

function item(seq: number, eventId: string, options: { revision?: number; type?: PolicyEvent['type']; path?: string; hash?: string } = {}): ValidRecord {
  const { revision, type = 'policy.upserted', path } = options;
  const base = { specVersion: '1' as const, eventId, policyName: 'p', policyPath: path ?? PREFIX, pathGiven: path !== undefined, ...(revision !== undefined ? { revision } : {}) };
  const event: PolicyEvent = type === 'policy.upserted' ? { ...base, type, document: DOC, tags: {} } : { ...base, type };
  return {
    record: { shardId: SHARD, sequenceNumber: String(seq), subSequenceNumber: 0, partitionKey: 'p', data: Buffer.from(''), index: seq, receivedAt: 0 },
    event,
    payloadHash: options.hash ?? `h-${eventId}`,
  };
}

const present = (revision: number): LedgerEntry => ({
  policy: 'p',
  epoch: 0,
  events: [{ eventId: 'old', payloadHash: 'h-old' }],
  position: { shardId: SHARD, sequenceNumber: '1', subSequenceNumber: 0, lineage: [] },
  revision,
  state: 'present',
  desired: { path: PREFIX, document: DOC, tags: {} },
  docHash: 'd',
  iamVersions: ['v1'],
});

test('the cache answers what it knows; an event whose eventId an earlier candidate carries waits instead of being claimed', (t) => {
  const records = [item(2, 'a'), item(3, 'b'), item(4, 'b')];
  const { duplicates, candidates } = screenBatch(records, [true, false, false]);
  t.deepEqual(duplicates, [records[0]]);
  t.deepEqual(candidates, [records[1]]);
});

test("the ledger settles what it knows, the rest is applied from the last back, and the step starts from the ledger's word", (t) => {
  const records = [item(2, 'old', { hash: 'h-old' }), item(3, 'low', { revision: 2 }), item(4, 'c', { revision: 6 }), item(5, 'd', { revision: 7 })];
  const plan = planPolicyBatch({ records, open: records, entry: present(5), archived: [], takenOver: false });
  t.deepEqual(
    plan.known.map(({ item: known, verdict }) => [known.event.eventId, verdict]),
    [
      ['old', 'duplicate-event-id'],
      ['low', 'stale-revision'],
    ],
  );
  t.deepEqual(plan.live, [records[2], records[3]]);
  t.deepEqual(plan.scope, records);
  t.deepEqual(plan.rest, []);
  t.like(plan.start, { present: true, likelyAbsent: false, path: PREFIX, pathUnknown: false, versions: ['v1'], docHash: 'd' });
  // A claim taken over: the ledger no longer vouches for IAM's versions.
  t.is(planPolicyBatch({ records, open: records, entry: present(5), archived: [], takenOver: true }).start.versions, undefined);
});

test('events that name different paths are not folded: the first is completed alone and the rest is the next part', (t) => {
  const records = [item(2, 'a', { path: '/stream-managed/one/' }), item(3, 'b', { path: '/stream-managed/two/' })];
  const plan = planPolicyBatch({ records, open: records, entry: undefined, archived: [], takenOver: false });
  t.deepEqual(plan.live, [records[0]]);
  t.deepEqual(plan.scope, [records[0]]);
  t.deepEqual(plan.rest, [records[1]]);
  t.like(plan.start, { likelyAbsent: true, pathUnknown: true });
});

test('where the ledger cannot say where the policy lives, an upsert naming a path is tried alone: IAM decides whether it conflicts', (t) => {
  // Simulation seed 32830, re-applied under a new epoch while the policy lived at the prefix: coalesced,
  // the delete made the upsert `superseded`, and its producer retry a duplicate; in order, the upsert is a
  // path-conflict and the retry, after the delete, creates the policy under its path.
  const records = [item(2, 'named', { path: `${PREFIX}other/` }), item(3, 'gone', { type: 'policy.deleted' })];
  // No entry; an entry whose state a failed step left unknown; an entry only a claim made (seed 20293: a
  // create whose answer was lost, under the named path, then the part tried again with its delete).
  const claimOnly: LedgerEntry = { policy: 'p', epoch: 0, events: [], position: present(1).position };
  for (const entry of [undefined, { ...present(1), state: 'unknown' as const }, claimOnly]) {
    const plan = planPolicyBatch({ records, open: records, entry, archived: [], takenOver: false });
    t.true(plan.start.pathUnknown);
    t.deepEqual(plan.live, [records[0]]);
    t.deepEqual(plan.rest, records.slice(1));
  }
  // Where the ledger knows the policy is gone, the named path is where the first upsert creates it: folded.
  const deleted: LedgerEntry = { ...present(1), state: 'deleted', desired: { path: PREFIX } };
  const twice = [item(2, 'named', { path: `${PREFIX}other/` }), item(3, 'again', { path: `${PREFIX}other/` })];
  const folded = planPolicyBatch({ records: twice, open: twice, entry: deleted, archived: [], takenOver: false });
  t.false(folded.start.pathUnknown);
  t.deepEqual(folded.live, twice);
});

test('where the ledger cannot say where the policy lives, a delete then an upsert naming no path are not folded: in order the upsert creates at the prefix', (t) => {
  // Simulation seed 15649, re-applied under a new epoch while the policy lived under a deeper path:
  // coalesced, the upsert alone updated it there; in order, the delete removes it and the upsert
  // creates it at the prefix.
  const records = [item(2, 'gone', { type: 'policy.deleted' }), item(3, 'back')];
  const plan = planPolicyBatch({ records, open: records, entry: undefined, archived: [], takenOver: false });
  t.deepEqual(plan.live, [records[0]]);
  t.deepEqual(plan.rest, [records[1]]);
  // Upserts naming no path, the delete last: wherever IAM has it, the end is the same. Folded.
  const kept = [item(2, 'one'), item(3, 'two'), item(4, 'gone', { type: 'policy.deleted' })];
  t.deepEqual(planPolicyBatch({ records: kept, open: kept, entry: undefined, archived: [], takenOver: false }).live, kept);
});

test('a verdict that rests on an event IAM refused does not hold: the batch is cut before it', (t) => {
  // b reuses a's eventId with another payload: an event-id-conflict only if a takes effect.
  const records = [item(2, 'a'), item(3, 'a', { hash: 'other' })];
  const plan = planPolicyBatch({ records, open: records, entry: undefined, archived: [], takenOver: false });
  t.deepEqual(plan.live, [records[0]]);
  t.is(plan.waiting.length, 1);
  const applied = settleWaiting(plan, records, new Set(), () => false);
  t.deepEqual(
    applied.holds.map(({ verdict, source }) => [verdict, source]),
    [['event-id-conflict', 'batch']],
  );
  t.deepEqual(applied.rest, []);
  const refused = settleWaiting(plan, records, new Set([records[0]!]), (candidate) => candidate === records[0]);
  t.deepEqual(refused.holds, []);
  t.deepEqual(refused.scope, [records[0]]);
  t.deepEqual(refused.rest, [records[1]]);
});

test('an event goes where the policy lives; an upsert naming another path is a path conflict', (t) => {
  const named = item(2, 'a', { path: '/stream-managed/two/' }).event;
  const unnamed = item(3, 'b').event;
  t.is(placed(named, '/stream-managed/one/'), 'path-conflict');
  t.is((placed(unnamed, '/stream-managed/one/') as PolicyEvent).policyPath, '/stream-managed/one/');
  t.is(placed(named, undefined), named);
});
