// The IAM circuit breaker under concurrent calls: once open, exactly one trial
// call at a time reaches IAM, whatever calls that started earlier do when they
// finally settle.
import test from 'ava';
import { CircuitBreaker } from '../../src/iam/circuit-breaker.js';
import type { TransientError } from '../../src/faults/errors.js';

const fault = () => Object.assign(new Error('Rate exceeded'), { name: 'Throttling' });
const isFault = (error: unknown) => (error as Error).name === 'Throttling';

/** A call the test settles by hand, counting how many such calls run at once. */
function gate(running: { now: number; max: number }) {
  let settle!: { resolve: (value: string) => void; reject: (error: unknown) => void };
  const done = new Promise<string>((resolve, reject) => (settle = { resolve, reject }));
  let started = false;
  const call = async () => {
    started = true;
    running.now++;
    running.max = Math.max(running.max, running.now);
    try {
      return await done;
    } finally {
      running.now--;
    }
  };
  return { call, settle, started: () => started };
}

function breakerAt(clock: { t: number }, states: string[] = []) {
  return new CircuitBreaker(
    2,
    1_000,
    () => clock.t,
    (state) => states.push(state),
  );
}

async function open(breaker: CircuitBreaker): Promise<void> {
  for (let i = 0; i < 2; i++) await breaker.run(() => Promise.reject(fault()), isFault).catch(() => undefined);
}

test('many calls at the end of the cool-down: exactly one trial runs, the others fail fast', async (t) => {
  const clock = { t: 0 };
  const breaker = breakerAt(clock);
  await open(breaker);
  t.is(breaker.state, 'open');
  clock.t = 1_000;
  const running = { now: 0, max: 0 };
  const gates = Array.from({ length: 8 }, () => gate(running));
  const results = gates.map((g) =>
    breaker.run(g.call, isFault).then(
      (value) => ({ ok: value }),
      (error: unknown) => ({ error }),
    ),
  );
  await Promise.resolve();
  t.is(gates.filter((g) => g.started()).length, 1, 'one trial');
  gates[0]!.settle.resolve('fine');
  const settled = await Promise.all(results);
  t.deepEqual(settled[0], { ok: 'fine' });
  for (const result of settled.slice(1)) t.is((result as { error: TransientError }).error.reason, 'circuit-open');
  t.is(running.max, 1);
  t.is(breaker.state, 'closed');
});

test('a call from before the breaker opened that settles during the trial does not let a second trial in', async (t) => {
  const clock = { t: 0 };
  const breaker = breakerAt(clock);
  const running = { now: 0, max: 0 };
  const straggler = gate(running);
  const stragglerResult = breaker.run(straggler.call, isFault).catch((error: unknown) => error);
  await open(breaker);
  clock.t = 1_000;
  const trial = gate(running);
  const trialResult = breaker.run(trial.call, isFault);
  await Promise.resolve();
  t.true(trial.started());

  // The old call ends, with IAM's answer or with a fault: the trial still runs alone.
  straggler.settle.reject(Object.assign(new Error('no such policy'), { name: 'NoSuchEntity' }));
  await stragglerResult;
  const second = gate(running);
  const secondResult = breaker.run(second.call, isFault).catch((error: unknown) => error);
  await Promise.resolve();
  t.false(second.started(), 'no second trial while the first is in flight');
  second.settle.resolve('let in'); // ends it, had it been let in
  t.is(((await secondResult) as TransientError).reason, 'circuit-open');
  t.is(breaker.state, 'half-open');

  trial.settle.resolve('fine');
  t.is(await trialResult, 'fine');
  t.is(breaker.state, 'closed');
  t.is(running.max, 2, 'the straggler and the trial, never two trials');
});

test('a call from before the breaker opened that fails during the trial does not re-open it for another trial', async (t) => {
  const clock = { t: 0 };
  const breaker = breakerAt(clock);
  const running = { now: 0, max: 0 };
  const straggler = gate(running);
  const stragglerResult = breaker.run(straggler.call, isFault).catch((error: unknown) => error);
  await open(breaker);
  clock.t = 1_000;
  const trial = gate(running);
  const trialResult = breaker.run(trial.call, isFault);
  await Promise.resolve();
  straggler.settle.reject(fault());
  await stragglerResult;
  clock.t = 2_500; // past another cool-down
  const second = gate(running);
  const secondResult = breaker.run(second.call, isFault).catch(() => undefined);
  await Promise.resolve();
  t.false(second.started(), 'the trial is still the only one');
  second.settle.resolve('let in'); // ends it, had it been let in
  await secondResult;
  trial.settle.resolve('fine');
  await trialResult;
  t.is(breaker.state, 'closed');
});

test('a trial that IAM answers with a refusal closes the breaker: IAM is answering', async (t) => {
  const clock = { t: 0 };
  const states: string[] = [];
  const breaker = breakerAt(clock, states);
  await open(breaker);
  clock.t = 1_000;
  await t.throwsAsync(breaker.run(() => Promise.reject(Object.assign(new Error('bad document'), { name: 'MalformedPolicyDocument' })), isFault));
  t.is(breaker.state, 'closed');
  t.deepEqual(states, ['open', 'half-open', 'closed']);
});

test('a trial that fails re-opens the breaker for another cool-down', async (t) => {
  const clock = { t: 0 };
  const breaker = breakerAt(clock);
  await open(breaker);
  clock.t = 1_000;
  await t.throwsAsync(breaker.run(() => Promise.reject(fault()), isFault));
  t.is(breaker.state, 'open');
  clock.t = 1_500;
  const error = await t.throwsAsync(breaker.run(() => Promise.resolve('x'), isFault));
  t.is((error as TransientError).reason, 'circuit-open');
  clock.t = 2_000;
  t.is(await breaker.run(() => Promise.resolve('x'), isFault), 'x');
  t.is(breaker.state, 'closed');
});
