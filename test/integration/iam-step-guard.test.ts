// The IAM step obeys its claim's guard: once the guard says stop, no IAM call
// starts, a call in flight is cancelled, and the step fails as transient with
// the guard's reason (never as a rejection of the event).
import test from 'ava';
import { actual, doc, rig, upsert, useMoto } from '../support/iam-rig.js';
import { TransientError } from '../../src/faults/errors.js';

useMoto(test);

/** A guard that lets `allowed` IAM calls start, then stops the step. */
function guardAllowing(allowed: number) {
  const controller = new AbortController();
  let calls = 0;
  return {
    calls: () => calls,
    signal: controller.signal,
    check() {
      if (calls >= allowed && !controller.signal.aborted) controller.abort(new TransientError('claim-deadline', 'the claim could not be renewed'));
      if (controller.signal.aborted) throw controller.signal.reason as Error;
      calls++;
    },
  };
}

test.serial('an update whose guard stops after the reads writes nothing to IAM', async (t) => {
  const x = await rig(t);
  t.is(await x.r.upsert(upsert('guarded-1', doc('1'))), 'created');
  // An update reads the policy and its default version before it writes: let those two through only.
  const guard = guardAllowing(2);
  const error = await t.throwsAsync(x.r.upsert(upsert('guarded-1', doc('2')), { guard }));
  t.true(error instanceof TransientError);
  t.is((error as TransientError).reason, 'claim-deadline');
  t.is(guard.calls(), 2);
  t.deepEqual((await actual(x, 'guarded-1'))?.document, doc('1'), 'no version was written');
});

test.serial('a step already stopped makes no IAM call at all', async (t) => {
  const x = await rig(t);
  const before = x.metrics.total('aws_calls', { service: 'iam' });
  const guard = guardAllowing(0);
  await t.throwsAsync(x.r.upsert(upsert('guarded-2', doc('1')), { guard }), { instanceOf: TransientError });
  t.is(x.metrics.total('aws_calls', { service: 'iam' }), before);
  t.is(await actual(x, 'guarded-2'), undefined);
});
