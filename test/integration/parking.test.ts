// Parking, on the real ledger table (DynamoDB Local) and real IAM (moto): a
// policy whose account's IAM stays unavailable (its breaker open) past
// IPS_PARK_AFTER_MS is parked and stops holding the shard; a later record of
// the policy joins the park at once, behind the others; the redriver applies
// the park in order once the account is back, and a replay afterwards is
// answered `duplicate`: nothing is lost and nothing takes effect twice.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../../src/config/config.js';
import { GetPolicyCommand, GetPolicyVersionCommand } from '@aws-sdk/client-iam';
import type { PolicyEvent } from '../../src/contract/event.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import { RejectedEventError, TransientError } from '../../src/faults/errors.js';
import { decodePolicyVersionDocument, documentsEqual } from '../../src/iam/document.js';
import { policyArn } from '../../src/iam/policies.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import { reconcilerApplier } from '../../src/intake/applier.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { eventRecord } from '../../src/ops/producer.js';
import { DynamoDbParkStore } from '../../src/park/park-store.js';
import { AccountOutages, OUTAGE_REMEMBERED_MS } from '../../src/park/parking.js';
import { Redriver } from '../../src/park/redriver.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import type { Applier, ApplyHint, StreamRecord } from '../../src/pipeline/types.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { MemoryDeadLetters } from '../support/fakes.js';
import { doc, silentLogger, streamRecords } from '../support/pipeline.js';

const stackOf = useTestStack(test, { shards: 1 });
const DOWN = '222222222222';
const SHARD = 'shardId-000000000000';

/**
 * The worker's IAM step, with account DOWN's IAM unavailable while `down`:
 * its events fail as the account's reconciler fails with its breaker open.
 * Events of every account are written to the emulator's one account (names
 * differ per account here), which is all this test needs of IAM.
 */
function outageApplier(real: Applier) {
  const state = { down: true, applied: [] as string[], tried: [] as string[], downAfter: undefined as string | undefined };
  const applier: Applier = {
    apply: async (event: PolicyEvent, hint?: ApplyHint) => {
      state.tried.push(event.eventId);
      if (event.account === DOWN && state.down) throw new TransientError('circuit-open', `account ${DOWN}: IAM circuit breaker open`);
      const step = await real.apply(event, hint);
      state.applied.push(event.eventId);
      // The account goes down right after this event's step (`downAfter`).
      if (event.eventId === state.downAfter) state.down = true;
      return step;
    },
  };
  return { applier, state };
}

function setUp(owner: string, claims: Partial<Pick<Config, 'claimTtlMs' | 'lateWriteMs'>> = {}, outages?: AccountOutages) {
  const { clients } = stackOf();
  const config = { ...stackOf().config, ...claims };
  const aws = clients();
  const metrics = new Metrics();
  const fast = { ...config, retryBaseMs: 5, retryBackoffCapMs: 50, parkAfterMs: 400 };
  const outage = outageApplier(reconcilerApplier(new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger })));
  const parks = new DynamoDbParkStore(aws.dynamodb, config.ledgerTable);
  const pipeline = createShardPipeline(
    {
      config: fast,
      logger: silentLogger,
      metrics,
      ledger: ledgerFromConfig(aws.dynamodb, config),
      cache: new DedupCache(1_000),
      applier: outage.applier,
      deadLetters: new MemoryDeadLetters(),
      parks,
      ...(outages ? { outages } : {}),
    },
    { shardId: SHARD, lineage: [], hashKeyRange: ALL_HASH_KEYS, epoch: 0, owner },
  );
  const redriver = new Redriver({ store: parks, redrive: (policy, records, verify) => pipeline.redrive(policy, records, verify), shards: [SHARD], everyMs: 60_000, metrics, logger: silentLogger });
  return { aws, config, pipeline, redriver, parks, outage, metrics };
}

const event = (name: string, eventId: string, variant: string, account?: string) => eventRecord(upsertedEvent({ eventId, name, document: doc(variant), ...(account ? { account } : {}) }));
const batch = (records: StreamRecord[]) => records.map((record, index) => ({ ...record, index }));

async function defaultDocument(aws: ReturnType<typeof setUp>['aws'], name: string): Promise<unknown> {
  const arn = policyArn({ account: LOCAL_ACCOUNT_ID }, '/stream-managed/', name);
  const policy = (await aws.iam.send(new GetPolicyCommand({ PolicyArn: arn }))).Policy!;
  const version = await aws.iam.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: policy.DefaultVersionId }));
  return decodePolicyVersionDocument(version.PolicyVersion!.Document!);
}

