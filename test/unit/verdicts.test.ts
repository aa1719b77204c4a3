// A record's outcome depends only on the event and the ledger's state: not on
// where the batch boundaries fall, not on which layer (cache, batch, ledger)
// met it, and not on whether it arrives live or in a replay.
import test from 'ava';
import fc from 'fast-check';
import type { PolicyEvent } from '../../src/contract/event.js';
import type { IamOutcome, Outcome } from '../../src/contract/outcome.js';
import { deletedEvent, upsertedEvent } from '../../src/contract/wire-event.js';
import { RejectedEventError } from '../../src/faults/errors.js';
import { eventRecord } from '../../src/ops/producer.js';
import type { Settlement, StreamRecord } from '../../src/pipeline/types.js';
import { FakeIam, MemoryDeadLetters, MemoryLedger } from '../support/fakes.js';
import { doc, harness, streamRecords, upsertRecord } from '../support/pipeline.js';

const OTHER_PATH = '/stream-managed/other/';

function upsert(policy: string, eventId: string, variant: number | string, options: { revision?: number; path?: string } = {}) {
  return eventRecord(upsertedEvent({ eventId, name: policy, document: doc(variant), ...options }));
}

/** IAM that permanently refuses the events whose eventId starts with `bad` (a document IAM will not take). */
function refusingIam(iam = new FakeIam()) {
  return {
    iam,
    applier: {
      apply: (event: PolicyEvent): Promise<IamOutcome> => (event.eventId.startsWith('bad') ? Promise.reject(new RejectedEventError('iam:MalformedPolicyDocument', 'refused')) : iam.apply(event)),
    },
  };
}

/** Outcomes, with the reason of a rejection (where a duplicate was caught is not part of the verdict). */
const verdicts = (settlements: Settlement[]) => settlements.map((s) => (s.outcome === 'rejected' ? `rejected:${s.reason}` : s.outcome));

test('a refused revision does not make a later revision of the same batch stale (path-conflict)', async (t) => {
  const h = harness();
  await h.pipeline.processBatch(streamRecords([upsert('hw-1', 'r3', 3, { revision: 3 })]));
  const settlements = await h.pipeline.processBatch(streamRecords([upsert('hw-1', 'r5', 5, { revision: 5, path: OTHER_PATH }), upsert('hw-1', 'r4', 4, { revision: 4 })]));
  t.deepEqual(verdicts(settlements), ['rejected:path-conflict', 'updated']);
  t.deepEqual(h.iam.policies.get('hw-1')?.document, doc(4), "revision 4's document is IAM's");
  t.is(h.ledger.entries.get('hw-1')?.revision, 4, 'the refused revision 5 is not remembered');
});

test('a revision IAM refuses does not make a later revision of the same batch stale', async (t) => {
  const { iam, applier } = refusingIam();
  const h = harness({ iam, applier });
  await h.pipeline.processBatch(streamRecords([upsert('hw-2', 'r3', 3, { revision: 3 })]));
  const settlements = await h.pipeline.processBatch(streamRecords([upsert('hw-2', 'bad-r5', 5, { revision: 5 }), upsert('hw-2', 'r4', 4, { revision: 4 })]));
  t.deepEqual(verdicts(settlements), ['rejected:iam:MalformedPolicyDocument', 'updated']);
  t.deepEqual(iam.policies.get('hw-2')?.document, doc(4));
});

test('a retry of a refused event in the same batch is tried again, as it would be in the next batch', async (t) => {
  const { iam, applier } = refusingIam();
  const h = harness({ iam, applier });
  const settlements = await h.pipeline.processBatch(streamRecords([upsert('hw-3', 'bad-1', 1), upsert('hw-3', 'bad-1', 1)]));
  t.deepEqual(verdicts(settlements), ['rejected:iam:MalformedPolicyDocument', 'rejected:iam:MalformedPolicyDocument']);
  t.is(h.deadLetters.letters.size, 2, 'each record has its letter');
});

test('after a refused revision, a later one is applied before a delete the attachments keep, as in order', async (t) => {
  const { iam, applier } = refusingIam();
  const h = harness({ iam, applier });
  await h.pipeline.processBatch(streamRecords([upsert('hw-5', 'r0', 0, { revision: 0 })]));
  iam.attached.add('hw-5');
  const settlements = await h.pipeline.processBatch(
    streamRecords([
      upsert('hw-5', 'r1', 1, { revision: 1 }),
      upsert('hw-5', 'bad-r5', 5, { revision: 5 }),
      upsert('hw-5', 'r4', 4, { revision: 4 }),
      eventRecord(deletedEvent({ eventId: 'd6', name: 'hw-5', revision: 6 })),
    ]),
  );
  t.deepEqual(verdicts(settlements), ['updated', 'rejected:iam:MalformedPolicyDocument', 'updated', 'retained-in-use']);
  t.deepEqual(iam.policies.get('hw-5')?.document, doc(4));
  t.is(h.ledger.entries.get('hw-5')?.revision, 6);
  t.is(h.ledger.entries.get('hw-5')?.state, 'retained-in-use');
});

