// The exactly-once protocol against DynamoDB Local: real conditional writes.
import test from 'ava';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import type { Applier, StreamRecord } from '../../src/pipeline/types.js';
import { FakeIam, MemoryDeadLetters } from '../support/fakes.js';
import { doc, silentLogger, streamRecords, upsertRecord } from '../support/pipeline.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import { DeleteItemCommand, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { EVENT_ARCHIVE_KEY, eventArchiveKey } from '../../src/ledger/event-archive-table.js';
import { legacyArchivedEventKey } from '../../src/ledger/event-archive.js';
import { LEDGER_KEY } from '../../src/ledger/table.js';

const stackOf = useTestStack(test, { shards: 1 });

function processor(options: { owner: string; applier: Applier; claimTtlMs?: number; now?: () => number; metrics?: Metrics; lineage?: string[]; epoch?: number }) {
  const { config, clients } = stackOf();
  const metrics = options.metrics ?? new Metrics();
  const aws = clients({ observers: [metrics.awsCallCounter()] });
  const ledger = ledgerFromConfig(aws.dynamodb, { ...config, claimTtlMs: options.claimTtlMs ?? 60_000, lateWriteMs: 1_000 }, options.now ? { now: options.now } : {});
  const parts = {
    // Late writes of a taken-over claim: a second after its expiry (the tests move the clock past it).
    config: { ...config, claimTtlMs: options.claimTtlMs ?? 60_000, lateWriteMs: 1_000, retryBaseMs: 5, retryBackoffCapMs: 50, maxConcurrentPolicies: 8 },
    logger: silentLogger,
    metrics,
    ledger,
    cache: new DedupCache(10_000),
    applier: options.applier,
    deadLetters: new MemoryDeadLetters(),
  };
  const pipeline = createShardPipeline(parts, { shardId: 'shardId-000000000000', lineage: options.lineage ?? [], epoch: options.epoch ?? 0, owner: options.owner, hashKeyRange: ALL_HASH_KEYS });
  return { pipeline, ledger, metrics };
}

test.serial('two processors race on the same record: exactly one wins, the loser never touches IAM', async (t) => {
  const iamA = new FakeIam(() => 30);
  const iamB = new FakeIam(() => 30);
  const a = processor({ owner: 'worker-a', applier: iamA });
  const b = processor({ owner: 'worker-b', applier: iamB });
  const records = streamRecords([upsertRecord('race-1', 'race-e1', doc(1))]);
  // Both start at once; the loser sees a live claim, retries, then finds the record applied.
  const [ra, rb] = await Promise.all([a.pipeline.processBatch(records), b.pipeline.processBatch(records)]);
  const outcomes = [ra[0]!.outcome, rb[0]!.outcome].sort();
  t.deepEqual(outcomes, ['created', 'duplicate']);
  t.is(iamA.writes.length + iamB.writes.length, 1, 'one IAM effect in all');
  t.is(iamA.calls.length + iamB.calls.length, 1, 'the loser never ran its IAM step');
});

test.serial('a crash after the claim and before completion: after expiry the event is applied once', async (t) => {
  let clock = Date.now();
  const now = () => clock;
  const crashingIam: Applier = { apply: () => new Promise(() => {}) }; // hangs: the worker "dies" mid-step
  const crashed = processor({ owner: 'worker-crashed', applier: crashingIam, claimTtlMs: 5_000, now });
  const records = streamRecords([upsertRecord('crash-1', 'crash-e1', doc(1))]);
  void crashed.pipeline.processBatch(records);
  await new Promise((resolve) => setTimeout(resolve, 300)); // the claim is written, the IAM step never returns

  const iam = new FakeIam();
  const successor = processor({ owner: 'worker-next', applier: iam, claimTtlMs: 5_000, now });
  const pending = successor.pipeline.processBatch(records);
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.is(iam.calls.length, 0, 'a live claim held elsewhere keeps the successor out');
  clock += 6_000; // the claim expires
  const [settled] = await pending;
  t.is(settled!.outcome, 'created');
  t.is(iam.writes.length, 1);
  t.is(successor.metrics.get('claims_taken_over'), 1);
  const entry = await successor.ledger.get('crash-1');
  t.is(entry?.claim, undefined, 'completed: no claim left');
  t.is(entry?.events.at(-1)?.eventId, 'crash-e1');
});