// Serial: both read the registry of parks, which the ledger table holds for every policy.
test.serial('an unavailable account is parked, not waited on; later records join behind; the redriver applies them in order once it is back; a replay takes no effect twice', async (t) => {
  const { aws, pipeline, redriver, parks, outage, metrics } = setUp('worker-1');
  const first = streamRecords([event('park-healthy', 'h1', 'h1'), event('park-down', 'd1', 'd1', DOWN), event('park-down', 'd2', 'd2', DOWN)], SHARD);

  const settled = await pipeline.processBatch(batch(first));
  t.deepEqual(
    settled.map((s) => [s.eventId, s.outcome, s.reason]),
    [
      ['h1', 'created', undefined],
      ['d1', 'parked', 'circuit-open'],
      ['d2', 'parked', 'circuit-open'],
    ],
    'the healthy account is applied; the unavailable one is parked after IPS_PARK_AFTER_MS, and the batch settles',
  );
  t.deepEqual([...(await parks.parkedPolicies())], [`${DOWN}/park-down`]);

  // A later record of the parked policy joins the park at once (no wait), behind the others; the healthy policy moves on.
  const second = streamRecords([event('park-down', 'd3', 'd3', DOWN), event('park-healthy', 'h2', 'h2')], SHARD);
  const joined = await pipeline.processBatch(batch(second));
  t.deepEqual(
    joined.map((s) => [s.eventId, s.outcome, s.reason]),
    [
      ['d3', 'parked', 'behind-parked'],
      ['h2', 'updated', undefined],
    ],
  );
  t.false(outage.state.tried.includes('d3'), 'a record joining a park is not tried against its account first');
  t.deepEqual(
    (await parks.records(`${DOWN}/park-down`)).map((r) => r.event.eventId),
    ['d1', 'd2', 'd3'],
    'parked in stream order',
  );

  // A new policy of the account, met while it is known unavailable, is parked at once: no window of its own.
  const third = streamRecords([event('park-down-new', 'n1', 'n1', DOWN)], SHARD);
  const atOnce = await pipeline.processBatch(batch(third));
  t.deepEqual(
    atOnce.map((s) => [s.eventId, s.outcome, s.reason]),
    [['n1', 'parked', 'circuit-open']],
  );
  t.false(outage.state.tried.includes('n1'), 'a policy of an account known unavailable is not tried first');

  // Still down: the redriver leaves them parked, and says how many.
  const waiting = await redriver.round();
  t.is(waiting.redriven, 0);
  t.is(waiting.parked.get(DOWN), 4);
  t.is(metrics.gaugeValue('parked_records', { account: DOWN }), 4);
  t.false(
    outage.state.applied.some((id) => id.startsWith('d')),
    'parked records are not applied',
  );

  // Back: applied in order (the fold: d3's document), the park gone.
  outage.state.down = false;
  const back = await redriver.round();
  t.is(back.redriven, 4);
  t.true(documentsEqual(await defaultDocument(aws, 'park-down'), doc('d3')));
  t.true(documentsEqual(await defaultDocument(aws, 'park-down-new'), doc('n1')));
  t.deepEqual([...(await parks.parkedPolicies())], []);
  t.is(await parks.summary(`${DOWN}/park-down`), undefined);
  t.is(metrics.gaugeValue('parked_records', { account: DOWN }), 0, 'the gauge goes back to 0 once drained');
  const appliedOnce = outage.state.applied.filter((id) => id.startsWith('d'));
  // The redrive was the account's probe: a new policy of it is tried again.
  const later = await pipeline.processBatch(batch(streamRecords([event('park-down-later', 'l1', 'l1', DOWN)], SHARD)));
  t.deepEqual(
    later.map((s) => [s.eventId, s.outcome]),
    [['l1', 'created']],
  );

  // A replay of everything (checkpoint reset): duplicates, nothing parked, no effect again.
  const replay = setUp('worker-2');
  replay.outage.state.down = false;
  const replayed = await replay.pipeline.processBatch(batch([...first, ...second, ...third]));
  t.true(
    replayed.every((s) => s.outcome === 'duplicate'),
    JSON.stringify(replayed.map((s) => s.outcome)),
  );
  t.deepEqual(replay.outage.state.applied, [], 'no IAM step for a replayed record');
  t.deepEqual(appliedOnce.length, 1, `the park's records coalesce into one IAM step, applied once: ${appliedOnce}`);
});

