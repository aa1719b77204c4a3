// When a policy's records are parked (park/parking.ts): after IPS_PARK_AFTER_MS
// of its account's IAM being unavailable without a break. An open breaker
// alternates with the faults its trial calls meet; both are the account
// being unavailable. A fault of the stream's own (the ledger, a claim held
// elsewhere) is not, and starts the wait over.
import test from 'ava';
import { AssumeRoleError, StoppedError, TransientError } from '../../src/faults/errors.js';
import { classifyIamError } from '../../src/iam/classify-iam-error.js';
import { AccountOutages, BEHIND_PARKED, OUTAGE_REMEMBERED_MS, SlowAccount, UnavailableFor, accountUnavailable, outagesRememberedMs } from '../../src/park/parking.js';
import { BatchHold } from '../../src/park/batch-hold.js';
import type { ParkStore } from '../../src/park/park-store.js';

const sdkFault = (name: string, status: number) => Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode: status }, $fault: 'server' });
const open = () => new TransientError('circuit-open', 'IAM is failing; waiting before the next try');
const trial = () => classifyIamError(sdkFault('ServiceUnavailable', 503), 'upsert');

function clocked(afterMs: number) {
  const clock = { now: 0 };
  return { clock, unavailable: new UnavailableFor({ store: {} as ParkStore, afterMs, now: () => clock.now }) };
}

test("an open breaker and its failed trial calls are the account's IAM unavailable; read lag and claims are not", (t) => {
  t.true(accountUnavailable(open()));
  t.true(accountUnavailable(trial()), 'a 5xx of IAM itself, as the IAM step classifies it');
  t.true(accountUnavailable(classifyIamError(Object.assign(new Error('Rate exceeded'), { name: 'Throttling', $metadata: { httpStatusCode: 400 } }), 'upsert')));
  t.true(accountUnavailable(new AssumeRoleError('222222222222', 'arn:aws:iam::222222222222:role/target', 'AccessDenied', new Error('denied'))));
  t.false(accountUnavailable(new TransientError('iam-not-yet-visible', 'lag')));
  t.false(accountUnavailable(new TransientError('claimed-elsewhere', 'another owner')));
  t.false(accountUnavailable(new TransientError('ProvisionedThroughputExceededException' as never, 'the ledger')));
});

test('the breaker alternating with its trial calls parks once the window has passed without a break', (t) => {
  const { clock, unavailable } = clocked(1_000);
  const seen: boolean[] = [];
  for (let at = 0; at <= 1_200; at += 200) {
    clock.now = at;
    seen.push(unavailable.parks(at % 400 === 0 ? open() : trial()));
  }
  t.deepEqual(seen, [false, false, false, false, false, true, true]);
});

test("a fault of the stream's own starts the wait over", (t) => {
  const { clock, unavailable } = clocked(1_000);
  t.false(unavailable.parks(open()));
  clock.now = 900;
  t.false(unavailable.parks(new TransientError('claimed-elsewhere', 'another owner')));
  clock.now = 1_100;
  t.false(unavailable.parks(open()), 'the wait started again at 1,100');
  clock.now = 2_100;
  t.true(unavailable.parks(trial()));
});

test('a slow account is one that alone holds the batch: while another account has records unsettled, none is given up for being slow', (t) => {
  const clock = { now: 100 };
  // Two policies of 111111111111, one of 222222222222, one of the own account ('').
  const hold = new BatchHold(['111111111111', '111111111111', '222222222222', ''], 100, () => clock.now);
  t.is(hold.aloneSince('111111111111'), undefined);
  clock.now = 300;
  hold.settled('222222222222');
  t.is(hold.aloneSince('111111111111'), undefined, 'the own account still holds it too');
  clock.now = 700;
  hold.settled('');
  t.is(hold.aloneSince('111111111111'), 700, 'alone since the last other account settled');
  t.is(hold.aloneSince('222222222222'), undefined, '111111111111 still holds it');
  hold.settled('111111111111');
  t.is(hold.aloneSince('222222222222'), undefined);
  clock.now = 900;
  hold.settled('111111111111');
  t.is(hold.aloneSince('222222222222'), 900);
  // A batch of one account only: it holds the batch from the start.
  t.is(new BatchHold(['333333333333'], 50, () => clock.now).aloneSince('333333333333'), 50);
});