test('a redelivered record that was refused does not make a new record of the batch stale', async (t) => {
  const h = harness();
  await h.pipeline.processBatch(streamRecords([upsert('hw-4', 'r3', 3, { revision: 3 })]));
  const [refused] = streamRecords([upsert('hw-4', 'r5', 5, { revision: 5, path: OTHER_PATH })]);
  const [first] = await h.pipeline.processBatch([refused!]);
  t.is(first!.reason, 'path-conflict');
  // The daemon hands the refused record over again (a restart before the checkpoint), then a new one.
  const [next] = streamRecords([upsert('hw-4', 'r4', 4, { revision: 4 })]);
  const settlements = await h.pipeline.processBatch([refused!, next!]);
  t.deepEqual(verdicts(settlements), ['duplicate', 'updated']);
  t.deepEqual(h.iam.policies.get('hw-4')?.document, doc(4));
});

test('an eventId re-sent with another payload and the same revision is event-id-conflict live and in a replay, with one dead letter', async (t) => {
  const deadLetters = new MemoryDeadLetters();
  const live = harness({ deadLetters });
  const applied = streamRecords([upsert('layer-1', 'same-id', 1, { revision: 3 })]);
  const reused = streamRecords([upsert('layer-1', 'same-id', 2, { revision: 3 })]);
  await live.pipeline.processBatch(applied);
  const [liveVerdict] = await live.pipeline.processBatch(reused);
  t.is(liveVerdict!.outcome, 'rejected', "the warm cache gives the ledger's verdict");
  t.is(liveVerdict!.reason, 'event-id-conflict');
  const letters = [...deadLetters.letters.keys()];

  // A replay: a new process (cold cache) reads the same records again.
  const replay = harness({ ledger: live.ledger, iam: live.iam, deadLetters });
  const settlements = await replay.pipeline.processBatch([...applied, ...reused]);
  t.deepEqual(verdicts(settlements), ['duplicate', 'rejected:event-id-conflict']);
  t.deepEqual([...deadLetters.letters.keys()], letters, 'no new dead letter');
  t.deepEqual(live.iam.policies.get('layer-1')?.document, doc(1));
});

test("a retry of an event that left the ledger's window is a duplicate, not stale, warm or cold", async (t) => {
  const env = { IPS_RECENT_EVENT_IDS: '2' };
  const warm = harness({ env });
  const first = upsertRecord('layer-2', 'w-1', doc(1), 1);
  await warm.pipeline.processBatch(streamRecords([first]));
  await warm.pipeline.processBatch(streamRecords([upsertRecord('layer-2', 'w-2', doc(2), 2)]));
  await warm.pipeline.processBatch(streamRecords([upsertRecord('layer-2', 'w-3', doc(3), 3)]));
  t.false(
    warm.ledger.entries.get('layer-2')!.events.some((event) => event.eventId === 'w-1'),
    'w-1 is in the archive',
  );
  const [warmVerdict] = await warm.pipeline.processBatch(streamRecords([first]));
  const cold = harness({ env, ledger: warm.ledger, iam: warm.iam });
  const [coldVerdict] = await cold.pipeline.processBatch(streamRecords([first]));
  t.is(warmVerdict!.outcome, 'duplicate');
  t.is(coldVerdict!.outcome, 'duplicate');
});

test('a revision below the applied one is stale for the cache and the ledger alike', async (t) => {
  const warm = harness();
  const cold = harness({ ledger: new MemoryLedger(), iam: new FakeIam() });
  await warm.pipeline.processBatch(streamRecords([upsertRecord('layer-3', 'l3-1', doc(1), 5)]));
  await cold.pipeline.processBatch(streamRecords([upsertRecord('layer-3', 'l3-1', doc(1), 5)]));
  const late = streamRecords([upsertRecord('layer-3', 'l3-2', doc(2), 4)]);
  const [warmVerdict] = await warm.pipeline.processBatch(late);
  const [coldVerdict] = await harness({ ledger: cold.ledger, iam: cold.iam }).pipeline.processBatch(late);
  t.is(warmVerdict!.outcome, 'stale');
  t.is(coldVerdict!.outcome, 'stale');
});

