// Hostile and malformed input: every record gets its specific reason; nothing throws.
import test from 'ava';
import fc from 'fast-check';
import { decodeRecord } from '../../src/contract/decode.js';
import { hostileCorpus } from '../support/hostile-corpus.js';
import { INPUT_REASONS } from '../../src/faults/errors.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';

const options = { managedPathPrefix: '/stream-managed/', hashKeyRange: ALL_HASH_KEYS };

test('the corpus holds at least 60 distinct hostile records', (t) => {
  t.true(hostileCorpus.length >= 60, `${hostileCorpus.length} records`);
  t.is(new Set(hostileCorpus.map((c) => c.data.toString('base64'))).size, hostileCorpus.length, 'no two records are the same bytes');
});

for (const hostile of hostileCorpus) {
  test(`rejected with ${hostile.reason}: ${hostile.name}`, (t) => {
    const decoded = decodeRecord(hostile.data, hostile.partitionKey, options);
    t.false(decoded.ok);
    if (!decoded.ok) {
      t.is(decoded.reason, hostile.reason, decoded.detail);
      t.true(decoded.detail.length > 0 && decoded.detail.length < 400, 'a bounded, non-empty detail');
    }
  });
}

test('arbitrary bytes never throw and always get a known reason', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      const decoded = decodeRecord(Buffer.from(bytes), 'k', options);
      return decoded.ok || (INPUT_REASONS as readonly string[]).includes(decoded.reason);
    }),
    { numRuns: 2_000 },
  );
  t.pass();
});

test('arbitrary JSON values never throw and always get a known reason', (t) => {
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      const decoded = decodeRecord(Buffer.from(JSON.stringify(value) ?? 'null'), 'k', options);
      return decoded.ok || (INPUT_REASONS as readonly string[]).includes(decoded.reason);
    }),
    { numRuns: 2_000 },
  );
  t.pass();
});

test('events with arbitrary fields in every slot never throw', (t) => {
  fc.assert(
    fc.property(
      fc.record({
        specVersion: fc.oneof(fc.constant('1'), fc.jsonValue()),
        eventId: fc.oneof(fc.string({ maxLength: 200 }), fc.jsonValue()),
        type: fc.oneof(fc.constantFrom('policy.upserted', 'policy.deleted'), fc.jsonValue()),
        policy: fc.oneof(fc.record({ name: fc.oneof(fc.string(), fc.jsonValue()), path: fc.oneof(fc.string(), fc.jsonValue()) }), fc.jsonValue()),
        revision: fc.oneof(fc.integer(), fc.double(), fc.jsonValue()),
        document: fc.jsonValue(),
        tags: fc.oneof(fc.dictionary(fc.string(), fc.string()), fc.jsonValue()),
      }),
      (value) => {
        const decoded = decodeRecord(Buffer.from(JSON.stringify(value)), 'k', options);
        return decoded.ok || (INPUT_REASONS as readonly string[]).includes(decoded.reason);
      },
    ),
    { numRuns: 2_000 },
  );
  t.pass();
});