test("a policy parked without a step says nothing of its account's pace; the own account's key (which also counts invalid records) is no yardstick", (t) => {
  const clock = { now: 0 };
  const S = '333333333333';
  const hold = new BatchHold([S, S, S, S, '111111111111', '111111111111', '', ''], 0, () => clock.now);
  clock.now = 1_000;
  hold.settled('111111111111');
  hold.settled('111111111111');
  hold.settled('');
  hold.settled('');
  hold.settled(S, false);
  hold.settled(S, false);
  t.is(hold.paceAgainstOthers(S), 0.5, 'none of its own stepped: as if one settled now (1 a second), against 2 a second');
  t.is(hold.projectedMs(S), 2_000, 'two left, at one a second');
  t.is(new BatchHold([S, '', ''], 0, () => clock.now).paceAgainstOthers(S), undefined, 'no other target account: nothing to compare with');
});

test("an account's outage is remembered until a redrive of it succeeds, or for a while: its new policies park at once meanwhile; a record behind a park is no outage", (t) => {
  const clock = { now: 0 };
  const outages = new AccountOutages(() => clock.now);
  t.is(outages.of('111111111111'), undefined);
  outages.down('111111111111', { reason: 'behind-parked', detail: 'earlier records of the policy are parked' });
  t.is(outages.of('111111111111'), undefined, "a policy's own order says nothing of its account");
  outages.down('111111111111', { reason: 'circuit-open', detail: 'IAM circuit breaker open' });
  t.is(outages.of('111111111111')?.reason, 'circuit-open');
  t.is(outages.of('222222222222'), undefined, 'another account is tried');
  outages.up('111111111111');
  t.is(outages.of('111111111111'), undefined, 'the probe succeeded');
  outages.down('111111111111', { reason: 'assume-role-failed', detail: 'AccessDenied' });
  clock.now = OUTAGE_REMEMBERED_MS - 1;
  t.is(outages.of('111111111111')?.reason, 'assume-role-failed');
  clock.now = OUTAGE_REMEMBERED_MS;
  t.is(outages.of('111111111111'), undefined, 'forgotten in time: a policy of it tries again');
  outages.down('333333333333', { reason: 'account-slow', detail: 'throttled' });
  outages.up('333333333333', true);
  t.is(outages.of('333333333333')?.reason, 'account-slow', 'a slow account redriven at its pace while it throttles is still slow');
  outages.up('333333333333', false);
  t.is(outages.of('333333333333')?.reason, 'account-slow', 'nor when its redrive did not wait: the redriver goes one call at a time, within any pace');
  clock.now += OUTAGE_REMEMBERED_MS;
  t.is(outages.of('333333333333'), undefined, 'a slow account is forgotten in time only: then tried again');
  // A breaker opened by throttling: the account is slow, whatever the reason its first park gave.
  outages.down('333333333333', { reason: 'circuit-open', detail: 'IAM is failing (throttled)' });
  outages.up('333333333333', true);
  t.is(outages.of('333333333333')?.reason, 'circuit-open', 'a redrive at the pace of an account still rate-bound says nothing of that pace');
  outages.up('333333333333', false);
  t.is(outages.of('333333333333'), undefined);
  // Long enough for the redriver's probes to renew it: two of its rounds at least.
  t.is(outagesRememberedMs(30_000), OUTAGE_REMEMBERED_MS);
  t.is(outagesRememberedMs(90_000), 180_000);
  const slowRounds = new AccountOutages(() => clock.now, outagesRememberedMs(90_000));
  slowRounds.down('111111111111', { reason: 'circuit-open', detail: 'IAM circuit breaker open' });
  clock.now += 90_000;
  t.is(slowRounds.of('111111111111')?.reason, 'circuit-open', 'remembered past one round of a slow redriver');
});

