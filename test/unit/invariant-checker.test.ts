// The invariant checker judges the reliability runs, so it is pinned here on
// hand-made streams and IAM states whose verdict is known:
//   - a policy's records are folded in the order the stream gives them, which
//     is shard lineage (a child shard's records after its parents'), and
//     sequence numbers only within a shard: after a reshard a child's numbers
//     may run lower than its parent's;
//   - a record on a shard whose hash key range does not hold its partition
//     key's hash (an explicit hash key) has no place in the policy's order and
//     must not take effect;
//   - every tag of a policy is compared with the fold, not only the owner tag.
import test from 'ava';
import type { IAMClient } from '@aws-sdk/client-iam';
import { GetPolicyCommand, GetPolicyVersionCommand, ListEntitiesForPolicyCommand, ListPoliciesCommand, ListPolicyVersionsCommand, NoSuchEntityException } from '@aws-sdk/client-iam';
import { hashKeyOf } from '../../src/ops/aggregate.js';
import { deletedEvent, upsertedEvent } from '../../src/contract/wire-event.js';
import type { ShardInfo } from '../../src/stream/shard-tree.js';
import { checkInvariants } from '../../tools/oracle/invariants.js';
import type { SentRecord } from '../../tools/oracle/invariants.js';
import type { OutcomeLine } from '../../tools/oracle/outcome-log.js';

const ACCOUNT = '000000000000';
const PREFIX = '/managed/';
const APP = 'iam-policy-stream';
const MAX = 2n ** 128n - 1n;

