// The plan, decided from values alone (src/plan/planner.ts): each action the
// processor can take for an event, events of a policy folded in order, and
// the diff of an update by meaning.
import test from 'ava';
import type { PolicyEvent } from '../../src/contract/event.js';
import { payloadHash } from '../../src/contract/payload-hash.js';
import { documentHash } from '../../src/iam/document.js';
import type { LedgerEntry } from '../../src/ledger/ledger.js';
import { diffDocuments, diffTags } from '../../src/plan/diff.js';
import { planPolicy, planRecords } from '../../src/plan/planner.js';
import { parentsFirst } from '../../src/stream/shard-tree.js';
import type { IamPolicy, PlanEvent, PolicyWorld } from '../../src/plan/planner.js';

const PREFIX = '/stream-managed/';
const SETTINGS = { managedPathPrefix: PREFIX, appName: 'iam-policy-stream' };
const OURS = { 'managed-by': 'iam-policy-stream' };
const SHARD = 'shardId-000000000000';

const statement = (bucket: string, sid?: string) => ({ ...(sid ? { Sid: sid } : {}), Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/*` });
const doc = (...statements: object[]) => ({ Version: '2012-10-17', Statement: statements });

function upsert(eventId: string, document: object, extra: { revision?: number; tags?: Record<string, string>; path?: string; name?: string } = {}): PolicyEvent {
  return {
    specVersion: '1',
    type: 'policy.upserted',
    eventId,
    policyName: extra.name ?? 'p',
    policyPath: extra.path ?? PREFIX,
    pathGiven: extra.path !== undefined,
    document: document as never,
    tags: extra.tags ?? {},
    ...(extra.revision !== undefined ? { revision: extra.revision } : {}),
  };
}

function remove(eventId: string, extra: { revision?: number; path?: string } = {}): PolicyEvent {
  return {
    specVersion: '1',
    type: 'policy.deleted',
    eventId,
    policyName: 'p',
    policyPath: extra.path ?? PREFIX,
    pathGiven: extra.path !== undefined,
    ...(extra.revision !== undefined ? { revision: extra.revision } : {}),
  };
}

let sequence = 100;
function planned(event: PolicyEvent, onStream = false): PlanEvent {
  return { event, payloadHash: payloadHash(event), ...(onStream ? { record: { shardId: SHARD, sequenceNumber: String((sequence += 10)), subSequenceNumber: 0, lineage: [] } } : {}) };
}

function iam(document: object, extra: Partial<IamPolicy> = {}): IamPolicy {
  return { path: PREFIX, document, tags: { ...OURS }, attached: false, ...extra };
}

function ledger(overrides: Partial<LedgerEntry> = {}): LedgerEntry {
  return { policy: 'p', epoch: 0, events: [], state: 'present', desired: { path: PREFIX }, ...overrides };
}

const actions = (events: PolicyEvent[], world: PolicyWorld) =>
  planPolicy(
    events.map((event) => planned(event)),
    world,
    SETTINGS,
  ).map((step) => step.reason ?? step.action);

test('a policy IAM does not have is created, with its tags', (t) => {
  const [step] = planPolicy([planned(upsert('e1', doc(statement('a')), { tags: { team: 'x' } }))], {}, SETTINGS);
  t.is(step!.action, 'create');
  t.is(step!.outcome, 'created');
  t.is(step!.path, PREFIX);
  t.deepEqual({ ...step!.tags!.added }, { team: 'x' });
});

test('an equivalent document with the same tags is none; statement order, key order and a one-item list do not count', (t) => {
  const have = doc({ Resource: ['arn:aws:s3:::b/*', 'arn:aws:s3:::a/*'], Action: ['s3:GetObject'], Effect: 'Allow' }, statement('c'));
  const want = doc(statement('c'), { Effect: 'Allow', Action: 's3:GetObject', Resource: ['arn:aws:s3:::a/*', 'arn:aws:s3:::b/*'] });
  const [step] = planPolicy([planned(upsert('e1', want, { tags: { team: 'x' } }))], { iam: iam(have, { tags: { ...OURS, team: 'x' } }) }, SETTINGS);
  t.is(step!.action, 'none');
  t.is(step!.outcome, 'unchanged');
});

test('another document is an update with the statements added, removed and changed (by Sid)', (t) => {
  const have = doc(statement('keep'), statement('gone'), statement('old', 'Named'));
  const want = doc(statement('keep'), statement('new'), statement('other', 'Named'));
  const [step] = planPolicy([planned(upsert('e1', want))], { iam: iam(have) }, SETTINGS);
  t.is(step!.action, 'update');
  t.is(step!.outcome, 'updated');
  const diff = step!.document!;
  t.deepEqual(diff.added, [{ Action: ['s3:GetObject'], Effect: 'Allow', Resource: ['arn:aws:s3:::new/*'] }]);
  t.deepEqual(diff.removed, [{ Action: ['s3:GetObject'], Effect: 'Allow', Resource: ['arn:aws:s3:::gone/*'] }]);
  t.is(diff.changed.length, 1);
  t.is(diff.changed[0]!.sid, 'Named');
  t.deepEqual((diff.changed[0]!.after as { Resource: string[] }).Resource, ['arn:aws:s3:::other/*']);
});

test('the same document with other tags is an update of the tags only (the processor logs unchanged); managed-by is never in the diff', (t) => {
  const [step] = planPolicy(
    [planned(upsert('e1', doc(statement('a')), { tags: { team: 'y', env: 'prod' } }))],
    { iam: iam(doc(statement('a')), { tags: { ...OURS, team: 'x', owner: 'z' } }) },
    SETTINGS,
  );
  t.is(step!.action, 'update');
  t.is(step!.outcome, 'unchanged');
  t.is(step!.document, undefined);
  t.deepEqual(JSON.parse(JSON.stringify(step!.tags)), { added: { env: 'prod' }, removed: { owner: 'z' }, changed: { team: { before: 'x', after: 'y' } } });
});

test('IAM showing the document while the ledger last applied another: written again, as the reconciler does', (t) => {
  const want = doc(statement('a'));
  const [step] = planPolicy([planned(upsert('e1', want))], { iam: iam(want), ledger: ledger({ docHash: documentHash(doc(statement('older'))) }) }, SETTINGS);
  t.is(step!.action, 'update');
  t.is(step!.outcome, 'updated');
  t.deepEqual(step!.document, { added: [], removed: [], changed: [], top: [] });
});

test('a policy without the managed-by tag, or outside the managed path, is refused not-owned', (t) => {
  t.deepEqual(actions([upsert('e1', doc(statement('a')))], { iam: iam(doc(statement('b')), { tags: {} }) }), ['not-owned']);
  t.deepEqual(actions([remove('e1')], { iam: iam(doc(statement('b')), { tags: { 'managed-by': 'another-app' } }) }), ['not-owned']);
  // Named elsewhere: an event that names no path takes ours under the managed path, never one outside it.
  t.deepEqual(actions([upsert('e1', doc(statement('a')))], { iam: iam(doc(statement('b')), { path: '/elsewhere/' }) }), ['not-owned']);
  t.deepEqual(actions([upsert('e1', doc(statement('a')))], { iam: iam(doc(statement('b')), { path: `${PREFIX}team/` }) }), ['update']);
  t.deepEqual(actions([upsert('e1', doc(statement('a')), { path: PREFIX })], { iam: iam(doc(statement('b')), { path: `${PREFIX}team/` }) }), ['not-owned']);
});

test('an upsert naming another path than where the ledger has the policy is refused path-conflict', (t) => {
  const world = { iam: iam(doc(statement('a'))), ledger: ledger() };
  t.deepEqual(actions([upsert('e1', doc(statement('b')), { path: `${PREFIX}other/` })], world), ['path-conflict']);
  t.deepEqual(actions([upsert('e1', doc(statement('b')))], world), ['update'], 'no path named: where the policy is');
});

test('a delete: retain when attached, delete when not, none when there is nothing', (t) => {
  t.deepEqual(actions([remove('e1')], { iam: iam(doc(statement('a')), { attached: true }) }), ['retain']);
  t.deepEqual(actions([remove('e1')], { iam: iam(doc(statement('a'))) }), ['delete']);
  const [absent] = planPolicy([planned(remove('e1'))], {}, SETTINGS);
  t.is(absent!.action, 'none');
  t.is(absent!.outcome, 'absent');
});

test('the ledger decides first, in its one order: a settled record, a known eventId (same or other payload), an old revision', (t) => {
  const event = upsert('e1', doc(statement('a')), { revision: 2 });
  const item = planned(event, true);
  const position = { ...item.record!, lineage: [] };
  const world = { iam: iam(doc(statement('b'))) };
  t.is(planPolicy([item], { ...world, ledger: ledger({ position }) }, SETTINGS)[0]!.action, 'duplicate');
  t.is(planPolicy([planned(event)], { ...world, ledger: ledger({ events: [{ eventId: 'e1', payloadHash: payloadHash(event) }] }) }, SETTINGS)[0]!.action, 'duplicate');
  const conflict = planPolicy([planned(event)], { ...world, ledger: ledger({ events: [{ eventId: 'e1', payloadHash: 'another' }] }) }, SETTINGS)[0]!;
  t.is(conflict.action, 'refuse');
  t.is(conflict.reason, 'event-id-conflict');
  t.is(
    planPolicy([planned(event)], { ...world, archived: [{ eventId: 'e1', payloadHash: payloadHash(event) }], ledger: ledger({ revision: 9 }) }, SETTINGS)[0]!.action,
    'duplicate',
    'an archived eventId comes before the revision',
  );
  t.is(planPolicy([planned(event)], { ...world, ledger: ledger({ revision: 2 }) }, SETTINGS)[0]!.action, 'stale');
  t.is(planPolicy([planned(event)], { ...world, ledger: ledger({ revision: 1 }) }, SETTINGS)[0]!.action, 'update');
});

test('events of a policy fold in order: each meets what the ones before it leave', (t) => {
  const a = doc(statement('a'));
  const b = doc(statement('b'));
  const steps = planPolicy(
    [
      upsert('e1', a, { revision: 1 }),
      upsert('e2', a, { revision: 2 }),
      upsert('e1', a, { revision: 1 }),
      upsert('e3', b, { revision: 1 }),
      upsert('e4', b, { revision: 3 }),
      remove('e5', { revision: 4 }),
      remove('e6'),
      upsert('e7', a),
    ].map((event) => planned(event)),
    {},
    SETTINGS,
  );
  t.deepEqual(
    steps.map((step) => step.action),
    ['create', 'none', 'duplicate', 'stale', 'update', 'delete', 'none', 'create'],
  );
  t.deepEqual(steps[4]!.document!.added, [{ Action: ['s3:GetObject'], Effect: 'Allow', Resource: ['arn:aws:s3:::b/*'] }]);
});

test('a refused event changes nothing: its eventId and revision are not remembered, and IAM stays', (t) => {
  const foreign = iam(doc(statement('x')), { tags: {} });
  const event = upsert('e1', doc(statement('a')), { revision: 5 });
  const steps = planPolicy([planned(event), planned(event), planned(upsert('e2', doc(statement('a')), { revision: 4 }))], { iam: foreign }, SETTINGS);
  t.deepEqual(
    steps.map((step) => step.reason ?? step.action),
    ['not-owned', 'not-owned', 'not-owned'],
  );
});

test('a delete kept because attached leaves the policy: the next upsert updates it, the next delete keeps it again', (t) => {
  t.deepEqual(actions([remove('e1'), upsert('e2', doc(statement('b'))), remove('e3')], { iam: iam(doc(statement('a')), { attached: true }) }), ['retain', 'update', 'retain']);
});

test('a delete acts where the ledger has the policy; where the ledger knows nothing, on the name under the managed path', (t) => {
  const elsewhere = iam(doc(statement('a')), { path: `${PREFIX}team/` });
  t.deepEqual(actions([remove('e1')], { iam: elsewhere }), ['delete'], 'unknown to the ledger: found by name');
  t.deepEqual(actions([remove('e1')], { iam: elsewhere, ledger: ledger({ state: 'deleted', desired: { path: PREFIX } }) }), ['none'], 'the ledger says deleted: acts at the path the event names');
});

test('records of several policies and refused input: one step each, in order', (t) => {
  const steps = planRecords(
    [
      { ok: true, ...planned(upsert('a1', doc(statement('a')), { name: 'a' })) },
      { ok: false, reason: 'admin-grant-refused', detail: 'grants *' },
      { ok: true, ...planned(upsert('b1', doc(statement('b')), { name: 'b' })) },
      { ok: true, ...planned(upsert('a2', doc(statement('c')), { name: 'a' })) },
    ],
    (policy) => (policy === 'b' ? { iam: iam(doc(statement('b'))) } : {}),
    SETTINGS,
  );
  t.deepEqual(
    steps.map((step) => step.reason ?? step.action),
    ['create', 'admin-grant-refused', 'none', 'update'],
  );
});

test('diffs: Version and Id are top-level changes; tag keys such as __proto__ stay plain keys', (t) => {
  const diff = diffDocuments({ Version: '2008-10-17', Statement: [] }, { Version: '2012-10-17', Id: 'x', Statement: [] });
  t.deepEqual(
    diff.top.map((change) => change.key),
    ['Id', 'Version'],
  );
  const wanted = JSON.parse('{"__proto__":"v"}') as Record<string, string>;
  const tags = diffTags({}, wanted);
  t.deepEqual(Object.keys(tags.added), ['__proto__']);
  t.is(JSON.stringify(tags.added), '{"__proto__":"v"}');
});

test('shards read parents first keep each policy in stream order, however ListShards lists them', (t) => {
  const shard = (shardId: string, parents: string[] = []) => ({ shardId, parents, closed: parents.length === 0, startingHashKey: 0n, endingHashKey: 1n });
  const listed = [shard('merged', ['left', 'right']), shard('left', ['root']), shard('right', ['root']), shard('root'), shard('lone')];
  const order = parentsFirst(listed).map((s) => s.shardId);
  const before = (a: string, b: string) => order.indexOf(a) < order.indexOf(b);
  t.is(order.length, 5);
  t.true(before('root', 'left') && before('root', 'right') && before('left', 'merged') && before('right', 'merged'), order.join(' '));
  t.deepEqual(
    parentsFirst([shard('child', ['gone-past-retention'])]).map((s) => s.shardId),
    ['child'],
  );
});