test("a policy's wait between tries ends when its account is found down (not another's), and when the processor stops", async (t) => {
  const outages = new AccountOutages();
  const settle = (wait: Promise<void>) => wait.then(() => 'ended').catch((error: unknown) => (error instanceof StoppedError ? 'stopped' : 'failed'));
  const waiting = settle(outages.sleepUnlessDown('222222222222', 600_000));
  outages.down('333333333333', { reason: 'circuit-open', detail: 'x' });
  outages.down('222222222222', { reason: BEHIND_PARKED, detail: 'its own order' });
  t.is(await Promise.race([waiting, new Promise((resolve) => setTimeout(resolve, 50, 'waiting'))]), 'waiting', "another account's outage, or a record behind a park, ends nothing");
  outages.down('222222222222', { reason: 'circuit-open', detail: 'x' });
  t.is(await waiting, 'ended');
  const stop = new AbortController();
  const stopping = settle(outages.sleepUnlessDown('222222222222', 600_000, stop.signal));
  stop.abort();
  t.is(await stopping, 'stopped');
  t.is(await settle(outages.sleepUnlessDown('222222222222', 1)), 'ended', 'or the backoff ends it');
});

test("a rate-bound account alone holding the batch, settling at a fraction of the others' pace, is given up as soon as even at twice its pace it would hold the batch IPS_PARK_AFTER_MS; one near the limit, a busy one, or one not rate-bound is waited for", (t) => {
  const clock = { now: 0 };
  const S = '333333333333';
  const OTHER = '111111111111';
  /** A batch of `ofS` policies of S and ten of OTHER, from time 0; `settled`: at what time how many of whose settled. */
  const batchOf = (settled: [at: number, account: string, count: number][], options: { ofS?: number; rateBound?: boolean } = {}) => {
    clock.now = 0;
    const hold = new BatchHold([...Array.from({ length: options.ofS ?? 10 }, () => S), ...Array.from({ length: 10 }, () => OTHER)], 0, () => clock.now);
    const slow = new SlowAccount(S, hold.seenBy(S), { store: undefined as never, afterMs: 5_000, now: () => clock.now, rateBoundLately: () => options.rateBound ?? true });
    t.teardown(() => slow.stop());
    for (const [at, account, count] of settled) {
      clock.now = at;
      for (let i = 0; i < count; i++) hold.settled(account);
    }
    return { hold, slow };
  };
  const lookAt = (one: ReturnType<typeof batchOf>, at: number) => {
    clock.now = at;
    one.slow.look();
    return one.slow.signal.aborted;
  };

  // Slow: the other account settled its ten in 0.5 s (20 a second); S one of its ten in the first second.
  const slow = batchOf([
    [500, OTHER, 10],
    [1_000, S, 1],
  ]);
  t.is(slow.hold.projectedMs(S), 9_000, 'nine left at one a second');
  t.false(lookAt(slow, 1_000), 'alone for less than a look: not judged yet');
  t.true(lookAt(slow, 1_500), 'given up 1 s after it alone held the batch, not after 5 s');
  t.like(slow.slow.signal.reason, { reason: 'account-slow' });
  t.regex((slow.slow.signal.reason as Error).message, /would at its pace so far hold it \d+ ms more/);

  // Near the limit: two of ten in the first second; at that pace the eight left would hold the batch 6 s more
  // (past IPS_PARK_AFTER_MS), at twice that pace 3 s (not past it): waited for, until the window has passed.
  const near = batchOf([
    [500, OTHER, 10],
    [1_000, S, 2],
  ]);
  clock.now = 1_500;
  t.is(near.hold.projectedMs(S), 6_000);
  t.false(lookAt(near, 1_500), 'a pace is a guess: only a clear case is judged before IPS_PARK_AFTER_MS');
  t.true(lookAt(near, 5_500), 'alone 5 s, rate-bound, and slower than the others');

  // None of its policies settled yet: judged as if one settled now (the most its pace can be).
  const none = batchOf([[2_000, OTHER, 10]]);
  clock.now = 3_000;
  t.is(none.hold.projectedMs(S), 30_000, 'ten left, none in 3 s: 30 s at best');
  t.true(lookAt(none, 3_000));

  // Busy, not slow: thirty policies in the batch, settled at half the other account's pace (10 a second against 5),
  // alone for 5 s with five left: its share of the batch, waited for.
  const busy = batchOf(
    [
      [1_000, OTHER, 10],
      [1_000, S, 5],
      [3_000, S, 10],
      [5_500, S, 10],
    ],
    { ofS: 30 },
  );
  t.true((busy.hold.paceAgainstOthers(S) ?? 0) > 0.25);
  t.false(lookAt(busy, 6_000), 'as fast as its share: never given up for being slow');

  // Not rate-bound: a slow pace is the account's own work, never given up for it.
  const unbound = batchOf(
    [
      [500, OTHER, 10],
      [1_000, S, 1],
    ],
    { rateBound: false },
  );
  t.false(lookAt(unbound, 60_000));
});