test('an eventId reused after a refused revision is event-id-conflict in the batch too, not stale (cut 0..3 | 4..6)', async (t) => {
  // A refused bad-0 revision 1 sits before ok-2 revision 1 (applied) and ok-2 revision 0 (same eventId,
  // another payload): by the verdict order the eventId comes before the revision, whatever the cut.
  const items = [
    upsert('hw-6', 'ok-0', 0, { revision: 0 }),
    upsert('hw-6', 'bad-0', 1),
    upsert('hw-6', 'bad-0', 2),
    upsert('hw-6', 'bad-0', 3),
    upsert('hw-6', 'bad-0', 4, { revision: 1 }),
    upsert('hw-6', 'ok-2', 5, { revision: 1 }),
    upsert('hw-6', 'ok-2', 6, { revision: 0 }),
  ];
  const records = streamRecords(items);
  const expected = ['created', ...Array(4).fill('rejected:iam:MalformedPolicyDocument'), 'updated', 'rejected:event-id-conflict'];

  const oneByOne = refusingIam();
  const single = harness({ ...oneByOne });
  const alone: Settlement[] = [];
  for (const record of records) alone.push(...(await single.pipeline.processBatch([record])));
  t.deepEqual(verdicts(alone), expected, 'one record per batch');

  const { iam, applier } = refusingIam();
  const deadLetters = new MemoryDeadLetters();
  const h = harness({ iam, applier, deadLetters });
  const batched = [...(await h.pipeline.processBatch(records.slice(0, 4))), ...(await h.pipeline.processBatch(records.slice(4)))];
  t.deepEqual(verdicts(batched), expected, 'cut into 0..3 and 4..6');
  t.deepEqual(iam.policies.get('hw-6')?.document, doc(5));

  const letters = [...deadLetters.letters.keys()].sort();
  const replay = harness({ iam, applier, ledger: h.ledger, deadLetters });
  const replayed = await replay.pipeline.processBatch(records);
  t.true(
    verdicts(replayed).every((verdict, i) => verdict === 'duplicate' || verdict === expected[i]),
    'a replay gives each record duplicate or its live verdict',
  );
  t.deepEqual([...deadLetters.letters.keys()].sort(), letters, 'no new dead letter on replay');
});

test('an event that a waiting event could make stale is tried after the IAM step of the events before it, as one record at a time', async (t) => {
  // The second e-1 (revision 0, another payload) waits on the first; e-3 (revision 0, another path) would be
  // stale had that one taken effect, so it is not tried in the step that deletes the policy: in order, the
  // policy e-1 created stands in its way (path-conflict), and only then does e-4 delete it.
  const items = [
    upsert('hw-7', 'e-1', 1),
    upsert('hw-7', 'e-1', 2, { revision: 0 }),
    upsert('hw-7', 'e-3', 3, { revision: 0, path: OTHER_PATH }),
    eventRecord(deletedEvent({ eventId: 'e-4', name: 'hw-7' })),
  ];
  const expected = ['created', 'rejected:event-id-conflict', 'rejected:path-conflict', 'deleted'];
  const single = harness();
  const alone: Settlement[] = [];
  for (const record of streamRecords(items)) alone.push(...(await single.pipeline.processBatch([record])));
  t.deepEqual(verdicts(alone), expected, 'one record per batch');

  const h = harness();
  const batched = await h.pipeline.processBatch(streamRecords(items));
  t.deepEqual(
    verdicts(batched).map((v) => (v === 'superseded' ? 'created' : v)),
    expected,
    'one batch (e-1 may be superseded by the delete)',
  );
  t.false(h.iam.policies.has('hw-7'), 'the delete took effect');
});

// ---------------------------------------------------------------------------
// The property: one policy's events, with revisions in any order, eventIds
// reused (a producer retry, or the same id for another payload), upserts that
// name another path (path-conflict) and documents IAM refuses.
// - Cut into random batches, the outcomes match the sequence settled one
//   record at a time (the in-order fold), where coalescing may say
//   `superseded` for an event that took effect. (Coalescing does not ask IAM
//   about a superseded event, so it counts as having taken effect: this part
//   runs with an IAM that refuses nothing. path-conflict is decided before
//   IAM and is always tried.)
// - A cold cache gives exactly what a warm one gives, IAM refusals included.
// - A replay gives each record `duplicate` or its live verdict, and no new
//   dead letter.
interface Op {
  kind: 'new' | 'retry';
  remove: boolean;
  eventId: number;
  revision: number | undefined;
  path: 0 | 1 | 2;
  variant: number;
  refused: boolean;
  of: number;
}

const PATHS = [undefined, '/stream-managed/', OTHER_PATH];
const POLICY = 'prop';

