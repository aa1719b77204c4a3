// Updates written from the ledger's word, end to end: the real pipeline, the
// real DynamoDB ledger (DynamoDB Local) and the real reconciler, against IAM
// whose reads lag its writes (the realistic-IAM layer in front of moto). Once
// the ledger knows a policy, each update is one IAM write (two at 5
// versions), the ledger's version ids are IAM's, and what IAM holds is the
// last event's document, however far the reads lag. A re-verification
// writes the ledger's state whatever IAM shows, wherever a late write put it.
import test from 'ava';
import { CreatePolicyVersionCommand, ListPolicyVersionsCommand } from '@aws-sdk/client-iam';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import { reconcilerApplier } from '../../src/intake/applier.js';
import { policyArn } from '../../src/iam/policies.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { startFaultProxy } from '../../tools/harness/fault-proxy.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { MemoryDeadLetters } from '../support/fakes.js';
import { readManagedPolicy } from '../support/iam-state.js';
import { deleteRecord, doc, silentLogger, streamRecords, upsertRecord } from '../support/pipeline.js';
import type { PolicyUpserted } from '../../src/contract/event.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { eventRecord } from '../../src/ops/producer.js';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';

const stackOf = useTestStack(test, { shards: 1 });
const PREFIX = '/stream-managed/';

async function child(t: { teardown(fn: () => Promise<void> | void): void }) {
  const { config, stack } = stackOf();
  // Reads lag writes by 0.5 to 1.5 s.
  const proxy = await startFaultProxy({ target: stack.env.AWS_ENDPOINT_URL_IAM!, protocol: 'iam', rate: 0, realisticIam: { lagMs: [500, 1_500], seed: 3 } });
  const metrics = new Metrics();
  const aws = createAwsClients(config, { env: { ...stack.env, AWS_ENDPOINT_URL_IAM: proxy.endpoint }, observers: [metrics.awsCallCounter()] });
  const truth = createAwsClients(config, { env: stack.env });
  t.teardown(async () => {
    destroyAwsClients(aws);
    destroyAwsClients(truth);
    await proxy.close();
  });
  const ledger = ledgerFromConfig(aws.dynamodb, config);
  const reconciler = new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger });
  const pipeline = createShardPipeline(
    {
      config: { ...config, retryBaseMs: 5, retryBackoffCapMs: 200 },
      logger: silentLogger,
      metrics,
      ledger,
      cache: new DedupCache(1_000),
      applier: reconcilerApplier(reconciler),
      deadLetters: new MemoryDeadLetters(),
    },
    { shardId: 'shardId-000000000000', lineage: [], epoch: 0, owner: 'direct-write', hashKeyRange: ALL_HASH_KEYS },
  );
  const iamCalls = (operation?: string) =>
    Object.entries(metrics.snapshot())
      .filter(([key]) => key.startsWith('aws_calls{') && key.includes('service=iam') && (!operation || key.includes(`operation=${operation},`)))
      .reduce((sum, [, value]) => sum + value, 0);
  // Writes that reach IAM without the ledger: a lost claim's late write.
  const lateWriter = new IamReconciler({ iam: truth.iam, sts: truth.sts, config, metrics: new Metrics(), logger: silentLogger });
  return { pipeline, ledger, truth: truth.iam, iamCalls, metrics, lateWriter };
}

test.serial("after the create, each update is one write (two at 5 versions) and the ledger counts IAM's versions", async (t) => {
  const { pipeline, ledger, truth, iamCalls } = await child(t);
  const records = streamRecords(Array.from({ length: 9 }, (_, i) => upsertRecord('direct-seq', `ds-${i}`, doc(i))));
  const [created] = await pipeline.processBatch([{ ...records[0]!, index: 0 }]);
  t.is(created!.outcome, 'created');
  t.is(iamCalls(), 1, 'CreatePolicy alone');
  for (let i = 1; i < records.length; i++) {
    const before = iamCalls();
    const [settled] = await pipeline.processBatch([{ ...records[i]!, index: 0 }]);
    t.is(settled!.outcome, 'updated');
    // Versions v1..v5 fill up at the 5th event; from the 6th, the oldest goes first.
    t.is(iamCalls() - before, i < 5 ? 1 : 2, `update ${i}`);
  }
  t.is(iamCalls('GetPolicy') + iamCalls('GetPolicyVersion') + iamCalls('ListPolicyVersions'), 0, 'no read at all');
  const actual = await readManagedPolicy(truth, LOCAL_ACCOUNT_ID, PREFIX, 'direct-seq');
  t.deepEqual(actual?.document, doc(8));
  t.is(actual?.versions, 5);
  const listed = await truth.send(new ListPolicyVersionsCommand({ PolicyArn: policyArn({ account: LOCAL_ACCOUNT_ID }, PREFIX, 'direct-seq') }));
  const entry = await ledger.get('direct-seq');
  t.deepEqual([...(entry?.iamVersions ?? [])].sort(), (listed.Versions ?? []).map((v) => v.VersionId!).sort());
  t.is(entry?.iamVersions?.at(-1), listed.Versions?.find((v) => v.IsDefaultVersion)?.VersionId, 'the last is the default');
});

