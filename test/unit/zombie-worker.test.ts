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
import { doc, harness, streamRecords, upsertRecord } from '../support/pipeline.js';

/** The ledger as a paused worker sees it: its renewals never get through. */
const paused = (ledger: MemoryLedger): Ledger =>
  Object.assign(Object.create(ledger) as MemoryLedger, { renew: () => Promise.reject(new Error('paused: no renewal went out')) });

test('a zombie write that lands after the new owner completed is converged back to the ledger\'s state', async (t) => {
  const ledger = new MemoryLedger(1_000);
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
  const zombie = harness({ ledger, iam, applier: zombieApplier, owner: 'zombie', claimTtlMs: 1_000, ledgerView: paused });
  const successor = harness({ ledger, iam, owner: 'successor', claimTtlMs: 1_000 });
  const [older, newer] = streamRecords([upsertRecord('zombie-1', 'z-1', doc(1)), upsertRecord('zombie-1', 'z-2', doc(2))]);

  const zombieRun = zombie.pipeline.processBatch([{ ...older!, index: 0 }]);
  await sleep(1_200); // the zombie's claim expires
  const [applied] = await successor.pipeline.processBatch([{ ...newer!, index: 0 }]);
  t.is(applied!.outcome, 'created', 'the successor took the expired claim over');
  release(); // the zombie's write lands now, after the successor's
  const [zombieOutcome] = await zombieRun;
  t.is(zombieOutcome!.outcome, 'duplicate', 'the zombie learns the successor moved past its record');
  t.deepEqual(iam.policies.get('zombie-1')?.document, doc(2), 'IAM holds the later event\'s document');
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