test.serial('a worker that lost its claim cannot complete over the new owner', async (t) => {
  let clock = Date.now();
  const now = () => clock;
  const { config, clients } = stackOf();
  const ledger = ledgerFromConfig(clients().dynamodb, { ...config, claimTtlMs: 1_000 }, { now });
  const record = { shardId: 's', sequenceNumber: '100', subSequenceNumber: 0 };
  const request = { policy: 'fence-1', record, eventId: 'fence-e1', payloadHash: 'h1', owner: 'old', epoch: 0 };
  const old = await ledger.claim(request);
  t.true(old.won);
  clock += 2_000;
  const next = await ledger.claim({ ...request, owner: 'new' });
  t.true(next.won && next.takenOver);
  const complete = { policy: 'fence-1', epoch: 0, position: { ...record, lineage: [] }, events: [{ eventId: 'fence-e1', payloadHash: 'h1' }], state: 'present' as const, outcome: 'created' };
  await t.throwsAsync(ledger.complete({ ...complete, token: old.won ? old.token : '' }), { name: 'ClaimLostError' });
  const overwrite = await ledger.claim({ ...request, owner: 'old' });
  t.false(overwrite.won, 'the old owner cannot overwrite a live claim');
  await ledger.complete({ ...complete, token: next.won ? next.token : '' });
  const entry = await ledger.get('fence-1');
  t.deepEqual(entry?.position, { ...record, lineage: [] });
});

test.serial('a verification mark with late writes pending: no verification claim before they can no longer land, and a shorter bound never moves it back', async (t) => {
  let clock = Date.now();
  const now = () => clock;
  const { config, clients } = stackOf();
  const ledger = ledgerFromConfig(clients().dynamodb, { ...config, claimTtlMs: 1_000 }, { now });
  const record = { shardId: 's', sequenceNumber: '100', subSequenceNumber: 0 };
  const first = await ledger.claim({ policy: 'late-mark-1', record, eventId: 'lm-1', payloadHash: 'h1', owner: 'w', epoch: 0 });
  t.true(first.won);
  await ledger.complete({
    policy: 'late-mark-1',
    token: first.won ? first.token : '',
    epoch: 0,
    position: { ...record, lineage: [] },
    events: [{ eventId: 'lm-1', payloadHash: 'h1' }],
    state: 'present',
    outcome: 'created',
  });
  await ledger.requestVerification('late-mark-1', { ms: 5_000 });
  const mark = clock + 5_000;
  // An earlier bound never moves verifyAfter back.
  await ledger.requestVerification('late-mark-1', { ms: 1_000 });
  t.is((await ledger.get('late-mark-1'))?.verifyAfter, mark);
  t.is((await ledger.get('late-mark-1'))?.verifyRequested, 2);
  const early = await ledger.claimVerification('late-mark-1', 'verifier');
  t.false(early.won);
  t.is(early.won ? '' : early.because, 'verification-waits');
  clock += 5_000;
  const due = await ledger.claimVerification('late-mark-1', 'verifier');
  t.true(due.won, 'once the late writes can no longer land');
});

test.serial('archived eventIds: batches of any size written and read back, of the epoch or later, until they expire; never an entry', async (t) => {
  let clock = Date.now();
  const now = () => clock;
  const { config, clients } = stackOf();
  const ledger = ledgerFromConfig(clients().dynamodb, { ...config, claimTtlMs: 1_000, eventIdTtlDays: 1 }, { now });
  const events = Array.from({ length: 30 }, (_, i) => ({ eventId: `arch-${i}`, payloadHash: `h${i}` }));
  await ledger.archiveEvents('arch-1', 2, events);
  await ledger.archiveEvents('arch-1', 1, [{ eventId: 'arch-old', payloadHash: 'h' }]);
  const found = await ledger.archivedEvents('arch-1', 2, ['arch-0', 'arch-29', 'arch-missing', 'arch-old', 'arch-0'], undefined);
  t.deepEqual(
    found.sort((a, b) => a.eventId.localeCompare(b.eventId)),
    [
      { eventId: 'arch-0', payloadHash: 'h0' },
      { eventId: 'arch-29', payloadHash: 'h29' },
    ],
  );
  t.deepEqual(await ledger.archivedEvents('arch-2', 0, ['arch-0'], undefined), [], 'per policy');
  for await (const entry of ledger.entries()) t.false(entry.policy.startsWith('#'), entry.policy);
  clock += 86_400_000 + 1_000;
  t.deepEqual(await ledger.archivedEvents('arch-1', 0, ['arch-0'], undefined), [], 'expired: as good as removed, whenever DynamoDB removes it');
});