test.serial('a version made out of band: the next update still lands, then the ledger stops counting until IAM is read', async (t) => {
  const { pipeline, ledger, truth, iamCalls } = await child(t);
  const records = streamRecords(Array.from({ length: 4 }, (_, i) => upsertRecord('direct-oob', `do-${i}`, doc(i))));
  await pipeline.processBatch([{ ...records[0]!, index: 0 }]);
  await pipeline.processBatch([{ ...records[1]!, index: 0 }]);
  const arn = policyArn({ account: LOCAL_ACCOUNT_ID }, PREFIX, 'direct-oob');
  await truth.send(new CreatePolicyVersionCommand({ PolicyArn: arn, PolicyDocument: JSON.stringify(doc('out-of-band')), SetAsDefault: true }));
  const [third] = await pipeline.processBatch([{ ...records[2]!, index: 0 }]);
  t.is(third!.outcome, 'updated');
  t.is((await ledger.get('direct-oob'))?.iamVersions, undefined, 'v4 where v3 was due: not counted');
  const before = iamCalls();
  const [fourth] = await pipeline.processBatch([{ ...records[3]!, index: 0 }]);
  t.is(fourth!.outcome, 'updated');
  t.true(iamCalls() - before > 1, 'read IAM again');
  const actual = await readManagedPolicy(truth, LOCAL_ACCOUNT_ID, PREFIX, 'direct-oob');
  t.deepEqual(actual?.document, doc(3));
});

test.serial("a verification forgets the ledger's versions", async (t) => {
  const { pipeline, ledger } = await child(t);
  const records = streamRecords([upsertRecord('direct-verify', 'dv-0', doc(0))]);
  await pipeline.processBatch(records);
  t.deepEqual((await ledger.get('direct-verify'))?.iamVersions, ['v1']);
  await ledger.requestVerification('direct-verify');
  const claim = await ledger.claimVerification('direct-verify', 'verifier');
  t.true(claim.won);
  if (claim.won) await ledger.completeVerification('direct-verify', claim.token, 1);
  t.is((await ledger.get('direct-verify'))?.iamVersions, undefined);
});

test.serial('a verification of a deleted policy finds a late create at another path by name and deletes it', async (t) => {
  // The ledger says deleted at team-x; a lost claim's create (an earlier
  // event that named team-y) lands afterwards. Converging to "deleted" must
  // look for the policy by name, not only at the path the ledger names.
  const { pipeline, ledger, truth, lateWriter } = await child(t);
  const [create, remove] = streamRecords([eventRecord(upsertedEvent({ eventId: 'mv-0', name: 'direct-moved', path: `${PREFIX}team-x/`, document: doc(0) })), deleteRecord('direct-moved', 'mv-1')]);
  t.is((await pipeline.processBatch([{ ...create!, index: 0 }]))[0]!.outcome, 'created');
  t.is((await pipeline.processBatch([{ ...remove!, index: 0 }]))[0]!.outcome, 'deleted');
  const late: PolicyUpserted = {
    specVersion: '1',
    eventId: 'mv-late',
    type: 'policy.upserted',
    policyName: 'direct-moved',
    policyPath: `${PREFIX}team-y/`,
    pathGiven: true,
    document: doc('late'),
    tags: {},
  };
  t.is(await lateWriter.upsert(late), 'created');
  await ledger.requestVerification('direct-moved');
  // The delete delivered again to a worker with a cold cache (the ledger
  // answers, and shows the mark): a duplicate, and the owed verification runs.
  const other = await child(t);
  const [again] = await other.pipeline.processBatch([{ ...remove!, index: 0 }]);
  t.is(again!.outcome, 'duplicate');
  t.is(other.metrics.get('verifications', { converged: 'yes' }), 1);
  t.is(await readManagedPolicy(truth, LOCAL_ACCOUNT_ID, `${PREFIX}team-y/`, 'direct-moved'), undefined, 'the late create is gone');
  const entry = await ledger.get('direct-moved');
  t.false((entry?.verifyRequested ?? 0) > (entry?.verifiedUpTo ?? 0), 'the mark is answered');
});
