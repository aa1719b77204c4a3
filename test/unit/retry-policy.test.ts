// The one retrier (faults/retry.ts) and its named policies
// (faults/retry-policies.ts): a policy is a value, an attempt may ask for
// another round, what is retriable is the caller's to say, and the processor
// stops it.
import test from 'ava';
import { backoffDelay } from '../../src/faults/backoff.js';
import { RejectedEventError, StoppedError, TransientError } from '../../src/faults/errors.js';
import { AGAIN, retry } from '../../src/faults/retry.js';
import { RETRY, settle } from '../../src/faults/retry-policies.js';

const noWait = { attempts: 4, baseMs: 0, capMs: 0 };

test('a policy of 4 attempts tries 4 times in all; the last failure goes up as it is', async (t) => {
  let tries = 0;
  const last = new TransientError('circuit-open', 'still failing');
  const error = await t.throwsAsync(
    retry(noWait, async () => {
      tries++;
      throw tries === 4 ? last : new TransientError('circuit-open', `try ${tries}`);
    }),
  );
  t.is(error, last);
  t.is(tries, 4);
});

test('a failure the caller does not call retriable goes up at once (a bail)', async (t) => {
  let tries = 0;
  await t.throwsAsync(
    retry(RETRY.auditRead, async () => {
      tries++;
      throw new TypeError('a bug');
    }),
    { instanceOf: TypeError },
  );
  t.is(tries, 1);
});

test('by default what is retriable is the error model: a transient fault is tried again, a refusal is not', async (t) => {
  let tries = 0;
  t.is(
    await retry(noWait, async () => {
      if (++tries < 3) throw new TransientError('Throttling', 'slow down');
      return 'done';
    }),
    'done',
  );
  t.is(tries, 3);
  tries = 0;
  await t.throwsAsync(
    retry(noWait, async () => {
      tries++;
      throw new RejectedEventError('not-owned', 'not ours');
    }),
    { instanceOf: RejectedEventError },
  );
  t.is(tries, 1);
});

test('an attempt that returns AGAIN gets another round; on the last round the retrier resolves undefined', async (t) => {
  const seen: { index: number; last: boolean }[] = [];
  const result = await retry(noWait, async (attempt) => {
    seen.push(attempt);
    return AGAIN;
  });
  t.is(result, undefined);
  t.deepEqual(seen, [
    { index: 0, last: false },
    { index: 1, last: false },
    { index: 2, last: false },
    { index: 3, last: true },
  ]);
});

test('the waits follow the backoff formula of the policy, try by try', async (t) => {
  const policy = { attempts: 5, baseMs: 1, capMs: 4 };
  const random = () => 0.99;
  const delays: number[] = [];
  await t.throwsAsync(
    retry(
      policy,
      async () => {
        throw new TransientError('circuit-open', 'failing');
      },
      { random, onRetry: (_error, { index }, delayMs) => void delays.push(delayMs - backoffDelay(index, policy, random)) },
    ),
  );
  t.deepEqual(delays, [0, 0, 0, 0], 'one wait after each try but the last, each backoffDelay(try, policy)');
});

test('a stopped processor ends the retrying with StoppedError, before a try and during a wait', async (t) => {
  const stopped = new AbortController();
  stopped.abort();
  let tries = 0;
  await t.throwsAsync(
    retry(RETRY.shardStart, async () => ++tries, { signal: stopped.signal }),
    { instanceOf: StoppedError },
  );
  t.is(tries, 0);

  const stopping = new AbortController();
  const run = retry(
    { attempts: Infinity, baseMs: 60_000, capMs: 60_000 },
    async () => {
      tries++;
      throw new TransientError('circuit-open', 'failing');
    },
    { signal: stopping.signal, random: () => 1 },
  );
  setImmediate(() => stopping.abort());
  await t.throwsAsync(run, { instanceOf: StoppedError });
  t.is(tries, 1);
});

test('a StoppedError from the attempt is never retried', async (t) => {
  let tries = 0;
  await t.throwsAsync(
    retry(
      noWait,
      async () => {
        tries++;
        throw new StoppedError();
      },
      { retriable: () => true },
    ),
    { instanceOf: StoppedError },
  );
  t.is(tries, 1);
});

test('every named policy is a valid value: at least one try, a cap not below its base', (t) => {
  for (const [name, policy] of Object.entries({ ...RETRY, settle: settle({ retryBaseMs: 100, retryBackoffCapMs: 20_000 }) })) {
    t.true(policy.attempts >= 1, name);
    t.true(policy.capMs >= policy.baseMs || policy.capMs === 0, name);
  }
});
