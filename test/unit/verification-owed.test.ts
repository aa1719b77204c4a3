// A re-verification a policy owes (a lost claim's write may have landed) is
// never lost on the way to its next step, and an upsert never judges a
// policy our ledger deleted `unchanged` from a read that may lag that delete.
// Found by the simulation (seeds 34874, 37841): a worker whose claim was
// refused (another owner held it) taught its cache from the entry, its retry
// answered every record from the cache and never met the mark; and an upsert
// right after our own delete read the deleted policy and left IAM without it.
import test from 'ava';
import type { ApplyHint, Applier } from '../../src/pipeline/types.js';
import { planPolicyBatch } from '../../src/pipeline/policy-plan.js';
import { FakeIam, MemoryLedger } from '../support/fakes.js';
import { doc, harness, streamRecords, upsertRecord } from '../support/pipeline.js';

function recording(iam: FakeIam) {
  const hints: { eventId: string; hint: ApplyHint | undefined }[] = [];
  const applier: Applier = {
    apply: (event, hint) => {
      hints.push({ eventId: event.eventId, hint });
      return iam.apply(event);
    },
  };
  return { applier, hints };
}

test('a claim refused because another owner holds it does not teach the cache: the retry meets the entry and runs the re-verification it owes', async (t) => {
  // The ledger's clock runs with the real one (claim keepers read Date.now), and jumps ahead on purpose.
  const clock = { ahead: 0 };
  const now = () => Date.now() + clock.ahead;
  const ledger = new MemoryLedger(60_000, now, 0);
  const iam = new FakeIam();
  const records = streamRecords([upsertRecord('owed', 'o-1', doc(1))]);
  await harness({ ledger, iam, owner: 'first' }).pipeline.processBatch(records);
  // A lost claim's write may have landed (the mark), and another owner holds the policy's claim for now.
  const entry = ledger.entries.get('owed')!;
  entry.verifyRequested = (entry.verifiedUpTo ?? 0) + 1;
  entry.claim = { owner: 'other', token: 'their-token', expiresAt: now() + 1_000, sequence: records[0]!.sequenceNumber };
  setTimeout(() => (clock.ahead += 5_000), 50); // their claim expires while this worker retries

  const { applier, hints } = recording(iam);
  const [redelivered] = await harness({ ledger, iam, applier, owner: 'second' }).pipeline.processBatch(records);
  t.is(redelivered!.outcome, 'duplicate');
  t.true(
    hints.some(({ hint }) => hint?.forceWrite === true),
    'IAM was re-verified (the converge step writes the ledger state whatever IAM shows)',
  );
  const after = ledger.entries.get('owed')!;
  t.true((after.verifiedUpTo ?? 0) >= (after.verifyRequested ?? 0), 'the mark is answered');
});

test("an upsert after our ledger's delete writes its document: a read showing the policy may lag that delete", async (t) => {
  const iam = new FakeIam();
  const { applier, hints } = recording(iam);
  const h = harness({ iam, applier });
  await h.pipeline.processBatch(streamRecords([upsertRecord('lagging', 'l-1', doc(1))]));
  await h.pipeline.processBatch(
    streamRecords([{ partitionKey: 'lagging', data: Buffer.from(JSON.stringify({ specVersion: '1', eventId: 'l-2', type: 'policy.deleted', policy: { name: 'lagging' } })) }]),
  );
  await h.pipeline.processBatch(streamRecords([upsertRecord('lagging', 'l-3', doc(1))]));
  t.is(hints.find(({ eventId }) => eventId === 'l-3')?.hint?.forceWrite, true);
  t.not(hints.find(({ eventId }) => eventId === 'l-1')?.hint?.forceWrite, true, 'a policy never deleted is judged as before');
  // The plan says so from the ledger's entry alone.
  const plan = planPolicyBatch({ records: [], open: [], entry: h.ledger.entries.get('lagging'), archived: [], takenOver: false });
  t.false(plan.start.deletedByLedger === true, 'present again once the upsert completed');
});
