// A record is applied only on the shard that owns its partition key's hash
// key. A producer's ExplicitHashKey can put a record for policy P on any
// shard; there it has no order with P's records on P's own shard, so it is
// rejected as `hash-key-mismatch`, dead-lettered, and never applied.
import test from 'ava';
import fc from 'fast-check';
import { decodeRecord } from '../../src/contract/decode.js';
import type { DecodeOptions } from '../../src/contract/decode.js';
import { ALL_HASH_KEYS, hashKeyOf } from '../../src/contract/hash-key.js';
import type { HashKeyRange } from '../../src/contract/hash-key.js';
import { INPUT_REASONS } from '../../src/faults/errors.js';
import { startShardPipeline } from '../../src/intake/start-shard.js';
import type { ProcessParts } from '../../src/intake/start-shard.js';
import type { StreamRecord } from '../../src/pipeline/types.js';
import { METRIC, Metrics, metricKey } from '../../src/metrics/metrics.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import type { ShardInfo } from '../../src/stream/shard-tree.js';
import { FakeIam, MemoryDeadLetters, MemoryLedger } from '../support/fakes.js';
import { doc, harness, silentLogger, streamRecords, testConfig, upsertRecord } from '../support/pipeline.js';

const HALF = 2n ** 127n;
const LOWER: HashKeyRange = { startingHashKey: 0n, endingHashKey: HALF - 1n };
const UPPER: HashKeyRange = { startingHashKey: HALF, endingHashKey: 2n ** 128n - 1n };

const options = (hashKeyRange: HashKeyRange): DecodeOptions => ({ managedPathPrefix: '/stream-managed/', hashKeyRange });

/** Policy names whose partition key hashes into the lower, or the upper, half of the hash key space. */
const names = Array.from({ length: 40 }, (_, i) => `wrong-shard-${i}`);
const lowerNames = names.filter((name) => hashKeyOf(name) < HALF);
const upperNames = names.filter((name) => hashKeyOf(name) >= HALF);

test('hash-key-mismatch is an input reason', (t) => {
  t.true((INPUT_REASONS as readonly string[]).includes('hash-key-mismatch'));
});

test('a record whose partition key hashes outside the shard range is rejected as hash-key-mismatch; the range includes both ends', (t) => {
  // MD5("a") = 0cc175b9c0f1b6a831c399e269772661, the hash key Kinesis routes partition key "a" by.
  const key = 0x0cc175b9c0f1b6a831c399e269772661n;
  const record = upsertRecord('a', 'a-1', doc(1));
  const decode = (range: HashKeyRange) => decodeRecord(record.data, 'a', options(range));
  t.true(decode({ startingHashKey: key, endingHashKey: key }).ok, 'a range of one hash key: its own');
  t.true(decode(ALL_HASH_KEYS).ok);
  for (const range of [
    { startingHashKey: 0n, endingHashKey: key - 1n },
    { startingHashKey: key + 1n, endingHashKey: 2n ** 128n - 1n },
  ]) {
    const decoded = decode(range);
    t.false(decoded.ok);
    if (!decoded.ok) {
      t.is(decoded.reason, 'hash-key-mismatch');
      t.is(decoded.eventId, 'a-1', 'the dead letter names the event');
      t.is(decoded.policyName, 'a', 'and its policy');
      t.regex(decoded.detail, new RegExp(String(key)), 'the detail names the hash key');
    }
  }
});

