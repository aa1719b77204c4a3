// Sequence numbers are compared as numbers of up to 129 digits, never as
// JavaScript numbers; the duplicate cache relies on that order.
import test from 'ava';
import fc from 'fast-check';
import type { PolicyEvent } from '../../src/contract/event.js';
import { payloadHash } from '../../src/contract/payload-hash.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { compareSequence, fromLedgerSequence, toLedgerSequence } from '../../src/ledger/sequence.js';

const sequenceNumber = fc.bigInt({ min: 0n, max: 10n ** 129n - 1n }).map(String);
const sign = (n: number) => (n > 0 ? 1 : n < 0 ? -1 : 0);
const bigCompare = (a: string, b: string) => sign(Number(BigInt(a) - BigInt(b)));

test('compareSequence orders like the numbers, whatever their lengths', (t) => {
  fc.assert(fc.property(sequenceNumber, sequenceNumber, (a, b) => compareSequence(a, b) === bigCompare(a, b)));
  t.is(compareSequence('999', '1000'), -1, 'a shorter number is smaller even when its digits sort later');
  t.is(compareSequence('49680464252519823727834655071869294981423994413795770370', '49680464252519823727834655071869294981423994413795770370'), 0);
});

test('compareSequence also accepts zero-padded ledger values', (t) => {
  fc.assert(fc.property(sequenceNumber, sequenceNumber, (a, b) => compareSequence(toLedgerSequence(a), b) === bigCompare(a, b)));
  t.is(fromLedgerSequence(toLedgerSequence('0')), '0');
});

const at = (sequenceNumber: string, subSequenceNumber = 0, shardId = 'shard-a') => ({ shardId, sequenceNumber, subSequenceNumber });
const applied = (eventId: string) => ({ eventId, payloadHash: `hash-of-${eventId}` });

test('the cache answers duplicate at or below the applied mark and asks the ledger above it', (t) => {
  const cache = new DedupCache(10);
  cache.learn(0, 'p', at('999'), [applied('e1')]);
  t.is(cache.verdict(0, 'p', at('998'), 'e2', 'h2'), 'duplicate');
  t.is(cache.verdict(0, 'p', at('999'), 'e2', 'h2'), 'duplicate');
  t.is(cache.verdict(0, 'p', at('1000'), 'e2', 'h2'), undefined, '1000 is above 999 though it sorts first as text');
  t.is(cache.verdict(0, 'p', at('1000'), 'e1', 'hash-of-e1'), 'duplicate', 'a producer retry of an applied eventId');
  t.is(cache.verdict(0, 'p', at('1000'), 'e1', 'another-payload'), undefined, 'a reused eventId with another payload is for the ledger to judge');
  t.is(cache.verdict(1, 'p', at('998'), 'e2', 'h2'), undefined, 'a new epoch knows nothing yet');
});

// The cache keys eventIds by the eventId alone; the payload hash, which
// covers the policy's name, keeps one eventId under two policies apart.
test('one eventId under two policies is two events for the cache', (t) => {
  const cache = new DedupCache(10);
  const deleteOf = (policyName: string): PolicyEvent => ({ specVersion: '1', eventId: 'e1', type: 'policy.deleted', policyName, policyPath: '/' });
  const [hashP, hashQ] = [payloadHash(deleteOf('p')), payloadHash(deleteOf('q'))];
  t.not(hashP, hashQ);
  cache.learn(0, 'p', at('999'), [{ eventId: 'e1', payloadHash: hashP }]);
  t.is(cache.verdict(0, 'p', at('1000'), 'e1', hashP), 'duplicate');
  t.is(cache.verdict(0, 'q', at('1000'), 'e1', hashQ), undefined, 'the same eventId under q is a new event');
  cache.learn(0, 'q', at('1001'), [{ eventId: 'e1', payloadHash: hashQ }]);
  t.is(cache.verdict(0, 'q', at('1002'), 'e1', hashQ), 'duplicate');
});

test('a newer epoch makes the cache forget the eventIds of older ones', (t) => {
  const cache = new DedupCache(10);
  cache.learn(0, 'p', at('999'), [applied('e1')]);
  cache.learn(1, 'q', at('5'), [applied('e2')]);
  t.is(cache.verdict(1, 'p', at('1000'), 'e1', 'hash-of-e1'), undefined, 'a replayed event is new in epoch 1');
  t.is(cache.verdict(1, 'q', at('6'), 'e2', 'hash-of-e2'), 'duplicate');
  cache.learn(0, 'r', at('7'), [applied('e3')]);
  t.is(cache.verdict(0, 'r', at('8'), 'e3', 'hash-of-e3'), undefined, 'a worker still on epoch 0 is not answered from memory: the ledger judges it');
  t.is(cache.verdict(1, 'q', at('6'), 'e2', 'hash-of-e2'), 'duplicate', "learning from an older epoch does not drop the newer one's events");
});

test('the cache orders user records of one aggregate by subsequence number', (t) => {
  const cache = new DedupCache(10);
  cache.learn(0, 'p', at('999', 3), []);
  t.is(cache.verdict(0, 'p', at('999', 2), 'x', 'h'), 'duplicate');
  t.is(cache.verdict(0, 'p', at('999', 3), 'x', 'h'), 'duplicate');
  t.is(cache.verdict(0, 'p', at('999', 4), 'x', 'h'), undefined, 'a later user record of the same aggregate is new');
});

test('the cache does not compare sequence numbers across shards', (t) => {
  const cache = new DedupCache(10);
  cache.learn(0, 'p', at('5000', 0, 'parent'), []);
  t.is(cache.verdict(0, 'p', at('4000', 0, 'child'), 'x', 'h'), undefined, 'a lower number on another shard is for the ledger to judge');
});

test('the cache keeps the highest mark it has learned', (t) => {
  const cache = new DedupCache(10);
  cache.learn(0, 'p', at('1000'), []);
  cache.learn(0, 'p', at('999'), []);
  t.is(cache.verdict(0, 'p', at('1000'), 'x', 'h'), 'duplicate');
  t.is(cache.verdict(0, 'p', at('1001'), 'x', 'h'), undefined);
});

// The cache knows part of the ledger's state: only a duplicate stays a
// duplicate whatever the rest holds (ledger/verdict.ts). A late revision may
// be an archived eventId's retry; a reused eventId may lie behind the
// ledger's position: the ledger judges both.
test("the cache answers duplicates only: stale and event-id-conflict are the ledger's", (t) => {
  const cache = new DedupCache(10);
  cache.learn(0, 'p', at('1000'), [applied('e1')]);
  t.is(cache.verdict(0, 'p', at('1001'), 'e1', 'another-payload'), undefined);
  t.is(cache.verdict(0, 'p', at('1001'), 'e9', 'h'), undefined, 'the cache keeps no revision to call it stale');
});
