// The claim protocol when DynamoDB's answers are lost after the effect or
// throttled (the fault proxy between the ledger and DynamoDB Local): a
// takeover always leaves its re-verification mark, and a completion whose
// answer was lost is recognised as ours, not taken for a lost claim.
import test from 'ava';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import type { AwsClients } from '../../src/aws/clients.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import type { ClaimResult } from '../../src/ledger/ledger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import { startFaultProxy } from '../../tools/harness/fault-proxy.js';
import type { FaultProxy } from '../../tools/harness/fault-proxy.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { FakeIam, MemoryDeadLetters } from '../support/fakes.js';
import { doc, silentLogger, streamRecords, upsertRecord } from '../support/pipeline.js';

const LATE_WRITE_MS = 1_000;
let testStack: TestStack | undefined;
let proxy: FaultProxy | undefined;
let aws: AwsClients | undefined;
const stackOf = (): TestStack => testStack!;

test.before(async () => {
  testStack = await startTestStack({ shards: 1 });
  const { stack, config } = testStack;
  proxy = await startFaultProxy({ target: stack.env.AWS_ENDPOINT_URL_DYNAMODB!, protocol: 'dynamodb', rate: 0 });
  // The ledger's calls go through the proxy; the SDK retries what the proxy loses, as it would against AWS.
  aws = createAwsClients(config, { env: { ...stack.env, AWS_ENDPOINT_URL_DYNAMODB: proxy.endpoint } });
});

test.afterEach.always(() => proxy?.clearInjected());

test.after.always(async () => {
  if (aws) destroyAwsClients(aws);
  await proxy?.close();
  await testStack?.stack.stop();
});

function ledgerAt(now: () => number = Date.now, claimTtlMs = 1_000) {
  return ledgerFromConfig(aws!.dynamodb, { ...stackOf().config, claimTtlMs, lateWriteMs: LATE_WRITE_MS }, { now });
}

function processor(owner: string, iam: FakeIam, claimTtlMs = 1_000, metrics = new Metrics()) {
  const { config } = stackOf();
  const parts = {
    config: { ...config, claimTtlMs, lateWriteMs: LATE_WRITE_MS, retryBaseMs: 5, retryBackoffCapMs: 50 },
    logger: silentLogger,
    metrics,
    ledger: ledgerAt(Date.now, claimTtlMs),
    cache: new DedupCache(1_000),
    applier: iam,
    deadLetters: new MemoryDeadLetters(),
  };
  return { pipeline: createShardPipeline(parts, { shardId: 'shardId-000000000000', lineage: [], hashKeyRange: ALL_HASH_KEYS, epoch: 0, owner }), metrics, ledger: parts.ledger };
}

const record = { shardId: 's', sequenceNumber: '100', subSequenceNumber: 0 };
const won = (result: ClaimResult) => {
  if (!result.won) throw new Error(`expected a won claim, got ${result.because}`);
  return result;
};

// A takeover makes up to three UpdateItems (the claim refused by the live-looking
// claim, the takeover, the claim again): the answer of each is lost in turn.
for (const lost of [0, 1, 2]) {
  test.serial(`a takeover whose UpdateItem #${lost} loses its answer is still a takeover, and its mark with the late-write bound is in the ledger`, async (t) => {
    let clock = Date.now();
    const ledger = ledgerAt(() => clock);
    const policy = `lost-takeover-${lost}`;
    const old = won(await ledger.claim({ policy, record, eventId: 'e1', payloadHash: 'h1', owner: 'old', epoch: 0 }));
    clock += 2_000; // the old owner froze past its claim
    const lostBefore = proxy!.injected['reset-after'];
    proxy!.inject('reset-after', 'UpdateItem', 1, lost);
    const next = won(await ledger.claim({ policy, record, eventId: 'e1', payloadHash: 'h1', owner: 'new', epoch: 0 }));
    t.true(next.takenOver, 'the takeover is known as one');
    const entry = await ledger.get(policy);
    t.is(entry?.claim?.owner, 'new');
    t.is(entry?.verifyRequested, 1, 'one mark for the taken-over claim');
    t.is(entry?.verifyAfter, old.expiresAt + LATE_WRITE_MS, "until the old claim's writes can no longer land");
    t.is(proxy!.injected['reset-after'], lostBefore + 1, 'the answer was lost');
  });
}

test.serial("a takeover whose calls are throttled past the SDK's attempts never goes on without its mark", async (t) => {
  const iam = new FakeIam();
  const records = streamRecords([upsertRecord('throttled-takeover-1', 'tt-1', doc(1))]);
  const zombie = ledgerAt();
  won(await zombie.claim({ policy: 'throttled-takeover-1', record: records[0]!, eventId: 'tt-1', payloadHash: 'x', owner: 'zombie', epoch: 0 }));
  await new Promise((resolve) => setTimeout(resolve, 1_200)); // the zombie's claim expires; it is killed, never marks
  // A claim long enough that the throttled calls never reach its deadline (a lost claim would mark on its own).
  const successor = processor('successor', iam, 60_000);
  // Every attempt of the successor's second UpdateItem is throttled.
  proxy!.inject('throttle', 'UpdateItem', stackOf().config.awsMaxAttempts, 1);
  const [settled] = await successor.pipeline.processBatch(records);
  t.is(settled!.outcome, 'created');
  t.is(successor.metrics.total('verifications_requested', { why: 'lost during the IAM step' }), 0);
  const entry = await successor.ledger.get('throttled-takeover-1');
  t.true((entry?.verifyRequested ?? 0) >= 1, 'the taken-over claim left a mark');
  t.is(entry?.verifiedUpTo, entry?.verifyRequested, 'answered once the late writes could no longer land');
});