test('any partition key: accepted exactly when its hash key lies in the range', (t) => {
  fc.assert(
    fc.property(fc.stringMatching(/^[A-Za-z0-9+=,.@_-]{1,128}$/), fc.bigInt({ min: 0n, max: 2n ** 128n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 128n - 1n }), (name, a, b) => {
      const range = a <= b ? { startingHashKey: a, endingHashKey: b } : { startingHashKey: b, endingHashKey: a };
      const decoded = decodeRecord(upsertRecord(name, 'e', doc(1)).data, name, options(range));
      const inside = hashKeyOf(name) >= range.startingHashKey && hashKeyOf(name) <= range.endingHashKey;
      return inside ? decoded.ok : !decoded.ok && decoded.reason === 'hash-key-mismatch';
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('a partition key other than the policy name stays partition-key-mismatch, wherever it hashes (a redrive puts it back under the policy name)', (t) => {
  const record = upsertRecord(lowerNames[0]!, 'pk-e', doc(1));
  const decoded = decodeRecord(record.data, upperNames[0]!, options(LOWER));
  t.false(decoded.ok);
  if (!decoded.ok) t.is(decoded.reason, 'partition-key-mismatch');
});

test("on the wrong shard: rejected as hash-key-mismatch, dead-lettered, IAM and the ledger untouched; the shard's own policies are applied", async (t) => {
  const h = harness({ hashKeyRange: LOWER });
  t.true(lowerNames.length > 1 && upperNames.length > 1, 'the sample spans both halves');
  const [own, stray] = [lowerNames[0]!, upperNames[0]!];
  const settlements = await h.pipeline.processBatch(streamRecords([upsertRecord(own, 'own-1', doc(1)), upsertRecord(stray, 'stray-1', doc(2))]));
  t.deepEqual(
    settlements.map((s) => [s.outcome, s.reason]),
    [
      ['created', undefined],
      ['rejected', 'hash-key-mismatch'],
    ],
  );
  const letters = [...h.deadLetters.letters.values()];
  t.deepEqual(
    letters.map((letter) => [letter.reason, letter.policyName, letter.eventId, letter.partitionKey]),
    [['hash-key-mismatch', stray, 'stray-1', stray]],
  );
  t.false(h.iam.policies.has(stray), 'not applied');
  t.false(h.ledger.entries.has(stray), 'no ledger entry: its own shard orders it');
  t.is(h.metrics.snapshot()[metricKey(METRIC.rejections, { reason: 'hash-key-mismatch' })], 1, 'counted by reason');
});

test('KPL user records of one aggregate are checked one by one: the stray is rejected, the others applied', async (t) => {
  const h = harness({ hashKeyRange: UPPER });
  // One Kinesis record: the same sequence number, a subsequence number each. The KCL hands on a
  // user record whose explicit hash key lies in the shard's range, whatever its partition key.
  const users = [upsertRecord(upperNames[0]!, 'u-0', doc(1)), upsertRecord(lowerNames[0]!, 'u-1', doc(1)), upsertRecord(upperNames[1]!, 'u-2', doc(1))];
  const records: StreamRecord[] = users.map((user, index) => ({
    shardId: 'shardId-000000000000',
    sequenceNumber: '4000',
    subSequenceNumber: index,
    partitionKey: user.partitionKey,
    data: user.data,
    index,
    receivedAt: Date.now(),
  }));
  const settlements = await h.pipeline.processBatch(records);
  t.deepEqual(
    settlements.map((s) => [s.outcome, s.reason]),
    [
      ['created', undefined],
      ['rejected', 'hash-key-mismatch'],
      ['created', undefined],
    ],
  );
  t.false(h.iam.policies.has(lowerNames[0]!));
});

/**
 * A stream split once: shardId-000000000000 (closed) into -001 (lower half)
 * and -002 (upper half). The record processor learns its shard's range and
 * lineage from this listing when it starts.
 */
const SPLIT: ShardInfo[] = [
  { shardId: 'shardId-000000000000', parents: [], closed: true, ...ALL_HASH_KEYS },
  { shardId: 'shardId-000000000001', parents: ['shardId-000000000000'], closed: false, ...LOWER },
  { shardId: 'shardId-000000000002', parents: ['shardId-000000000000'], closed: false, ...UPPER },
];

function processParts(listing: () => Promise<ShardInfo[]>) {
  const iam = new FakeIam();
  const deadLetters = new MemoryDeadLetters();
  const parts: ProcessParts = {
    config: testConfig(),
    logger: silentLogger,
    metrics: new Metrics(),
    ledger: new MemoryLedger(),
    cache: new DedupCache(100),
    applier: iam,
    deadLetters,
    listShards: listing,
  };
  return { parts, iam, deadLetters };
}

for (const [shardId, range] of [
  ['shardId-000000000001', LOWER],
  ['shardId-000000000002', UPPER],
  ['shardId-000000000000', ALL_HASH_KEYS],
] as const) {
  test(`the record processor of ${shardId} (after a split) checks records against its own range`, async (t) => {
    const { parts, iam } = processParts(async () => SPLIT);
    const pipeline = await startShardPipeline(parts, shardId, () => undefined, new AbortController().signal);
    const records = streamRecords([upsertRecord(lowerNames[0]!, 'l-1', doc(1)), upsertRecord(upperNames[0]!, 'u-1', doc(1))], shardId);
    const settlements = await pipeline.processBatch(records);
    const expected = [lowerNames[0]!, upperNames[0]!].map((name) => (hashKeyOf(name) >= range.startingHashKey && hashKeyOf(name) <= range.endingHashKey ? 'created' : 'rejected'));
    t.deepEqual(
      settlements.map((s) => s.outcome),
      expected,
    );
    t.deepEqual([...iam.policies.keys()].sort(), [lowerNames[0]!, upperNames[0]!].filter((_, i) => expected[i] === 'created').sort());
  });
}

test('a shard the listing does not show yet: the record processor waits for it rather than guess its range', async (t) => {
  let listings = 0;
  const { parts, iam } = processParts(async () => (++listings < 3 ? SPLIT.slice(0, 1) : SPLIT));
  const pipeline = await startShardPipeline(parts, 'shardId-000000000001', () => undefined, new AbortController().signal);
  t.true(listings >= 3, 'listed again until the shard appeared');
  const [settled] = await pipeline.processBatch(streamRecords([upsertRecord(upperNames[0]!, 'u-9', doc(1))], 'shardId-000000000001'));
  t.is(settled!.reason, 'hash-key-mismatch');
  t.false(iam.policies.has(upperNames[0]!));
});
