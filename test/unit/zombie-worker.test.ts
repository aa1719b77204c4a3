// A worker that pauses (GC, CPU starvation, SIGSTOP) while it holds a claim
// mid-IAM-step: the claim expires, another worker takes it over and applies
// a later event, then the paused worker's write lands. IAM must end in the
// ledger's last applied state, not the zombie's.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PolicyEvent } from '../../src/contract/event.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import type { ApplyHint } from '../../src/pipeline/types.js';
import { FakeIam, MemoryLedger } from '../support/fakes.js';
import { deleteRecord, doc, harness, streamRecords, upsertRecord } from '../support/pipeline.js';
import { RejectedEventError } from '../../src/faults/errors.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { eventRecord } from '../../src/ops/producer.js';

/** An upsert naming its path. */
const eventAt = (policy: string, eventId: string, path: string, document: object) => eventRecord(upsertedEvent({ eventId, name: policy, path, document }));

/** The ledger as a paused worker sees it: its renewals never get through. */
const paused = (ledger: MemoryLedger): Ledger => Object.assign(Object.create(ledger) as MemoryLedger, { renew: () => Promise.reject(new Error('paused: no renewal went out')) });

test("a zombie write that lands after the new owner completed is converged back to the ledger's state", async (t) => {
  const ledger = new MemoryLedger(1_000, Date.now, 1_000);
  const iam = new FakeIam();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  // The zombie's CreatePolicyVersion is already on the wire: it lands when the gate opens, whatever the claim says.
  const zombieApplier = {
    calls: 0,
    async apply(event: PolicyEvent) {
      if (this.calls++ === 0) await gate;
      return iam.apply(event);
    },
  };
  const env = { IPS_LATE_WRITE_MS: '1000' };
  const zombie = harness({ ledger, iam, applier: zombieApplier, owner: 'zombie', claimTtlMs: 1_000, ledgerView: paused, env });
  const successor = harness({ ledger, iam, owner: 'successor', claimTtlMs: 1_000, env });
  const [older, newer] = streamRecords([upsertRecord('zombie-1', 'z-1', doc(1)), upsertRecord('zombie-1', 'z-2', doc(2))]);

  const zombieRun = zombie.pipeline.processBatch([{ ...older!, index: 0 }]);
  await sleep(1_200); // the zombie's claim expires
  const [applied] = await successor.pipeline.processBatch([{ ...newer!, index: 0 }]);
  t.is(applied!.outcome, 'created', 'the successor took the expired claim over');
  release(); // the zombie's write lands now, after the successor's
  const [zombieOutcome] = await zombieRun;
  t.is(zombieOutcome!.outcome, 'duplicate', 'the zombie learns the successor moved past its record');
  t.deepEqual(iam.policies.get('zombie-1')?.document, doc(2), "IAM holds the later event's document");
  t.is(zombie.metrics.get('verifications_requested', { why: 'lost during the IAM step' }), 1);
  t.is(zombie.metrics.get('verifications', { converged: 'yes' }), 1);
  t.false(ledger.entries.get('zombie-1')!.verifyRequested! > (ledger.entries.get('zombie-1')!.verifiedUpTo ?? 0), 'the mark is answered');
});

test('a step that cannot renew its claim starts no IAM call after its deadline', async (t) => {
  const ledger = new MemoryLedger(1_000);
  const calls: string[] = [];
  // An IAM step of two calls with a long wait between (throttling, a pause): it checks its guard before each.
  const applier = {
    async apply(_event: PolicyEvent, hint?: ApplyHint) {
      hint?.guard?.check();
      calls.push('first');
      await sleep(1_500);
      hint?.guard?.check();
      calls.push('second');
      return 'created' as const;
    },
  };
  const stop = new AbortController();
  const h = harness({ ledger, applier, owner: 'stuck', claimTtlMs: 1_000, ledgerView: paused, signal: stop.signal });
  const run = h.pipeline.processBatch(streamRecords([upsertRecord('deadline-1', 'd-1', doc(1))]));
  await sleep(2_000);
  t.false(calls.includes('second'), `the second call never started: ${calls.join(',')}`);
  t.true(calls.length >= 1);
  t.true(h.metrics.total('transient_retries') >= 1);
  // The run would retry for ever (its claim can never be renewed): stop the processor.
  stop.abort();
  await t.throwsAsync(run, { name: 'StoppedError' });
});