test.serial(
  "a re-verification owed when the account goes down is parked, not waited on: the batch settles; the policy's later records join; the redriver re-verifies IAM once the account is back, before them",
  async (t) => {
    const { aws, config, pipeline, redriver, parks, outage } = setUp('worker-verify', { claimTtlMs: 300, lateWriteMs: 2_000 });
    const key = `${DOWN}/park-verify`;
    const ledger = ledgerFromConfig(aws.dynamodb, config);
    const [first] = streamRecords([event('park-verify', 'v1', 'v1', DOWN)], SHARD);
    // A zombie's claim on the policy, expired: the next claim takes it over, and IAM is owed a
    // re-verification once the zombie's late writes can no longer land: 2 s after its expiry, later
    // than the step, which so cannot answer the mark itself.
    await ledger.claim({ policy: key, record: first!, eventId: 'zombie', payloadHash: 'zombie', owner: 'zombie', epoch: 0 });
    await sleep(400);
    outage.state.down = false;
    outage.state.downAfter = 'v1';

    const settled = await pipeline.processBatch(batch([first!]));
    t.deepEqual(
      settled.map((s) => [s.eventId, s.outcome]),
      [['v1', 'created']],
      'the record is settled though its re-verification cannot run',
    );
    const park = await parks.summary(key);
    t.like(park, { records: 0, verify: true, reason: 'circuit-open' }, 'the re-verification is parked');
    const marked = (await ledger.get(key))!;
    t.true((marked.verifiedUpTo ?? 0) < (marked.verifyRequested ?? 0), 'the mark stays unanswered in the ledger');

    const [second] = streamRecords([event('park-verify', 'v2', 'v2', DOWN)], SHARD);
    const joined = await pipeline.processBatch(batch([second!]));
    t.deepEqual(
      joined.map((s) => [s.eventId, s.outcome, s.reason]),
      [['v2', 'parked', 'behind-parked']],
    );

    t.is((await redriver.round()).redriven, 0, 'still down: nothing is redriven');
    t.true((await parks.summary(key))?.verify);

    outage.state.down = false;
    const triedBefore = outage.state.tried.length;
    t.is((await redriver.round()).redriven, 1);
    t.deepEqual(outage.state.tried.slice(triedBefore), [`verify:${key}`, 'v2'], "IAM re-verified (to the ledger's v1) before the later record");
    t.is(await parks.summary(key), undefined, 'the park is gone');
    t.deepEqual([...(await parks.parkedPolicies())], []);
    const entry = (await ledger.get(key))!;
    t.true((entry.verifiedUpTo ?? 0) >= (entry.verifyRequested ?? 0), 'the mark is answered');
    t.true(documentsEqual(await defaultDocument(aws, 'park-verify'), doc('v2')));
  },
);

test.serial(
  'an account stays known unavailable while the redriver finds it still down: a new policy of it met after OUTAGE_REMEMBERED_MS is parked at once, not held IPS_PARK_AFTER_MS again',
  async (t) => {
    const clock = { now: Date.now() };
    const { pipeline, redriver, outage } = setUp('worker-remembered', {}, new AccountOutages(() => clock.now));
    const parkedFirst = await pipeline.processBatch(batch(streamRecords([event('park-remembered', 'r1', 'r1', DOWN)], SHARD)));
    t.deepEqual(
      parkedFirst.map((s) => [s.eventId, s.outcome, s.reason]),
      [['r1', 'parked', 'circuit-open']],
    );
    // The redriver probes the account on its rounds (every IPS_REDRIVE_EVERY_MS, far shorter than the memory): still down.
    for (let round = 1; round <= 3; round++) {
      clock.now += OUTAGE_REMEMBERED_MS / 2;
      t.is((await redriver.round()).redriven, 0, `round ${round}: still down`);
    }
    const [late] = streamRecords([event('park-remembered-new', 'r2', 'r2', DOWN)], SHARD);
    const settled = await pipeline.processBatch(batch([late!]));
    t.deepEqual(
      settled.map((s) => [s.eventId, s.outcome, s.reason]),
      [['r2', 'parked', 'circuit-open']],
    );
    t.false(outage.state.tried.includes('r2'), `the redriver's failed probes keep the outage known: a new policy is not tried (and held) first; tried ${outage.state.tried}`);
    outage.state.down = false;
    t.is((await redriver.round()).redriven, 2, 'back: both parks applied');
  },
);