test.serial("archived eventIds live in the archive table, not the ledger's; one a version before it archived in the ledger table still makes a producer retry a duplicate", async (t) => {
  const { config, clients } = stackOf();
  const dynamodb = clients().dynamodb;
  const iam = new FakeIam();
  const first = processor({ owner: 'worker-legacy', applier: iam });
  // 33 events of one policy: the first leaves the window of 32 and is archived.
  const events = Array.from({ length: 33 }, (_, i) => upsertRecord('legacy-archive-1', `la-${i}`, doc(i)));
  await first.pipeline.processBatch(streamRecords(events));
  const archived = await dynamodb.send(
    new GetItemCommand({ TableName: config.eventArchiveTable, Key: { [EVENT_ARCHIVE_KEY]: { S: eventArchiveKey('legacy-archive-1', 'la-0') } }, ConsistentRead: true }),
  );
  t.truthy(archived.Item, 'archived in the archive table');
  const inLedger = await dynamodb.send(new GetItemCommand({ TableName: config.ledgerTable, Key: { [LEDGER_KEY]: { S: legacyArchivedEventKey('legacy-archive-1', 'la-0') } }, ConsistentRead: true }));
  t.is(inLedger.Item, undefined, 'nothing archived in the ledger table');

  // As a version before the archive table left it: the same item under the ledger's `#event#` key.
  const { [EVENT_ARCHIVE_KEY]: _key, ...attributes } = archived.Item!;
  await dynamodb.send(new PutItemCommand({ TableName: config.ledgerTable, Item: { [LEDGER_KEY]: { S: legacyArchivedEventKey('legacy-archive-1', 'la-0') }, ...attributes } }));
  await dynamodb.send(new DeleteItemCommand({ TableName: config.eventArchiveTable, Key: { [EVENT_ARCHIVE_KEY]: { S: eventArchiveKey('legacy-archive-1', 'la-0') } } }));
  const writes = iam.calls.length;
  // A new child (cold cache) meets the producer's retry of la-0 on a later record.
  const fresh = processor({ owner: 'worker-legacy-2', applier: iam });
  const [retry] = await fresh.pipeline.processBatch(streamRecords([upsertRecord('legacy-archive-1', 'la-0', doc(0))]));
  t.is(retry!.outcome, 'duplicate');
  t.is(iam.calls.length, writes, 'no IAM call');
});

test.serial('a late producer retry (revision 3 after revision 4) is stale, with no IAM call', async (t) => {
  const iam = new FakeIam();
  const p = processor({ owner: 'worker-stale', applier: iam });
  await p.pipeline.processBatch(streamRecords([upsertRecord('late-1', 'late-r4', doc(4), 4)]));
  // A new child (cold cache) receives the late revision: the ledger answers.
  const fresh = processor({ owner: 'worker-stale-2', applier: iam });
  const [late] = await fresh.pipeline.processBatch(streamRecords([upsertRecord('late-1', 'late-r3', doc(3), 3)]));
  t.is(late!.outcome, 'stale');
  t.is(iam.calls.length, 1);
});

test.serial('56-digit sequence numbers (beyond 2^128 and DynamoDB numbers) compare exactly', async (t) => {
  const { config, clients } = stackOf();
  const ledger = ledgerFromConfig(clients().dynamodb, { ...config, claimTtlMs: 60_000 });
  const big = '49680462685045045213514215699606729033515658240868745218'; // a real-looking 56-digit one
  const bigger = (BigInt(big) + 1n).toString();
  const base = { policy: 'bigseq-1', eventId: 'bigseq-a', payloadHash: 'h', owner: 'w', epoch: 0 };
  const at = (sequenceNumber: string) => ({ shardId: 's', sequenceNumber, subSequenceNumber: 0 });
  const first = await ledger.claim({ ...base, record: at(bigger) });
  t.true(first.won);
  await ledger.complete({
    policy: 'bigseq-1',
    token: first.won ? first.token : '',
    epoch: 0,
    position: { ...at(bigger), lineage: [] },
    events: [{ eventId: 'bigseq-a', payloadHash: 'h' }],
    state: 'present',
    outcome: 'created',
  });
  const lower = await ledger.claim({ ...base, eventId: 'bigseq-b', record: at(big) });
  t.false(lower.won);
  t.is(lower.won ? '' : lower.because, 'duplicate-sequence');
});

test.serial('with the cache warm, a replay of applied events makes zero DynamoDB calls', async (t) => {
  const metrics = new Metrics();
  const iam = new FakeIam();
  const p = processor({ owner: 'worker-warm', applier: iam, metrics });
  const records: StreamRecord[] = streamRecords(Array.from({ length: 200 }, (_, i) => upsertRecord(`warm-${i % 20}`, `warm-e${i}`, doc(i))));
  await p.pipeline.processBatch(records);
  const before = metrics.total('aws_calls', { service: 'dynamodb' });
  t.true(before > 0);
  const replay = await p.pipeline.processBatch(records);
  t.true(replay.every((s) => s.outcome === 'duplicate'));
  t.is(metrics.total('aws_calls', { service: 'dynamodb' }), before, 'no DynamoDB call for cached duplicates');
});