test("a cancelled write that still lands after the successor's step and after the zombie's own re-run is converged back once it can no longer land", async (t) => {
  // The zombie's keeper cancels its call at the deadline, but the request was
  // already on the wire: IAM applies it 2.5 s after it was sent, later than
  // the zombie's re-run and the successor's step. Until then a verification
  // would only be overwritten by it.
  const ledger = new MemoryLedger(1_000, Date.now, 3_000);
  const iam = new FakeIam();
  let landed!: Promise<unknown>;
  const zombieApplier = {
    calls: 0,
    async apply(event: PolicyEvent, hint?: ApplyHint) {
      if (this.calls++ > 0) return iam.apply(event);
      landed = sleep(2_500).then(() => iam.apply(event));
      const signal = hint!.guard!.signal;
      await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));
      throw new Error('unreachable');
    },
  };
  const env = { IPS_LATE_WRITE_MS: '3000' };
  const zombie = harness({ ledger, iam, applier: zombieApplier, owner: 'zombie', claimTtlMs: 1_000, ledgerView: paused, env });
  const successor = harness({ ledger, iam, owner: 'successor', claimTtlMs: 1_000, env });
  const [older, newer] = streamRecords([upsertRecord('late-1', 'l-1', doc(1)), upsertRecord('late-1', 'l-2', doc(2))]);

  const zombieRun = zombie.pipeline.processBatch([{ ...older!, index: 0 }]);
  await sleep(1_500);
  const [applied] = await successor.pipeline.processBatch([{ ...newer!, index: 0 }]);
  const [zombieOutcome] = await zombieRun;
  await landed;
  t.is(zombieOutcome!.outcome, 'created');
  t.is(applied!.outcome, 'updated');
  t.deepEqual(iam.policies.get('late-1')?.document, doc(2), "IAM holds the later event's document, not the late write's");
  const entry = ledger.entries.get('late-1')!;
  t.false((entry.verifyRequested ?? 0) > (entry.verifiedUpTo ?? 0), 'the mark is answered');
});

test("a taken-over claim's late write is converged even when its zombie can never mark the policy", async (t) => {
  // The zombie reaches neither DynamoDB nor its processor's end: no renewal, no
  // mark. The successor that takes its claim over knows a write of the zombie
  // may land until the claim's expiry and a call's lifetime after.
  const ledger = new MemoryLedger(1_000, Date.now, 3_000);
  const iam = new FakeIam();
  let landed!: Promise<unknown>;
  const zombieApplier = {
    async apply(event: PolicyEvent, hint?: ApplyHint) {
      landed = sleep(2_500).then(() => iam.apply(event));
      // Its answer never comes; the keeper cancels the call (the request is on the wire all the same).
      const signal = hint!.guard!.signal;
      return new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));
    },
  };
  const cutOff = (view: MemoryLedger): Ledger =>
    Object.assign(Object.create(view) as MemoryLedger, {
      renew: () => Promise.reject(new Error('unreachable')),
      requestVerification: () => Promise.reject(new Error('unreachable')),
    });
  const stop = new AbortController();
  const env = { IPS_LATE_WRITE_MS: '3000' };
  const zombie = harness({ ledger, iam, applier: zombieApplier, owner: 'zombie', claimTtlMs: 1_000, ledgerView: cutOff, signal: stop.signal, env });
  const successor = harness({ ledger, iam, owner: 'successor', claimTtlMs: 1_000, env });
  const [older, newer] = streamRecords([upsertRecord('late-2', 'm-1', doc(1)), upsertRecord('late-2', 'm-2', doc(2))]);

  const zombieRun = zombie.pipeline.processBatch([{ ...older!, index: 0 }]).catch((error: Error) => error.name);
  await sleep(1_500);
  stop.abort();
  t.is(await zombieRun, 'StoppedError');
  const [applied] = await successor.pipeline.processBatch([{ ...newer!, index: 0 }]);
  await landed;
  t.is(applied!.outcome, 'created');
  t.deepEqual(iam.policies.get('late-2')?.document, doc(2), "IAM holds the successor's document, not the late write's");
  t.is(successor.metrics.get('verifications_requested', { why: 'claim taken over' }), 1);
  t.is(successor.metrics.get('verifications', { converged: 'yes' }), 1);
});