const followsAnotherShardsPark = test.macro(async (t, tag: string, retry: Pick<Config, 'retryBaseMs' | 'retryBackoffCapMs'>) => {
  const outages = new AccountOutages();
  const first = setUp(`worker-shared-outage-${tag}`, {}, outages);
  // A second shard of the same process, sharing its memory of outages, whose window is far longer than the test.
  const { aws, config } = first;
  const otherShard = 'shardId-000000000001';
  const other = createShardPipeline(
    {
      config: { ...config, ...retry },
      logger: silentLogger,
      metrics: new Metrics(),
      ledger: ledgerFromConfig(aws.dynamodb, config),
      cache: new DedupCache(1_000),
      applier: first.outage.applier,
      deadLetters: new MemoryDeadLetters(),
      parks: first.parks,
    },
    { shardId: otherShard, lineage: [], hashKeyRange: ALL_HASH_KEYS, epoch: 0, owner: `worker-shared-outage-${tag}-2` },
    { parking: { store: first.parks, afterMs: 600_000, outages } },
  );
  // The other shard's policy starts failing first; then this shard's policy fails for IPS_PARK_AFTER_MS (400 ms) and is parked.
  const waiting = other.processBatch(batch(streamRecords([event(`park-shared-b-${tag}`, 'b1', 'b1', DOWN)], otherShard)));
  await sleep(100);
  const parkedHere = await first.pipeline.processBatch(batch(streamRecords([event(`park-shared-a-${tag}`, 'a1', 'a1', DOWN)], SHARD)));
  t.deepEqual(
    parkedHere.map((s) => [s.eventId, s.outcome, s.reason]),
    [['a1', 'parked', 'circuit-open']],
  );
  const settled = await Promise.race([waiting, sleep(10_000).then(() => 'still held' as const)]);
  t.not(settled, 'still held', "the other shard's batch is not held for its own window");
  if (settled !== 'still held')
    t.deepEqual(
      settled.map((s) => [s.eventId, s.outcome, s.reason]),
      [['b1', 'parked', 'circuit-open']],
    );
  first.outage.state.down = false;
  t.is((await first.redriver.round()).redriven, 1, "this shard's park applied");
  const otherRedriver = new Redriver({
    store: first.parks,
    redrive: (policy, records, verify) => other.redrive(policy, records, verify),
    shards: [otherShard],
    everyMs: 60_000,
    metrics: new Metrics(),
    logger: silentLogger,
  });
  t.is((await otherRedriver.round()).redriven, 1, "the other shard's park applied");
});

test.serial(
  "a policy failing for its account follows another shard's policy parked for that account's sake: it is parked at its next failure, not after a window of its own",
  followsAnotherShardsPark,
  'fast',
  { retryBaseMs: 5, retryBackoffCapMs: 50 },
);

// Its backoff after some tries is seconds long (full jitter up to IPS_RETRY_BACKOFF_CAP_MS): the park ends the wait.
test.serial(
  "a policy failing for its account, waiting out a long backoff between tries, follows another shard's park for the account at once, not at its next try",
  followsAnotherShardsPark,
  'long-backoff',
  { retryBaseMs: 600_000, retryBackoffCapMs: 600_000 },
);

const SLOW = '333333333333';

/**
 * (The same promise with IAM throttling for real, through the fault proxy and
 * the child's own wiring, is slow-account.test.ts; here the slowness is
 * scripted, so the test can say exactly which steps were given up.)
 *
 * The worker's IAM step with account SLOW's IAM slow rather than down: its
 * calls succeed, but only after `slowMs` (the rate its throttling lets
 * through), unless the step is given up first (its guard aborts the call).
 * The own account's calls take `ownMs`. `times` may change as the test goes.
 */
function slowApplier(real: Applier, times: { slowMs: number; ownMs: number }) {
  const state = { applied: [] as string[], givenUp: [] as string[] };
  const wait = (ms: number, signal: AbortSignal | undefined) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      const giveUp = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', giveUp, { once: true });
    });
  const applier: Applier = {
    apply: async (event: PolicyEvent, hint?: ApplyHint) => {
      try {
        await wait(event.account === SLOW ? times.slowMs : event.account === undefined ? times.ownMs : 0, hint?.guard?.signal);
      } catch (error) {
        state.givenUp.push(event.eventId);
        throw error;
      }
      const step = await real.apply(event, hint);
      state.applied.push(event.eventId);
      return step;
    },
  };
  return { applier, state };
}