function itemsOf(ops: Op[]): { partitionKey: string; data: Buffer }[] {
  const items: { partitionKey: string; data: Buffer }[] = [];
  ops.forEach((op, i) => {
    if (op.kind === 'retry' && items.length > 0) {
      items.push(items[op.of % items.length]!);
      return;
    }
    const fields = {
      eventId: `${op.refused ? 'bad' : 'ok'}-${op.eventId}`,
      name: POLICY,
      ...(PATHS[op.path] !== undefined ? { path: PATHS[op.path]! } : {}),
      ...(op.revision !== undefined ? { revision: op.revision } : {}),
    };
    items.push(eventRecord(op.remove ? deletedEvent(fields) : upsertedEvent({ ...fields, document: doc(`${op.variant}-${i}`) })));
  });
  return items;
}

const APPLIED: Outcome[] = ['created', 'updated', 'unchanged', 'deleted', 'absent', 'retained-in-use', 'superseded'];
/** What an outcome says about the event, coalescing aside: it took effect, or why not. */
const classOf = (s: Settlement) => (APPLIED.includes(s.outcome) ? 'took-effect' : s.outcome === 'rejected' ? `rejected:${s.reason}` : s.outcome);

async function settleInBatches(h: ReturnType<typeof harness>, records: StreamRecord[], cuts: number[], fresh?: () => ReturnType<typeof harness>): Promise<Settlement[]> {
  const settled: Settlement[] = [];
  let offset = 0;
  let cut = 0;
  while (offset < records.length) {
    const size = cuts[cut++ % cuts.length]!;
    const pipeline = fresh ? fresh().pipeline : h.pipeline;
    settled.push(...(await pipeline.processBatch(records.slice(offset, offset + size))));
    offset += size;
  }
  return settled;
}

/** The policy as IAM holds it: document and path (how many versions it took to get there is coalescing's business). */
const iamState = (iam: FakeIam) => {
  const policy = iam.policies.get(POLICY);
  return JSON.stringify(policy ? [policy.document, policy.path] : null);
};

test('outcomes do not depend on batch boundaries, on a warm or cold cache, or on a replay (property)', async (t) => {
  const op = fc.record<Op>({
    kind: fc.constantFrom('new', 'new', 'new', 'retry'),
    remove: fc.boolean(),
    eventId: fc.integer({ min: 0, max: 5 }),
    revision: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined }),
    path: fc.constantFrom(0, 0, 1, 2),
    variant: fc.integer({ min: 0, max: 2 }),
    refused: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
    of: fc.nat(),
  });
  await fc.assert(
    fc.asyncProperty(
      fc.array(op, { minLength: 1, maxLength: 14 }),
      fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 5 }),
      fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 5 }),
      async (ops, cuts, replayCuts) => {
        const items = itemsOf(ops);
        const records = streamRecords(items);

        const reference = new FakeIam();
        const fold = await settleInBatches(harness({ iam: reference }), records, [1]);
        const accepting = new FakeIam();
        const coalesced = await settleInBatches(harness({ iam: accepting }), records, cuts);

        const warmIam = refusingIam();
        const warm = harness({ ...warmIam, deadLetters: new MemoryDeadLetters() });
        const batched = await settleInBatches(warm, records, cuts);

        const coldIam = refusingIam();
        const coldLedger = new MemoryLedger();
        const cold = await settleInBatches(warm, records, cuts, () => harness({ ...coldIam, ledger: coldLedger }));

        const letters = [...warm.deadLetters.letters.keys()].sort();
        const replayed = await settleInBatches(warm, records, replayCuts, () => harness({ ...warmIam, ledger: warm.ledger, deadLetters: warm.deadLetters }));

        const checks = {
          foldKept: JSON.stringify(coalesced.map(classOf)) === JSON.stringify(fold.map(classOf)),
          foldIam: iamState(accepting) === iamState(reference),
          coldSame: JSON.stringify(verdicts(cold)) === JSON.stringify(verdicts(batched)),
          replaySame: verdicts(replayed).every((verdict, i) => verdict === 'duplicate' || verdict === verdicts(batched)[i]),
          noNewLetter: JSON.stringify([...warm.deadLetters.letters.keys()].sort()) === JSON.stringify(letters),
          coldIam: iamState(coldIam.iam) === iamState(warmIam.iam),
        };
        const ok = Object.values(checks).every(Boolean);
        if (!ok) {
          t.log({
            checks,
            ops: items.map((item) => item.data.toString()),
            cuts,
            fold: fold.map(classOf),
            coalesced: coalesced.map(classOf),
            batched: batched.map(classOf),
            cold: cold.map(classOf),
            replayed: replayed.map(classOf),
          });
        }
        return ok;
      },
    ),
    { numRuns: 200 },
  );
  t.pass();
});