test('a step that touches no IAM (its only event refused) does not answer a mark: the late write is still converged', async (t) => {
  const ledger = new MemoryLedger();
  const iam = new FakeIam();
  const h = harness({ ledger, iam, owner: 'worker' });
  await h.pipeline.processBatch(streamRecords([eventAt('marked-1', 'mk-1', '/stream-managed/team-x/', doc(1))]));
  // A lost claim's write landed (another document), and its mark is due.
  iam.policies.get('marked-1')!.document = doc(9);
  await ledger.requestVerification('marked-1');
  const [refused] = await h.pipeline.processBatch(streamRecords([eventAt('marked-1', 'mk-2', '/stream-managed/team-y/', doc(2))]));
  t.is(refused!.outcome, 'rejected');
  t.is(refused!.reason, 'path-conflict');
  t.deepEqual(iam.policies.get('marked-1')?.document, doc(1), "converged back to the ledger's state");
  const entry = ledger.entries.get('marked-1')!;
  t.false((entry.verifyRequested ?? 0) > (entry.verifiedUpTo ?? 0), 'the mark is answered by the verification');
});

test('a verification IAM refuses (the policy is no longer ours) is counted and answered; the shard goes on', async (t) => {
  const ledger = new MemoryLedger();
  const iam = new FakeIam();
  const h = harness({ ledger, iam, owner: 'worker' });
  await h.pipeline.processBatch(streamRecords([upsertRecord('refused-1', 'rf-1', doc(1))]));
  await ledger.requestVerification('refused-1');
  const refusing = { apply: () => Promise.reject(new RejectedEventError('not-owned', 'refused-1 is no longer managed by this application')) };
  const other = harness({ ledger, iam, applier: refusing, owner: 'worker-2' });
  const [settled] = await other.pipeline.processBatch(streamRecords([upsertRecord('refused-1', 'rf-1', doc(1))]));
  t.is(settled!.outcome, 'duplicate');
  t.is(other.metrics.get('verifications', { converged: 'refused' }), 1);
  t.is(other.metrics.total('pipeline_bugs'), 0);
});

test('a delete that keeps an attached policy does not answer the marks: it never looked at the document, the late write is converged', async (t) => {
  const ledger = new MemoryLedger();
  const iam = new FakeIam();
  const h = harness({ ledger, iam, owner: 'worker' });
  await h.pipeline.processBatch(streamRecords([upsertRecord('kept-1', 'kp-1', doc(1))]));
  iam.attached.add('kept-1');
  // A lost claim's write landed (another document), and its mark is due.
  iam.policies.get('kept-1')!.document = doc(9);
  await ledger.requestVerification('kept-1');
  const [kept] = await h.pipeline.processBatch(streamRecords([deleteRecord('kept-1', 'kp-2')]));
  t.is(kept!.outcome, 'retained-in-use');
  t.deepEqual(iam.policies.get('kept-1')?.document, doc(1), 'converged back to the last applied document');
  const entry = ledger.entries.get('kept-1')!;
  t.false((entry.verifyRequested ?? 0) > (entry.verifiedUpTo ?? 0), 'the mark is answered by the verification');
  t.is(h.metrics.get('verifications', { converged: 'yes' }), 1);
});

test("an unchanged upsert read under IAM's read lag does not answer the marks: the document is written by the verification", async (t) => {
  const ledger = new MemoryLedger();
  const iam = new FakeIam();
  // IAM's reads lag the late write: a read shows the document applied before it.
  const lagging = {
    async apply(event: PolicyEvent, hint?: ApplyHint) {
      if (event.type === 'policy.upserted' && !hint?.forceWrite && JSON.stringify(event.document) === JSON.stringify(doc(1))) return 'unchanged' as const;
      return iam.apply(event);
    },
  };
  const first = harness({ ledger, iam, owner: 'worker' });
  await first.pipeline.processBatch(streamRecords([upsertRecord('lagged-1', 'lg-1', doc(1))]));
  iam.policies.get('lagged-1')!.document = doc(9); // the late write
  await ledger.requestVerification('lagged-1');
  const h = harness({ ledger, iam, applier: lagging, owner: 'worker-2' });
  const [same] = await h.pipeline.processBatch(streamRecords([upsertRecord('lagged-1', 'lg-2', doc(1))]));
  t.is(same!.outcome, 'unchanged');
  t.deepEqual(iam.policies.get('lagged-1')?.document, doc(1), 'the document is written whatever the lagging read showed');
  const entry = ledger.entries.get('lagged-1')!;
  t.false((entry.verifyRequested ?? 0) > (entry.verifiedUpTo ?? 0));
  t.is(h.metrics.get('verifications', { converged: 'yes' }), 1);
});