/** A shard's pipeline whose account SLOW is rate-bound lately (given up when it alone holds the batch), over the stack's ledger and park store. */
function rateBoundPipeline(aws: ReturnType<typeof setUp>['aws'], config: Config, applier: Applier, metrics: Metrics, owner: string) {
  const parks = new DynamoDbParkStore(aws.dynamodb, config.ledgerTable);
  const ledger = ledgerFromConfig(aws.dynamodb, config);
  const deadLetters = new MemoryDeadLetters();
  const pipeline = createShardPipeline(
    { config, logger: silentLogger, metrics, ledger, cache: new DedupCache(1_000), applier, deadLetters, parks, rateBoundLately: (account) => account === SLOW },
    { shardId: SHARD, lineage: [], hashKeyRange: ALL_HASH_KEYS, epoch: 0, owner },
  );
  return { pipeline, parks, ledger, deadLetters };
}

/**
 * The batch's settlements, or a failure once it has been held 15 s: a
 * liveness bound, not a timing (and a timer that keeps the test's process
 * alive, as the daemon's pipe keeps a worker's: the give-up's timers do not).
 */
async function settledUnlessHeld(pipeline: ReturnType<typeof rateBoundPipeline>['pipeline'], records: StreamRecord[]) {
  return Promise.race([
    pipeline.processBatch(batch(records)),
    sleep(15_000).then(() => {
      throw new Error('the batch waited for a given-up step');
    }),
  ]);
}

test.serial(
  "a slow account (its IAM throttling, its calls succeeding late) is given up after IPS_PARK_AFTER_MS and parked; the other accounts' records and the own account's settle; the redriver applies the park",
  async (t) => {
    const { config, clients } = stackOf();
    const aws = clients();
    const metrics = new Metrics();
    const fast = { ...config, retryBaseMs: 5, retryBackoffCapMs: 50, parkAfterMs: 400 };
    const times = { slowMs: 30_000, ownMs: 1_000 };
    const slow = slowApplier(reconcilerApplier(new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger })), times);
    // SLOW throttles lately; the own account's records are never given up, slow or not.
    const { pipeline, parks, ledger } = rateBoundPipeline(aws, fast, slow.applier, metrics, 'worker-slow');
    const records = streamRecords([event('slow-healthy', 's-h1', 'h1', DOWN), event('slow-one', 's-1', 'one', SLOW), event('slow-two', 's-2', 'two', SLOW), event('slow-own', 's-o1', 'own')], SHARD);
    const settled = await pipeline.processBatch(batch(records));
    t.deepEqual(
      settled.map((s) => [s.eventId, s.outcome, s.reason]),
      [
        ['s-h1', 'created', undefined],
        ['s-1', 'parked', 'account-slow'],
        ['s-2', 'parked', 'account-slow'],
        ['s-o1', 'created', undefined],
      ],
      "the slow account's policies are parked instead of holding the batch; the own account's slow step is waited for",
    );
    t.deepEqual(slow.state.givenUp.sort(), ['s-1', 's-2'], 'the steps in flight were given up (their calls cancelled)');
    // A given-up step's call may still land: the policy owes a re-verification before its next step is trusted.
    const entry = await ledger.get(`${SLOW}/slow-one`);
    t.true((entry?.verifyRequested ?? 0) > (entry?.verifiedUpTo ?? 0), JSON.stringify(entry));

    // The account at its pace: the redriver applies the parks, in order, off the shard's checkpoint.
    const redriver = new Redriver({ store: parks, redrive: (policy, parked) => pipeline.redrive(policy, parked), shards: [SHARD], everyMs: 60_000, metrics, logger: silentLogger });
    times.slowMs = 0;
    const round = await redriver.round();
    t.is(round.redriven, 2);
    t.true(documentsEqual(await defaultDocument(aws, 'slow-one'), doc('one')));
    t.true(documentsEqual(await defaultDocument(aws, 'slow-two'), doc('two')));
    t.deepEqual([...(await parks.parkedPolicies())], []);
  },
);

