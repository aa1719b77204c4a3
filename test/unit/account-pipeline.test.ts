// The shard pipeline with accounts: the same name in two accounts is two
// policies (two ledger entries, two IAM steps, neither coalesced into the
// other), an event without an account keeps today's ledger key, and an event
// for an account the workers may not write to is rejected
// `account-not-allowed` and dead-lettered before the ledger or IAM is touched.
import test from 'ava';
import type { PolicyEvent } from '../../src/contract/event.js';
import { eventRecord } from '../../src/ops/producer.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { METRIC, metricKey } from '../../src/metrics/metrics.js';
import type { Applier } from '../../src/pipeline/types.js';
import { doc, harness, streamRecords } from '../support/pipeline.js';

const OWN = '123456789012';

/** IAM steps as the applier received them: the account each was for, and the policy. */
function recordingApplier(): Applier & { steps: string[] } {
  const steps: string[] = [];
  return {
    steps,
    apply: async (event: PolicyEvent) => {
      steps.push(`${event.account ?? 'own'}:${event.policyName}:${event.eventId}`);
      return 'created';
    },
  };
}

const record = (eventId: string, account: string | undefined) => eventRecord(upsertedEvent({ eventId, ...(account ? { account } : {}), name: 'p', document: doc(eventId) }));

test('the same name in three accounts is three policies: three ledger entries, three IAM steps, none superseded; an account not allowed is dead-lettered before the ledger', async (t) => {
  const applier = recordingApplier();
  const h = harness({ applier, accounts: { own: OWN, targets: ['111111111111'] } });
  const settlements = await h.pipeline.processBatch(streamRecords([record('e-own', undefined), record('e-111', '111111111111'), record('e-own-named', OWN), record('e-333', '333333333333')]));
  t.deepEqual(
    settlements.map((s) => [s.outcome, s.reason, s.account]),
    [
      ['created', undefined, undefined],
      ['created', undefined, '111111111111'],
      ['created', undefined, OWN],
      ['rejected', 'account-not-allowed', '333333333333'],
    ],
  );
  t.deepEqual(applier.steps.sort(), [`${OWN}:p:e-own-named`, '111111111111:p:e-111', 'own:p:e-own'].sort());
  t.truthy(await h.ledger.get('p'), "an event without an account keeps today's key: the name");
  t.truthy(await h.ledger.get('111111111111/p'));
  t.truthy(await h.ledger.get(`${OWN}/p`));
  t.is(await h.ledger.get('333333333333/p'), undefined, 'the account not allowed left no ledger entry');
  const letters = [...h.deadLetters.letters.values()];
  t.is(letters.length, 1);
  t.is(letters[0]!.reason, 'account-not-allowed');
  t.is(letters[0]!.account, '333333333333');
  t.is(letters[0]!.policyName, 'p');
  t.regex(letters[0]!.detail, /333333333333/);
  const counters = h.metrics.summary().counters;
  t.is(counters[metricKey(METRIC.outcomes, { outcome: 'created', account: '111111111111' })], 1, 'outcomes carry the Account dimension');
  t.is(counters[metricKey(METRIC.outcomes, { outcome: 'created' })], 1, "the own account's unnamed events keep today's series");
  t.is(counters[metricKey(METRIC.rejections, { reason: 'account-not-allowed', account: '333333333333' })], 1);
});

test('without IPS_TARGET_ACCOUNTS only the own account is allowed', async (t) => {
  const applier = recordingApplier();
  const h = harness({ applier, accounts: { own: OWN, targets: [] } });
  const settlements = await h.pipeline.processBatch(streamRecords([record('a', OWN), record('b', '111111111111')]));
  t.deepEqual(
    settlements.map((s) => [s.outcome, s.reason]),
    [
      ['created', undefined],
      ['rejected', 'account-not-allowed'],
    ],
  );
});

test("a slow account's policies never take another account's places: each account gets its own IPS_MAX_CONCURRENT_POLICIES", async (t) => {
  const SLOW = '222222222222';
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  const fastDone: string[] = [];
  const applier: Applier = {
    apply: async (event: PolicyEvent) => {
      if (event.account === SLOW) await held;
      else fastDone.push(event.eventId);
      return 'created';
    },
  };
  const h = harness({ applier, maxConcurrentPolicies: 2, accounts: { own: OWN, targets: ['111111111111', SLOW] } });
  const named = (eventId: string, account: string, name: string) => eventRecord(upsertedEvent({ eventId, account, name, document: doc(eventId) }));
  // The slow account's three policies come first in the batch, more than the two places a batch has.
  const batch = h.pipeline.processBatch(streamRecords([named('s1', SLOW, 'a'), named('s2', SLOW, 'b'), named('s3', SLOW, 'c'), named('f1', '111111111111', 'a')]));
  const deadline = Date.now() + 2_000;
  while (fastDone.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  t.deepEqual(fastDone, ['f1'], 'the other account was applied while the slow one held both of its places');
  release();
  t.deepEqual(
    (await batch).map((s) => s.outcome),
    ['created', 'created', 'created', 'created'],
  );
});
