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
 * offset the test sets; `measured`: the offset the SDK would take from the
 * Date header of the answer to a read.
 */
function measuredClient(systemClockOffset: number, measured?: number) {
  const sent: string[] = [];
  const client = {
    config: { systemClockOffset },
    send: async (command: { constructor: { name: string } }) => {
      sent.push(command.constructor.name);
      if (measured !== undefined && command.constructor.name === 'GetItemCommand') client.config.systemClockOffset = measured;
      return {};
    },
  };
  return { client, sent };
}

const request: ClaimRequest = {
  policy: 'skewed-policy',
  record: { shardId: 'shardId-000000000000', sequenceNumber: '49590338271490256608559692538361571095921575989136588898', subSequenceNumber: 0 },
  eventId: 'e1',
  payloadHash: 'h1',
  owner: 'worker-a',
  epoch: 0,
};

const config = { ledgerTable: 'ledger', claimTtlMs: 60_000, eventIdTtlDays: 8 };

test('a ledger whose DynamoDB client measured a clock offset past the bound refuses to claim, as a transient fault, and counts it', async (t) => {
  const metrics = new Metrics();
  const { client, sent } = measuredClient(-10 * 60_000); // this host's clock is ten minutes ahead of AWS's
  const ledger = ledgerFromConfig(client as unknown as DynamoDBClient, config, {}, { metrics });
  const refused = await t.throwsAsync(ledger.claim(request), { instanceOf: TransientError });
  t.is(refused?.reason, 'clock-skew');
  t.regex(refused!.message, /600000 ms ahead of AWS's/);
  t.deepEqual(sent, ['GetItemCommand'], 'measured again (a read), nothing written');
  t.is(metrics.get(METRIC.claimsRefused, { because: 'clock-skew' }), 1);
  await t.throwsAsync(ledger.claimVerification('skewed-policy', 'worker-a'), { instanceOf: TransientError });
  await t.throwsAsync(ledger.renew('skewed-policy', 'token'), { instanceOf: TransientError });
  t.is(metrics.get(METRIC.claimsRefused, { because: 'clock-skew' }), 3, 'no claim is won or extended');
  t.is(metrics.gaugeValue(METRIC.clockOffsetMs), -600_000, 'the offset is published');

  // Once the SDK measures a clock within the bound again, claims go through.
  client.config.systemClockOffset = -500;
  const won = await ledger.claim(request);
  t.true(won.won);
  t.deepEqual(sent.filter((name) => name !== 'GetItemCommand'), ['UpdateItemCommand'], 'the one write is the claim made within the bound');
  t.is(metrics.gaugeValue(METRIC.clockOffsetMs), -500);
});

test('a refusal measures again first: a host whose clock was put right claims without waiting for another call to notice', async (t) => {
  const metrics = new Metrics();
  const { client, sent } = measuredClient(-10 * 60_000, -300);
  const ledger = ledgerFromConfig(client as unknown as DynamoDBClient, config, {}, { metrics });
  t.true((await ledger.claim(request)).won);
  t.deepEqual(sent, ['GetItemCommand', 'UpdateItemCommand']);
  t.is(metrics.get(METRIC.claimsRefused, { because: 'clock-skew' }), 0);
});

test('the bound follows the claim time to live: half the claim deadline\'s margin, less the Date header\'s second; never below 2 s', (t) => {
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