test.serial("a verification claim over another owner's expired claim waits until that claim's writes can no longer land", async (t) => {
  let clock = Date.now();
  const ledger = ledgerAt(() => clock);
  const policy = 'verify-over-expired-1';
  const first = won(await ledger.claim({ policy, record, eventId: 'v1', payloadHash: 'h1', owner: 'w', epoch: 0 }));
  await ledger.complete({ policy, token: first.token, epoch: 0, position: { ...record, lineage: [] }, events: [{ eventId: 'v1', payloadHash: 'h1' }], state: 'present', outcome: 'created' });
  await ledger.requestVerification(policy); // owed, due at once
  const later = { ...record, sequenceNumber: '200' };
  const zombie = won(await ledger.claim({ policy, record: later, eventId: 'v2', payloadHash: 'h2', owner: 'zombie', epoch: 0 }));
  clock = zombie.expiresAt + 1; // expired, but its writes may land for LATE_WRITE_MS more
  const early = await ledger.claimVerification(policy, 'verifier');
  t.false(early.won, "no verification while the expired claim's writes may still land");
  t.is(early.won ? '' : early.because, 'verification-waits');
  const entry = await ledger.get(policy);
  t.is(entry?.verifyAfter, zombie.expiresAt + LATE_WRITE_MS);
  t.is(entry?.verifyRequested, 2, 'the taken-over claim marked the policy');
  clock = zombie.expiresAt + LATE_WRITE_MS;
  const due = await ledger.claimVerification(policy, 'verifier');
  t.true(due.won);
  t.is(due.won ? due.previous?.verifyRequested : 0, 2, 'the verification answers both marks');
});

test.serial('a completion whose answer is lost is recognised as ours: no ClaimLostError', async (t) => {
  const ledger = ledgerAt(Date.now, 60_000);
  const policy = 'lost-completion-1';
  const claim = won(await ledger.claim({ policy, record, eventId: 'c1', payloadHash: 'h1', owner: 'w', epoch: 0 }));
  const lostBefore = proxy!.injected['reset-after'];
  proxy!.inject('reset-after', 'UpdateItem');
  await ledger.complete({ policy, token: claim.token, epoch: 0, position: { ...record, lineage: [] }, events: [{ eventId: 'c1', payloadHash: 'h1' }], state: 'present', outcome: 'created' });
  t.is(proxy!.injected['reset-after'], lostBefore + 1, 'the answer was lost');
  const entry = await ledger.get(policy);
  t.is(entry?.claim, undefined);
  t.deepEqual(entry?.position, { ...record, lineage: [] });
});

test.serial("a completion of someone else's claim still fails as a lost claim", async (t) => {
  let clock = Date.now();
  const ledger = ledgerAt(() => clock);
  const policy = 'lost-completion-2';
  const old = won(await ledger.claim({ policy, record, eventId: 'c1', payloadHash: 'h1', owner: 'old', epoch: 0 }));
  clock += 2_000;
  const next = won(await ledger.claim({ policy, record, eventId: 'c1', payloadHash: 'h1', owner: 'new', epoch: 0 }));
  const completion = { policy, epoch: 0, position: { ...record, lineage: [] }, events: [{ eventId: 'c1', payloadHash: 'h1' }], state: 'present' as const, outcome: 'created' };
  await ledger.complete({ ...completion, token: next.token });
  await t.throwsAsync(ledger.complete({ ...completion, token: old.token }), { name: 'ClaimLostError' });
});

test.serial("a verification's completion whose answer is lost is recognised as ours", async (t) => {
  const ledger = ledgerAt(Date.now, 60_000);
  const policy = 'lost-verification-1';
  const first = won(await ledger.claim({ policy, record, eventId: 'c1', payloadHash: 'h1', owner: 'w', epoch: 0 }));
  await ledger.complete({ policy, token: first.token, epoch: 0, position: { ...record, lineage: [] }, events: [{ eventId: 'c1', payloadHash: 'h1' }], state: 'present', outcome: 'created' });
  await ledger.requestVerification(policy);
  const claim = won(await ledger.claimVerification(policy, 'verifier'));
  const lostBefore = proxy!.injected['reset-after'];
  proxy!.inject('reset-after', 'UpdateItem');
  await ledger.completeVerification(policy, claim.token, 1);
  t.is(proxy!.injected['reset-after'], lostBefore + 1, 'the answer was lost');
  t.is((await ledger.get(policy))?.verifiedUpTo, 1);
});

test.serial('a step whose completion answer is lost settles its records as applied: no false mark, no re-run, one IAM write', async (t) => {
  const iam = new FakeIam();
  const p = processor('worker', iam);
  // The step's UpdateItems: the claim, then the completion, whose answer is lost.
  const lostBefore = proxy!.injected['reset-after'];
  proxy!.inject('reset-after', 'UpdateItem', 1, 1);
  const [settled] = await p.pipeline.processBatch(streamRecords([upsertRecord('lost-completion-3', 'lc-1', doc(1))]));
  t.is(proxy!.injected['reset-after'], lostBefore + 1, 'the answer was lost');
  t.is(settled!.outcome, 'created', 'logged as applied, not as a duplicate of itself');
  t.is(p.metrics.get('claims_lost'), 0);
  t.is(p.metrics.total('verifications_requested'), 0, 'no mark: the claim was never lost');
  t.is(iam.writes.length, 1);
  const entry = await p.ledger.get('lost-completion-3');
  t.is(entry?.verifyRequested, undefined);
});
