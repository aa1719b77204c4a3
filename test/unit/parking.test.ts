// When a policy's records are parked (park/parking.ts): after IPS_PARK_AFTER_MS
// of its account's IAM being unavailable without a break. An open breaker
// alternates with the faults its trial calls meet; both are the account
// being unavailable. A fault of the stream's own (the ledger, a claim held
// elsewhere) is not, and starts the wait over.
import test from 'ava';
import { AssumeRoleError, TransientError } from '../../src/faults/errors.js';
import { classifyIamError } from '../../src/iam/classify-iam-error.js';
import { UnavailableFor, accountUnavailable } from '../../src/park/parking.js';
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