test.serial(
  "a given-up step is not waited for when its call cannot hear the abort (the SDK's backoff between retries): the batch settles with the slow account's policies parked, and the call never lands",
  async (t) => {
    const { config, clients } = stackOf();
    const aws = clients();
    const metrics = new Metrics();
    // lateWriteMs: the redrive's re-verification waits that long for a late write of the given-up step.
    const fast = { ...config, retryBaseMs: 5, retryBackoffCapMs: 50, parkAfterMs: 400, lateWriteMs: 1_000 };
    const deaf = { ms: 30_000, landed: [] as string[] };
    const real = reconcilerApplier(new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger }));
    const applier: Applier = {
      apply: async (event: PolicyEvent, hint?: ApplyHint) => {
        if (event.account === SLOW && deaf.ms > 0) {
          // A wait no signal cuts short, as the SDK's between two attempts; then the next attempt meets the aborted signal (limitCalls).
          await new Promise<void>((resolve) => setTimeout(resolve, deaf.ms).unref());
          if (hint?.guard?.signal.aborted) throw hint.guard.signal.reason;
        }
        const step = await real.apply(event, hint);
        deaf.landed.push(event.eventId);
        return step;
      },
    };
    const { pipeline, parks } = rateBoundPipeline(aws, fast, applier, metrics, 'worker-deaf');
    const records = streamRecords([event('deaf-healthy', 'df-h1', 'h1', DOWN), event('deaf-one', 'df-1', 'one', SLOW)], SHARD);
    // Before, the batch waited for the deaf call's 30 s.
    const settled = await settledUnlessHeld(pipeline, records);
    t.deepEqual(
      settled.map((s) => [s.eventId, s.outcome, s.reason]),
      [
        ['df-h1', 'created', undefined],
        ['df-1', 'parked', 'account-slow'],
      ],
    );
    t.deepEqual(deaf.landed, ['df-h1'], 'the given-up call has not landed');
    t.deepEqual(
      [...(await parks.parkedPolicies())].filter((key) => key.includes('deaf')),
      [`${SLOW}/deaf-one`],
    );
    // Drained, for the tests after this one.
    deaf.ms = 0;
    const redriver = new Redriver({ store: parks, redrive: (policy, parked) => pipeline.redrive(policy, parked), shards: [SHARD], everyMs: 60_000, metrics, logger: silentLogger });
    t.is((await redriver.round()).redriven, 1);
    t.true(documentsEqual(await defaultDocument(aws, 'deaf-one'), doc('one')));
  },
);

test.serial("a refusal that a given-up step meets after the give-up is not dead-lettered: the record is the park's, and the redriver settles it", async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const metrics = new Metrics();
  const fast = { ...config, retryBaseMs: 5, retryBackoffCapMs: 50, parkAfterMs: 400, lateWriteMs: 1_000 };
  const real = reconcilerApplier(new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger }));
  const refusal = { late: true, thrown: undefined as Promise<void> | undefined };
  const applier: Applier = {
    apply: async (event: PolicyEvent, hint?: ApplyHint) => {
      if (event.account === SLOW && refusal.late) {
        // IAM's answer comes only after the give-up, and it is a refusal.
        const signal = hint!.guard!.signal;
        refusal.thrown = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        await refusal.thrown;
        throw new RejectedEventError('iam:MalformedPolicyDocument', 'refused after the give-up');
      }
      return real.apply(event, hint);
    },
  };
  const { pipeline, parks, deadLetters } = rateBoundPipeline(aws, fast, applier, metrics, 'worker-refused');
  const records = streamRecords([event('late-healthy', 'lr-h1', 'h1', DOWN), event('late-refused', 'lr-1', 'one', SLOW)], SHARD);
  const settled = await settledUnlessHeld(pipeline, records);
  t.deepEqual(
    settled.map((s) => [s.eventId, s.outcome, s.reason]),
    [
      ['lr-h1', 'created', undefined],
      ['lr-1', 'parked', 'account-slow'],
    ],
  );
  // The abandoned step has met its refusal (its catch runs after these turns of the event loop).
  await refusal.thrown;
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
  t.deepEqual(
    [...deadLetters.letters.values()].map((letter) => letter.eventId),
    [],
    'no dead letter for a parked record',
  );
  // Drained, for the tests after this one: the account answers now.
  refusal.late = false;
  const redriver = new Redriver({ store: parks, redrive: (policy, parked) => pipeline.redrive(policy, parked), shards: [SHARD], everyMs: 60_000, metrics, logger: silentLogger });
  t.is((await redriver.round()).redriven, 1);
  t.true(documentsEqual(await defaultDocument(aws, 'late-refused'), doc('one')));
});