test.serial('the conditional claim follows shard lineage and subsequence numbers (DynamoDB condition, not the cache)', async (t) => {
  const { config, clients } = stackOf();
  const ledger = ledgerFromConfig(clients().dynamodb, { ...config, claimTtlMs: 60_000 });
  const parent = 'shardId-000000000000';
  const child = 'shardId-000000000002';
  let n = 0;
  const claimAt = (shardId: string, sequenceNumber: string, subSequenceNumber: number) =>
    ledger.claim({ policy: 'lineage-1', record: { shardId, sequenceNumber, subSequenceNumber }, eventId: `lin-${n++}`, payloadHash: 'h', owner: 'w', epoch: 0 });
  const completeAt = async (claim: Awaited<ReturnType<typeof claimAt>>, shardId: string, sequenceNumber: string, subSequenceNumber: number, lineage: string[]) => {
    if (!claim.won) throw new Error('expected a won claim');
    await ledger.complete({ policy: 'lineage-1', token: claim.token, epoch: 0, position: { shardId, sequenceNumber, subSequenceNumber, lineage }, events: [], state: 'present', outcome: 'created' });
  };
  await completeAt(await claimAt(parent, '900000', 5), parent, '900000', 5, []);
  const sameAggregateEarlier = await claimAt(parent, '900000', 4);
  t.is(sameAggregateEarlier.won ? 'won' : sameAggregateEarlier.because, 'duplicate-sequence', 'subsequence 4 lies before 5');
  const sameAggregateLater = await claimAt(parent, '900000', 6);
  t.true(sameAggregateLater.won, 'subsequence 6 of the same aggregate is new');
  await completeAt(sameAggregateLater, parent, '900000', 6, []);
  const onChild = await claimAt(child, '100', 0);
  t.true(onChild.won, 'a lower sequence number on a child shard is new');
  await completeAt(onChild, child, '100', 0, [parent]);
  const parentReplayed = await claimAt(parent, '999999', 0);
  t.is(parentReplayed.won ? 'won' : parentReplayed.because, 'duplicate-sequence', 'the parent lies behind its child, whatever its numbers');
});

test.serial('a re-apply scoped to one shard keeps the history of the others: a late retry elsewhere stays a duplicate', async (t) => {
  const { config, clients } = stackOf();
  const ledger = ledgerFromConfig(clients().dynamodb, { ...config, claimTtlMs: 60_000 });
  const iam = new FakeIam();
  const onY = processor({ owner: 'worker-y', applier: iam, epoch: await ledger.currentEpoch(['shard-y']) });
  await onY.pipeline.processBatch(streamRecords([upsertRecord('scoped-1', 'scoped-e1', doc(1))], 'shard-y'));
  await onY.pipeline.processBatch(streamRecords([upsertRecord('scoped-1', 'scoped-e2', doc(2))], 'shard-y'));

  const epoch = await ledger.advanceEpoch(['shard-x']); // ips replay --shard shard-x=... --reapply
  t.is(await ledger.currentEpoch(['shard-x']), epoch);
  t.is(await ledger.currentEpoch(['shard-x-child', 'shard-x']), epoch, "a descendant inherits its ancestor's epoch");
  const onYAfter = processor({ owner: 'worker-y2', applier: iam, epoch: await ledger.currentEpoch(['shard-y']) });
  const [late] = await onYAfter.pipeline.processBatch(streamRecords([upsertRecord('scoped-1', 'scoped-e1', doc(1))], 'shard-y'));
  t.is(late!.outcome, 'duplicate', 'the producer retry of the first event is not applied again');
  t.deepEqual(iam.policies.get('scoped-1')?.document, doc(2), 'no roll-back');

  const global = await ledger.advanceEpoch();
  t.true(global > epoch, 'epochs only move forward, whatever their scope');
  t.is(await ledger.currentEpoch(['shard-y']), global);
});

test.serial("a worker still on an older epoch cannot move an entry's epoch back down", async (t) => {
  const { config, clients } = stackOf();
  const ledger = ledgerFromConfig(clients().dynamodb, { ...config, claimTtlMs: 60_000 });
  const iam = new FakeIam();
  const epoch = await ledger.advanceEpoch(['shard-new']);
  const current = processor({ owner: 'current', applier: iam, epoch });
  await current.pipeline.processBatch(streamRecords([upsertRecord('epoch-down-1', 'ed-1', doc(1))], 'shard-new'));
  const zombie = processor({ owner: 'zombie', applier: iam, epoch: 0 });
  const [settled] = await zombie.pipeline.processBatch(streamRecords([upsertRecord('epoch-down-1', 'ed-2', doc(2))], 'shard-old'));
  t.is(settled!.outcome, 'updated');
  t.is((await ledger.get('epoch-down-1'))?.epoch, epoch, 'the entry keeps the newer epoch');
  const [retry] = await processor({ owner: 'current-2', applier: iam, epoch }).pipeline.processBatch(streamRecords([upsertRecord('epoch-down-1', 'ed-1', doc(1))], 'shard-new'));
  t.is(retry!.outcome, 'duplicate', 'the history in the newer epoch is intact');
});
