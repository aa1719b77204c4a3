// A host whose clock is far from AWS's does not claim (ledger/clock-skew.ts,
// docs/ledger.md "Clocks"). The ledger's DynamoDB client is a stand-in that
// answers every write and reports the clock offset the SDK would have measured.
import test from 'ava';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { loadConfig } from '../../src/config/config.js';
import { TransientError } from '../../src/faults/errors.js';
import { claimMarginMs, clockOffsetBoundMs } from '../../src/ledger/clock-skew.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import type { ClaimRequest } from '../../src/ledger/ledger.js';
import { METRIC, Metrics } from '../../src/metrics/metrics.js';

/**
 * A DynamoDB client that answers every call (an empty item) and whose measured
 * offset the test sets; `samples`: the offsets the SDK takes, one after the
 * other, from the Date headers of the answers to reads (the last one stays).
 */
function measuredClient(systemClockOffset: number, samples: number[] = []) {
  const sent: string[] = [];
  const client = {
    config: { systemClockOffset },
    send: async (command: { constructor: { name: string } }) => {
      sent.push(command.constructor.name);
      if (command.constructor.name === 'GetItemCommand' && samples.length > 0) client.config.systemClockOffset = samples.length > 1 ? samples.shift()! : samples[0]!;
      return {};
    },
  };
  return { client, sent };
}

const writes = (sent: string[]) => sent.filter((name) => name !== 'GetItemCommand');

const request: ClaimRequest = {
  policy: 'skewed-policy',
  record: { shardId: 'shardId-000000000000', sequenceNumber: '49590338271490256608559692538361571095921575989136588898', subSequenceNumber: 0 },
  eventId: 'e1',
  payloadHash: 'h1',
  owner: 'worker-a',
  epoch: 0,
};

const config = { ledgerTable: 'ledger', eventArchiveTable: 'event-archive', claimTtlMs: 60_000, eventIdTtlDays: 8, lateWriteMs: 15_000 };

test('a ledger whose DynamoDB client measured a clock offset past the bound refuses to claim, as a transient fault, and counts it', async (t) => {
  const metrics = new Metrics();
  const { client, sent } = measuredClient(-10 * 60_000); // this host's clock is ten minutes ahead of AWS's
  const ledger = ledgerFromConfig(client as unknown as DynamoDBClient, config, {}, { metrics });
  const refused = await t.throwsAsync(ledger.claim(request), { instanceOf: TransientError });
  t.is(refused?.reason, 'clock-skew');
  t.regex(refused!.message, /600000 ms ahead of AWS's/);
  t.deepEqual(sent, ['GetItemCommand', 'GetItemCommand'], 'measured again (two reads: it looked ahead), nothing written');
  t.is(metrics.get(METRIC.claimsRefused, { because: 'clock-skew' }), 1);
  await t.throwsAsync(ledger.claimVerification('skewed-policy', 'worker-a'), { instanceOf: TransientError });
  await t.throwsAsync(ledger.renew('skewed-policy', 'token'), { instanceOf: TransientError });
  t.is(metrics.get(METRIC.claimsRefused, { because: 'clock-skew' }), 3, 'no claim is won or extended');
  t.is(metrics.gaugeValue(METRIC.clockOffsetMs), -600_000, 'the offset is published');

  // Once the SDK measures a clock within the bound again, claims go through.
  client.config.systemClockOffset = -500;
  const won = await ledger.claim(request);
  t.true(won.won);
  t.deepEqual(writes(sent), ['UpdateItemCommand'], 'the one write is the claim made within the bound');
  t.is(metrics.gaugeValue(METRIC.clockOffsetMs), -500);
});

test('a refusal measures again first: a host whose clock was put right claims without waiting for another call to notice', async (t) => {
  const metrics = new Metrics();
  const { client, sent } = measuredClient(-10 * 60_000, [-300]);
  const ledger = ledgerFromConfig(client as unknown as DynamoDBClient, config, {}, { metrics });
  t.true((await ledger.claim(request)).won);
  t.deepEqual(sent, ['GetItemCommand', 'UpdateItemCommand']);
  t.is(metrics.get(METRIC.claimsRefused, { because: 'clock-skew' }), 0);
});

test('an answer read late (a busy or just-thawed process) makes the host look ahead: a second sample tells it from a clock that is', async (t) => {
  const metrics = new Metrics();
  // The SDK last read an answer 4 s late, and the first read again is still 2.5 s late; the next is read at once.
  const { client, sent } = measuredClient(-4_000, [-2_500, -600]);
  const ledger = ledgerFromConfig(client as unknown as DynamoDBClient, config, {}, { metrics });
  t.true((await ledger.claim(request)).won);
  t.deepEqual(sent, ['GetItemCommand', 'GetItemCommand', 'UpdateItemCommand']);
  t.is(metrics.get(METRIC.claimsRefused, { because: 'clock-skew' }), 0);
});

test('a host behind AWS past the bound is refused on one fresh sample: no delay makes a clock look behind', async (t) => {
  const metrics = new Metrics();
  const { client, sent } = measuredClient(5_000, [5_000]);
  const ledger = ledgerFromConfig(client as unknown as DynamoDBClient, config, {}, { metrics });
  const refused = await t.throwsAsync(ledger.claim(request), { instanceOf: TransientError });
  t.regex(refused!.message, /5000 ms behind AWS's/);
  t.deepEqual(sent, ['GetItemCommand']);
  t.is(metrics.get(METRIC.claimsRefused, { because: 'clock-skew' }), 1);
});

test("the bound follows the claim time to live: half the claim deadline's margin, less the Date header's second; never below 2 s", (t) => {
  t.is(claimMarginMs(60_000), 6_000);
  t.is(clockOffsetBoundMs(60_000), 2_000);
  t.is(clockOffsetBoundMs(100_000), 4_000);
  t.is(clockOffsetBoundMs(600_000), 4_000, 'the margin stops at 10 s');
  t.is(clockOffsetBoundMs(5_000), 2_000);
  const metrics = new Metrics();
  const { client } = measuredClient(3_000);
  const ledger = ledgerFromConfig(client as unknown as DynamoDBClient, { ...config, claimTtlMs: 100_000 }, {}, { metrics });
  return ledger.claim(request).then((result) => t.true(result.won, '3 s behind is within the 4 s a 100 s claim tolerates'));
});

test('IPS_MAX_CLOCK_OFFSET_MS overrides the derived bound', async (t) => {
  t.is(loadConfig({}).maxClockOffsetMs, undefined);
  const configured = loadConfig({ IPS_MAX_CLOCK_OFFSET_MS: '1500' });
  t.is(configured.maxClockOffsetMs, 1_500);
  const { client } = measuredClient(1_800);
  const ledger = ledgerFromConfig(client as unknown as DynamoDBClient, { ...config, maxClockOffsetMs: configured.maxClockOffsetMs }, {});
  await t.throwsAsync(ledger.claim(request), { instanceOf: TransientError });
});
