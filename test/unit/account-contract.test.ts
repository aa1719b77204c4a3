// The event contract's `account` field: a 12-digit string naming the target
// account. The partition key is `<account>/<name>` when it is there and the
// name when it is not, and the partition-key and hash-range checks read that
// one key, so a policy sent to many accounts spreads over the shards and each
// account's copy is ordered on the shard its own key hashes into.
import test from 'ava';
import { decodeRecord } from '../../src/contract/decode.js';
import type { DecodeOptions } from '../../src/contract/decode.js';
import { ALL_HASH_KEYS, hashKeyOf } from '../../src/contract/hash-key.js';
import type { HashKeyRange } from '../../src/contract/hash-key.js';
import { policyKey, splitPolicyKey } from '../../src/contract/policy-key.js';
import { INPUT_REASONS } from '../../src/faults/errors.js';
import { eventRecord } from '../../src/ops/producer.js';
import { generateLoad } from '../../src/ops/load.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';

const options = (hashKeyRange: HashKeyRange = ALL_HASH_KEYS): DecodeOptions => ({ managedPathPrefix: '/stream-managed/', hashKeyRange });
const document = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/*' }] };
const body = (extra: Record<string, unknown>) => Buffer.from(JSON.stringify({ specVersion: '1', eventId: 'e-1', type: 'policy.upserted', policy: { name: 'reports-read' }, document, ...extra }));

test('an event that names an account decodes with it, under the partition key <account>/<name>', (t) => {
  const decoded = decodeRecord(body({ account: '111111111111' }), '111111111111/reports-read', options());
  t.true(decoded.ok, decoded.ok ? '' : decoded.detail);
  if (decoded.ok) {
    t.is(decoded.event.account, '111111111111');
    t.is(decoded.event.policyName, 'reports-read');
    t.is(policyKey(decoded.event), '111111111111/reports-read');
  }
});

test("an event without an account keeps today's partition key, the policy name, and names no account", (t) => {
  const decoded = decodeRecord(body({}), 'reports-read', options());
  t.true(decoded.ok);
  if (decoded.ok) {
    t.is(decoded.event.account, undefined);
    t.is(policyKey(decoded.event), 'reports-read');
  }
});

test("with an account, the bare name as partition key is a partition-key-mismatch, and so is another account's key", (t) => {
  for (const key of ['reports-read', '222222222222/reports-read', '111111111111/other']) {
    const decoded = decodeRecord(body({ account: '111111111111' }), key, options());
    t.false(decoded.ok, key);
    if (!decoded.ok) {
      t.is(decoded.reason, 'partition-key-mismatch', key);
      t.is(decoded.account, '111111111111', 'the dead letter names the account');
    }
  }
  const bare = decodeRecord(body({}), '111111111111/reports-read', options());
  t.false(bare.ok);
  if (!bare.ok) t.is(bare.reason, 'partition-key-mismatch');
});

test('an account that is not a string of 12 ASCII digits is rejected as invalid-account', (t) => {
  t.true((INPUT_REASONS as readonly string[]).includes('invalid-account'));
  for (const account of ['', '11111111111', '1111111111111', '11111111111a', ' 111111111111', '111111111111\n', '١١١١١١١١١١١١', 111111111111, null, ['111111111111'], { id: '111111111111' }]) {
    const key = typeof account === 'string' ? `${account}/reports-read` : 'reports-read';
    const decoded = decodeRecord(body({ account }), key, options());
    t.false(decoded.ok, JSON.stringify(account));
    if (!decoded.ok) t.is(decoded.reason, 'invalid-account', JSON.stringify(account));
  }
});

test("the hash-range check reads <account>/<name>: a shard owns the account's copy by the hash of that key, not of the name", (t) => {
  // Accounts whose key hashes into a range the bare name's hash lies outside of, and the other way round.
  const name = 'reports-read';
  const nameKey = hashKeyOf(name);
  const narrow: HashKeyRange = { startingHashKey: nameKey, endingHashKey: nameKey };
  const account = '111111111111';
  const accountKey = hashKeyOf(`${account}/${name}`);
  t.not(accountKey, nameKey);
  const onNameShard = decodeRecord(body({ account }), `${account}/${name}`, options(narrow));
  t.false(onNameShard.ok, "the shard that owns the bare name does not own the account's copy");
  if (!onNameShard.ok) t.is(onNameShard.reason, 'hash-key-mismatch');
  t.true(decodeRecord(body({ account }), `${account}/${name}`, options({ startingHashKey: accountKey, endingHashKey: accountKey })).ok);
});

test('one policy sent to many accounts spreads over the shards', (t) => {
  const quarter = 2n ** 126n;
  const shards = new Set<bigint>();
  for (let i = 0; i < 1_000; i++) shards.add(hashKeyOf(policyKey({ account: String(100000000000 + i), policyName: 'baseline' })) / quarter);
  t.is(shards.size, 4, 'a thousand accounts land on each of four equal shards');
});

test('a policy key splits back into its account and name', (t) => {
  t.deepEqual(splitPolicyKey('111111111111/reports-read'), { account: '111111111111', policyName: 'reports-read' });
  t.deepEqual(splitPolicyKey('reports-read'), { policyName: 'reports-read' });
});

test('the producers build the partition key from the account: eventRecord and the load generator', (t) => {
  t.is(eventRecord(upsertedEvent({ eventId: 'e', account: '222222222222', name: 'p', document })).partitionKey, '222222222222/p');
  t.is(eventRecord(upsertedEvent({ eventId: 'e', name: 'p', document })).partitionKey, 'p');
  const load = generateLoad({ policies: 4, events: 40, seed: 3, accounts: ['111111111111', '222222222222'] });
  for (const record of load) {
    const decoded = decodeRecord(record.data, record.partitionKey, options());
    t.true(decoded.ok, decoded.ok ? '' : decoded.detail);
    if (decoded.ok) t.is(decoded.event.account, record.account);
  }
  t.deepEqual(new Set(load.map((r) => r.account)), new Set(['111111111111', '222222222222']));
  // Without accounts, the same seed gives the same records as before.
  t.deepEqual(
    generateLoad({ policies: 4, events: 40, seed: 3 }).map((r) => r.partitionKey),
    load.map((r) => r.policy),
  );
});
