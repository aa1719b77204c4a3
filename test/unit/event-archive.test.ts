// The archive of eventIds that leave a policy's window, around crashes: a
// batch's own events are archived before its completion, so a kill -9 right
// after the completion forgets none of them; and what a step archived before
// a completion that never landed is not taken as applied by whoever takes
// its claim over.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Ledger } from '../../src/ledger/ledger.js';
import { FakeIam, MemoryLedger } from '../support/fakes.js';
import { doc, harness, streamRecords, upsertRecord } from '../support/pipeline.js';

const WINDOW = 32; // IPS_RECENT_EVENT_IDS, the default

/**
 * The ledger as a worker sees it that is killed (kill -9) the moment `when`
 * call returns: every ledger call after it never returns.
 */
function killedAfter(when: 'complete', done: { at?: number }) {
  return (ledger: MemoryLedger): Ledger =>
    new Proxy(ledger, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return async (...args: unknown[]) => {
          if (done.at !== undefined) return new Promise(() => {});
          const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          if (property === when) done.at = Date.now();
          return result;
        };
      },
    });
}

test("a kill -9 right after a completion forgets none of the batch's own events that left the window: a producer retry without revision is a duplicate", async (t) => {
  const ledger = new MemoryLedger();
  const iam = new FakeIam();
  const killed: { at?: number } = {};
  const worker = harness({ ledger, iam, owner: 'killed', ledgerView: killedAfter('complete', killed) });
  // One batch of 40 events for one policy: the first 8 leave the window of 32.
  const events = Array.from({ length: WINDOW + 8 }, (_, i) => upsertRecord('archive-crash-1', `ac-${i}`, doc(i)));
  void worker.pipeline.processBatch(streamRecords(events));
  for (let i = 0; i < 100 && killed.at === undefined; i++) await sleep(10);
  t.not(killed.at, undefined, 'the completion landed before the kill');
  t.deepEqual(iam.policies.get('archive-crash-1')?.document, doc(WINDOW + 7));

  // The producer retries the first event (a new record, the same eventId and payload, no revision).
  const next = harness({ ledger, iam, owner: 'next' });
  const [retry] = await next.pipeline.processBatch(streamRecords([events[0]!]));
  t.is(retry!.outcome, 'duplicate');
  t.deepEqual(iam.policies.get('archive-crash-1')?.document, doc(WINDOW + 7), 'not applied twice: nothing rolled back');
});

test('events a step archived before a completion that never landed are not duplicates to the owner that takes its claim over', async (t) => {
  const ledger = new MemoryLedger(1_000, Date.now, 1_000);
  const iam = new FakeIam();
  const env = { IPS_LATE_WRITE_MS: '1000' };
  // The policy's window is full.
  const first = harness({ ledger, iam, owner: 'first', claimTtlMs: 1_000, env });
  await first.pipeline.processBatch(streamRecords(Array.from({ length: WINDOW }, (_, i) => upsertRecord('archive-crash-2', `first-${i}`, doc(`first-${i}`)))));
  // A worker archives the 8 oldest of its 40 events, and is killed before its completion lands.
  const killed: { at?: number } = {};
  const dying = (view: MemoryLedger): Ledger =>
    Object.assign(Object.create(view) as MemoryLedger, {
      complete: () => {
        killed.at = Date.now();
        return new Promise(() => {});
      },
    });
  const zombie = harness({ ledger, iam, owner: 'zombie', claimTtlMs: 1_000, ledgerView: dying, env });
  const records = streamRecords(Array.from({ length: WINDOW + 8 }, (_, i) => upsertRecord('archive-crash-2', `z-${i}`, doc(`z-${i}`))));
  void zombie.pipeline.processBatch(records);
  for (let i = 0; i < 100 && killed.at === undefined; i++) await sleep(10);
  t.not(killed.at, undefined, 'the worker reached its completion');
  await sleep(1_100); // its claim expires

  // The next owner gets the zombie's first 8 records as a batch of their own: none was applied by anyone.
  const next = harness({ ledger, iam, owner: 'next', claimTtlMs: 1_000, env });
  const settled = await next.pipeline.processBatch(records.slice(0, 8).map((record, index) => ({ ...record, index })));
  t.deepEqual(
    settled.map((s) => s.outcome),
    [...Array.from({ length: 7 }, () => 'superseded'), 'updated'],
  );
  t.deepEqual(iam.policies.get('archive-crash-2')?.document, doc('z-7'));
});