test("an account settling at a fraction of the others' pace in its process, whose IAM allows it as much as theirs on the host, is busy, not slow: waited for; one whose IAM allows it a tenth of theirs is given up", (t) => {
  // The pace is this record processor's; the rate is the host's (the shared gate's learned rate, every
  // record processor of the account drawing from it): a busy account's share in one processor is a fraction
  // of its rate, and the other accounts' few records of the batch went in a burst.
  const clock = { now: 0 };
  const S = '333333333333';
  const OTHER = '111111111111';
  const judged = (rates: Record<string, number | undefined>, at: number) => {
    clock.now = 0;
    const hold = new BatchHold([...Array.from({ length: 10 }, () => S), ...Array.from({ length: 10 }, () => OTHER)], 0, () => clock.now);
    const slow = new SlowAccount(S, hold.seenBy(S), { store: undefined as never, afterMs: 5_000, now: () => clock.now, rateBoundLately: () => true, allowedRate: (account) => rates[account] });
    t.teardown(() => slow.stop());
    clock.now = 500;
    for (let i = 0; i < 10; i++) hold.settled(OTHER);
    clock.now = 1_000;
    hold.settled(S);
    t.true((hold.paceAgainstOthers(S) ?? 1) < 0.25, "a tenth of the other account's pace in this processor");
    clock.now = at;
    slow.look();
    return slow.signal;
  };

  t.false(judged({ [S]: 10, [OTHER]: 10 }, 1_500).aborted, 'its IAM allows it as much as the other account: busy with its share');
  t.false(judged({ [S]: 10, [OTHER]: 10 }, 60_000).aborted, 'however long it alone holds the batch');
  t.false(judged({ [S]: 4, [OTHER]: 10 }, 60_000).aborted, 'above a quarter of the fastest other account');

  const tenth = judged({ [S]: 1, [OTHER]: 10 }, 1_500);
  t.true(tenth.aborted, 'a tenth of the rate: slow');
  t.regex((tenth.reason as Error).message, /allows it 1 calls\/s on this host, the batch's other accounts up to 10/);
  t.true(judged({ [S]: 1, [OTHER]: Infinity }, 1_500).aborted, 'the other account never throttled: no limit is faster than any');
  t.true(judged({ [S]: undefined, [OTHER]: 10 }, 1_500).aborted, 'its rate not known (a follower not told yet): judged by the pace, as before');
  t.true(judged({ [S]: 1, [OTHER]: undefined }, 1_500).aborted, "the others' not known: by the pace");
  t.false(judged({ [S]: Infinity, [OTHER]: 10 }, 60_000).aborted, 'no limit learned for it: not slow for want of rate');
});