const doc = (variant: string) => ({ Version: '2012-10-17', Statement: [{ Sid: variant, Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${variant}/*` }] });

interface HeldPolicy {
  name: string;
  path: string;
  document: object;
  tags: Record<string, string>;
}

/** IAM as the checker reads it: the policies it holds, nothing else (no writes). */
function heldIam(policies: HeldPolicy[]): IAMClient {
  const arnOf = (p: HeldPolicy) => `arn:aws:iam::${ACCOUNT}:policy${p.path}${p.name}`;
  const byArn = (arn: string | undefined) => {
    const found = policies.find((p) => arnOf(p) === arn);
    if (!found) throw new NoSuchEntityException({ message: `${arn} not found`, $metadata: {} });
    return found;
  };
  const view = (p: HeldPolicy) => ({ PolicyName: p.name, Path: p.path, Arn: arnOf(p), DefaultVersionId: 'v1', Tags: Object.entries(p.tags).map(([Key, Value]) => ({ Key, Value })) });
  const send = async (command: unknown) => {
    if (command instanceof ListPoliciesCommand) return { Policies: policies.filter((p) => p.path.startsWith(command.input.PathPrefix ?? '/')).map(view), IsTruncated: false };
    if (command instanceof GetPolicyCommand) return { Policy: view(byArn(command.input.PolicyArn)) };
    if (command instanceof GetPolicyVersionCommand)
      return { PolicyVersion: { VersionId: 'v1', IsDefaultVersion: true, Document: encodeURIComponent(JSON.stringify(byArn(command.input.PolicyArn).document)) } };
    if (command instanceof ListPolicyVersionsCommand) return { Versions: [{ VersionId: 'v1', IsDefaultVersion: true }] };
    if (command instanceof ListEntitiesForPolicyCommand) return { PolicyRoles: [], PolicyUsers: [], PolicyGroups: [], IsTruncated: false };
    throw new Error(`the checker is not expected to send ${(command as object).constructor.name}`);
  };
  return { send } as unknown as IAMClient;
}

/** A record put on `shardId` at `sequenceNumber`, with its outcome line. */
function record(shardId: string, sequenceNumber: string, event: object, options: { explicitHashKey?: string } = {}): SentRecord {
  const name = (event as { policy: { name: string } }).policy.name;
  return {
    record: { partitionKey: name, data: Buffer.from(JSON.stringify(event)), ...(options.explicitHashKey ? { explicitHashKey: options.explicitHashKey } : {}) },
    put: { partitionKey: name, shardId, sequenceNumber },
  };
}

function outcome(sent: SentRecord, verdict: string): OutcomeLine {
  return { shard: sent.put.shardId, sequenceNumber: sent.put.sequenceNumber, subSequenceNumber: 0, partitionKey: sent.put.partitionKey, outcome: verdict, time: 0 };
}

/** A stream of one shard split in two: shard 0 is the parent of 1 (lower half of the keys) and 2 (upper half). */
const MID = MAX / 2n;
const SPLIT: ShardInfo[] = [
  { shardId: 'shardId-000000000000', parents: [], closed: true, startingHashKey: 0n, endingHashKey: MAX },
  { shardId: 'shardId-000000000001', parents: ['shardId-000000000000'], closed: false, startingHashKey: 0n, endingHashKey: MID },
  { shardId: 'shardId-000000000002', parents: ['shardId-000000000000'], closed: false, startingHashKey: MID + 1n, endingHashKey: MAX },
];
/** The child shard that takes `name`'s records after the split, and the one that does not. */
const childFor = (name: string) => (hashKeyOf(name) <= MID ? ['shardId-000000000001', 'shardId-000000000002'] : ['shardId-000000000002', 'shardId-000000000001']) as [string, string];

const check = (sent: SentRecord[], outcomes: OutcomeLine[], iam: IAMClient, shards: ShardInfo[] = SPLIT) =>
  checkInvariants({ sent, outcomes, iam, accountId: ACCOUNT, managedPathPrefix: PREFIX, appName: APP, shards });

test("a child shard's record follows its parent's even when its sequence number is lower", async (t) => {
  const [child] = childFor('p-order');
  // Sent before the split, on the parent, with a high sequence number; then after it, on the child, with a lower one.
  const first = record('shardId-000000000000', '49000000000000000000000000000000000000000000000000009000', upsertedEvent({ eventId: 'e1', name: 'p-order', document: doc('first') }));
  const second = record(child, '49000000000000000000000000000000000000000000000000001000', upsertedEvent({ eventId: 'e2', name: 'p-order', document: doc('second') }));
  const iam = heldIam([{ name: 'p-order', path: PREFIX, document: doc('second'), tags: { 'managed-by': APP } }]);
  const report = await check([first, second], [outcome(first, 'created'), outcome(second, 'updated')], iam);
  t.deepEqual(report.violations, [], "IAM holds the child's document, which the stream gave last");

  const wrong = heldIam([{ name: 'p-order', path: PREFIX, document: doc('first'), tags: { 'managed-by': APP } }]);
  const judged = await check([first, second], [outcome(first, 'created'), outcome(second, 'updated')], wrong);
  t.deepEqual(judged.violations, ['p-order has a different default document'], "the parent's document left in IAM is a violation");
});

test('within one shard, records are folded by sequence number, however they were listed', async (t) => {
  const [child] = childFor('p-within');
  const later = record(child, '49000000000000000000000000000000000000000000000000002000', upsertedEvent({ eventId: 'e2', name: 'p-within', document: doc('later') }));
  const earlier = record(child, '999', upsertedEvent({ eventId: 'e1', name: 'p-within', document: doc('earlier') }));
  const iam = heldIam([{ name: 'p-within', path: PREFIX, document: doc('later'), tags: { 'managed-by': APP } }]);
  const report = await check([later, earlier], [outcome(earlier, 'created'), outcome(later, 'updated')], iam);
  t.deepEqual(report.violations, []);
});

test('a record on a shard whose hash key range does not hold its partition key is expected to take no effect', async (t) => {
  const [own, other] = childFor('p-range');
  const applied = record(own, '1000', upsertedEvent({ eventId: 'e1', name: 'p-range', document: doc('own') }));
  // Routed by an explicit hash key to the other child: it has no place in p-range's order.
  const misrouted = record(other, '2000', upsertedEvent({ eventId: 'e2', name: 'p-range', document: doc('misrouted') }), { explicitHashKey: String(own === 'shardId-000000000001' ? MAX : 0n) });
  const iam = heldIam([{ name: 'p-range', path: PREFIX, document: doc('own'), tags: { 'managed-by': APP } }]);
  const rejected = await check([applied, misrouted], [outcome(applied, 'created'), { ...outcome(misrouted, 'rejected'), reason: 'hash-key-mismatch' }], iam);
  t.deepEqual(rejected.violations, [], 'rejected, and IAM kept the document of the record on the right shard');

  const appliedAnyway = heldIam([{ name: 'p-range', path: PREFIX, document: doc('misrouted'), tags: { 'managed-by': APP } }]);
  const judged = await check([applied, misrouted], [outcome(applied, 'created'), outcome(misrouted, 'updated')], appliedAnyway);
  t.true(
    judged.violations.some((v) => v.includes('hash key') && v.includes('took effect')),
    judged.violations.join('; '),
  );
  t.true(judged.violations.includes('p-range has a different default document'));
});

test('every tag of a policy is compared with the fold, not only the owner tag', async (t) => {
  const [child] = childFor('p-tags');
  const v1 = record(child, '1000', upsertedEvent({ eventId: 'e1', name: 'p-tags', document: doc('one'), tags: { team: 'red', cost: 'a' } }));
  const v2 = record(child, '2000', upsertedEvent({ eventId: 'e2', name: 'p-tags', document: doc('one'), tags: { team: 'blue' } }));
  const outcomes = [outcome(v1, 'created'), outcome(v2, 'unchanged')];
  const right = heldIam([{ name: 'p-tags', path: PREFIX, document: doc('one'), tags: { 'managed-by': APP, team: 'blue' } }]);
  t.deepEqual((await check([v1, v2], outcomes, right)).violations, []);

  const stale = heldIam([{ name: 'p-tags', path: PREFIX, document: doc('one'), tags: { 'managed-by': APP, team: 'red' } }]);
  t.deepEqual((await check([v1, v2], outcomes, stale)).violations, ['p-tags has tag team=red, expected team=blue']);

  const leftOver = heldIam([{ name: 'p-tags', path: PREFIX, document: doc('one'), tags: { 'managed-by': APP, team: 'blue', cost: 'a' } }]);
  t.deepEqual((await check([v1, v2], outcomes, leftOver)).violations, ['p-tags has tag cost=a, expected none']);

  const unowned = heldIam([{ name: 'p-tags', path: PREFIX, document: doc('one'), tags: { team: 'blue' } }]);
  t.deepEqual((await check([v1, v2], outcomes, unowned)).violations, ['p-tags lacks its ownership tag']);
});

test('after replay --reapply, the replayed events are folded over what the first pass left in IAM, with eventIds and revisions forgotten', async (t) => {
  // Simulation seed 21109's stream for one policy: an upsert naming another path, a delete, the
  // producer's retry of that upsert, an upsert naming no path.
  const [child] = childFor('p-moved');
  const other = `${PREFIX}other/`;
  const elsewhere = record(child, '1000', upsertedEvent({ eventId: 'e1', name: 'p-moved', path: other, document: doc('one') }));
  const removed = record(child, '2000', deletedEvent({ eventId: 'e2', name: 'p-moved' }));
  const retried = record(child, '3000', upsertedEvent({ eventId: 'e1', name: 'p-moved', path: other, document: doc('one') }));
  const last = record(child, '4000', upsertedEvent({ eventId: 'e4', name: 'p-moved', document: doc('one'), tags: { team: 'a' } }));
  const sent = [elsewhere, removed, retried, last];
  const atPrefix = heldIam([{ name: 'p-moved', path: PREFIX, document: doc('one'), tags: { 'managed-by': APP, team: 'a' } }]);
  const first = await check(sent, [outcome(elsewhere, 'created'), outcome(removed, 'deleted'), outcome(retried, 'duplicate'), outcome(last, 'created')], atPrefix);
  t.deepEqual(first.violations, [], 'first pass: the retry is a duplicate, the last upsert creates the policy at the prefix');

  // Re-applied over the policy at the prefix: the first upsert is a path-conflict (nothing
  // remembered), the delete removes it, the retry is new and creates it under other/, and the
  // upsert naming no path updates it there.
  const reapplied = [outcome(elsewhere, 'rejected'), outcome(removed, 'deleted'), outcome(retried, 'created'), outcome(last, 'unchanged')];
  const atOther = heldIam([{ name: 'p-moved', path: other, document: doc('one'), tags: { 'managed-by': APP, team: 'a' } }]);
  const judged = await checkInvariants({ sent, outcomes: reapplied, iam: atOther, accountId: ACCOUNT, managedPathPrefix: PREFIX, appName: APP, shards: SPLIT, reappliedOver: first.expected });
  t.deepEqual(judged.violations, []);
  const asIfEmpty = await check(sent, reapplied, atOther);
  t.deepEqual(asIfEmpty.violations, [`p-moved is under ${other}, expected ${PREFIX}`], 'folded from an empty account, the re-applied state would be a violation');
  const notMoved = await checkInvariants({ sent, outcomes: reapplied, iam: atPrefix, accountId: ACCOUNT, managedPathPrefix: PREFIX, appName: APP, shards: SPLIT, reappliedOver: first.expected });
  t.deepEqual(notMoved.violations, [`p-moved is under ${PREFIX}, expected ${other}`]);
});
