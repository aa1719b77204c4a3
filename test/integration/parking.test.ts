// Parking, on the real ledger table (DynamoDB Local) and real IAM (moto): a
// policy whose account's IAM stays unavailable (its breaker open) past
// IPS_PARK_AFTER_MS is parked and stops holding the shard; a later record of
// the policy joins the park at once, behind the others; the redriver applies
// the park in order once the account is back, and a replay afterwards is
// answered `duplicate`: nothing is lost and nothing takes effect twice.
import test from 'ava';
import { GetPolicyCommand, GetPolicyVersionCommand } from '@aws-sdk/client-iam';
import type { PolicyEvent } from '../../src/contract/event.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import { TransientError } from '../../src/faults/errors.js';
import { decodePolicyVersionDocument, documentsEqual } from '../../src/iam/document.js';
import { policyArn } from '../../src/iam/policies.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import { reconcilerApplier } from '../../src/intake/applier.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { eventRecord } from '../../src/ops/producer.js';
import { DynamoDbParkStore } from '../../src/park/park-store.js';
import { Redriver } from '../../src/park/redriver.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import type { Applier, ApplyHint, StreamRecord } from '../../src/pipeline/types.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { MemoryDeadLetters } from '../support/fakes.js';
import { doc, silentLogger, streamRecords } from '../support/pipeline.js';

const stackOf = useTestStack(test, { shards: 1 });
const DOWN = '222222222222';
const SHARD = 'shardId-000000000000';

/**
 * The worker's IAM step, with account DOWN's IAM unavailable while `down`:
 * its events fail as the account's reconciler fails with its breaker open.
 * Events of every account are written to the emulator's one account (names
 * differ per account here), which is all this test needs of IAM.
 */
function outageApplier(real: Applier) {
  const state = { down: true, applied: [] as string[], tried: [] as string[] };
  const applier: Applier = {
    apply: async (event: PolicyEvent, hint?: ApplyHint) => {
      state.tried.push(event.eventId);
      if (event.account === DOWN && state.down) throw new TransientError('circuit-open', `account ${DOWN}: IAM circuit breaker open`);
      const step = await real.apply(event, hint);
      state.applied.push(event.eventId);
      return step;
    },
  };
  return { applier, state };
}

function setUp(owner: string) {
  const { config, clients } = stackOf();
  const aws = clients();
  const metrics = new Metrics();
  const fast = { ...config, retryBaseMs: 5, retryBackoffCapMs: 50, parkAfterMs: 400 };
  const outage = outageApplier(reconcilerApplier(new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger })));
  const parks = new DynamoDbParkStore(aws.dynamodb, config.ledgerTable);
  const pipeline = createShardPipeline(
    { config: fast, logger: silentLogger, metrics, ledger: ledgerFromConfig(aws.dynamodb, config), cache: new DedupCache(1_000), applier: outage.applier, deadLetters: new MemoryDeadLetters(), parks },
    { shardId: SHARD, lineage: [], hashKeyRange: ALL_HASH_KEYS, epoch: 0, owner },
  );
  const redriver = new Redriver({ store: parks, redrive: (policy, records) => pipeline.redrive(policy, records), shards: [SHARD], everyMs: 60_000, metrics, logger: silentLogger });
  return { aws, pipeline, redriver, parks, outage, metrics };
}

const event = (name: string, eventId: string, variant: string, account?: string) => eventRecord(upsertedEvent({ eventId, name, document: doc(variant), ...(account ? { account } : {}) }));
const batch = (records: StreamRecord[]) => records.map((record, index) => ({ ...record, index }));

async function defaultDocument(aws: ReturnType<typeof setUp>['aws'], name: string): Promise<unknown> {
  const arn = policyArn({ account: LOCAL_ACCOUNT_ID }, '/stream-managed/', name);
  const policy = (await aws.iam.send(new GetPolicyCommand({ PolicyArn: arn }))).Policy!;
  const version = await aws.iam.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: policy.DefaultVersionId }));
  return decodePolicyVersionDocument(version.PolicyVersion!.Document!);
}

test('an unavailable account is parked, not waited on; later records join behind; the redriver applies them in order once it is back; a replay takes no effect twice', async (t) => {
  const { aws, pipeline, redriver, parks, outage, metrics } = setUp('worker-1');
  const first = streamRecords([event('park-healthy', 'h1', 'h1'), event('park-down', 'd1', 'd1', DOWN), event('park-down', 'd2', 'd2', DOWN)], SHARD);

  const settled = await pipeline.processBatch(batch(first));
  t.deepEqual(
    settled.map((s) => [s.eventId, s.outcome, s.reason]),
    [
      ['h1', 'created', undefined],
      ['d1', 'parked', 'circuit-open'],
      ['d2', 'parked', 'circuit-open'],
    ],
    'the healthy account is applied; the unavailable one is parked after IPS_PARK_AFTER_MS, and the batch settles',
  );
  t.deepEqual([...(await parks.parkedPolicies())], [`${DOWN}/park-down`]);

  // A later record of the parked policy joins the park at once (no wait), behind the others; the healthy policy moves on.
  const second = streamRecords([event('park-down', 'd3', 'd3', DOWN), event('park-healthy', 'h2', 'h2')], SHARD);
  const joined = await pipeline.processBatch(batch(second));
  t.deepEqual(
    joined.map((s) => [s.eventId, s.outcome, s.reason]),
    [
      ['d3', 'parked', 'behind-parked'],
      ['h2', 'updated', undefined],
    ],
  );
  t.false(outage.state.tried.includes('d3'), 'a record joining a park is not tried against its account first');
  t.deepEqual(
    (await parks.records(`${DOWN}/park-down`)).map((r) => r.event.eventId),
    ['d1', 'd2', 'd3'],
    'parked in stream order',
  );

  // Still down: the redriver leaves them parked, and says how many.
  const waiting = await redriver.round();
  t.is(waiting.redriven, 0);
  t.is(waiting.parked.get(DOWN), 3);
  t.is(metrics.gaugeValue('parked_records', { account: DOWN }), 3);
  t.false(
    outage.state.applied.some((id) => id.startsWith('d')),
    'parked records are not applied',
  );

  // Back: applied in order (the fold: d3's document), the park gone.
  outage.state.down = false;
  const back = await redriver.round();
  t.is(back.redriven, 3);
  t.true(documentsEqual(await defaultDocument(aws, 'park-down'), doc('d3')));
  t.deepEqual([...(await parks.parkedPolicies())], []);
  t.is(await parks.summary(`${DOWN}/park-down`), undefined);
  t.is(metrics.gaugeValue('parked_records', { account: DOWN }), 0, 'the gauge goes back to 0 once drained');
  const appliedOnce = outage.state.applied.filter((id) => id.startsWith('d'));

  // A replay of everything (checkpoint reset): duplicates, nothing parked, no effect again.
  const replay = setUp('worker-2');
  replay.outage.state.down = false;
  const replayed = await replay.pipeline.processBatch(batch([...first, ...second]));
  t.true(
    replayed.every((s) => s.outcome === 'duplicate'),
    JSON.stringify(replayed.map((s) => s.outcome)),
  );
  t.deepEqual(replay.outage.state.applied, [], 'no IAM step for a replayed record');
  t.deepEqual(appliedOnce.length, 1, `the park's records coalesce into one IAM step, applied once: ${appliedOnce}`);
});
