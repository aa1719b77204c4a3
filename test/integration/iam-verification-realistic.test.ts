// Re-verification of a marked policy against IAM as it really behaves (names
// unique per account whatever the path): a late create of a lost claim may
// have put the policy under another managed path.
import test from 'ava';
import { CreatePolicyCommand, CreatePolicyVersionCommand } from '@aws-sdk/client-iam';
import { loadConfig } from '../../src/config/config.js';
import { repairPolicy } from '../../src/ops/drift-repair.js';
import { reconcilerApplier } from '../../src/intake/applier.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { eventRecord } from '../../src/ops/producer.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { MemoryLedger } from '../support/fakes.js';
import { arn, doc, rig, useMoto } from '../support/iam-rig.js';
import { readManagedPolicy } from '../support/iam-state.js';
import { harness, streamRecords } from '../support/pipeline.js';

useMoto(test);

const upsertAt = (name: string, eventId: string, path: string, bucket: string) => eventRecord(upsertedEvent({ eventId, name, path, document: doc(bucket) }));

test.serial('a re-verification that finds a late create of ours under another managed path moves the policy where the ledger says, and answers the marks', async (t) => {
  const x = await rig(t);
  const ledger = new MemoryLedger();
  const applier = reconcilerApplier(x.r);
  const wanted = '/stream-managed/team-new/';
  const late = '/stream-managed/team-old/';
  const records = streamRecords([upsertAt('verify-moved', 'mv-2', wanted, 'wanted')]);
  await harness({ ledger, applier, owner: 'worker' }).pipeline.processBatch(records);
  // A lost claim's writes land late, out of order: its delete, then its create of an older event naming another path.
  t.is(await x.settle.delete({ specVersion: '1', eventId: 'mv-0', type: 'policy.deleted', policyName: 'verify-moved', policyPath: wanted, pathGiven: true }), 'deleted');
  t.is(
    await x.settle.upsert({ specVersion: '1', eventId: 'mv-1', type: 'policy.upserted', policyName: 'verify-moved', policyPath: late, pathGiven: true, document: doc('late'), tags: {} }),
    'created',
  );
  await ledger.requestVerification('verify-moved');
  // A redelivery to a fresh child: a duplicate, and the verification it owes.
  const h = harness({ ledger, applier, owner: 'worker-2' });
  const [settled] = await h.pipeline.processBatch(records);
  t.is(settled!.outcome, 'duplicate');
  t.is(h.metrics.get('verifications', { converged: 'refused' }), 0, 'never refused as not-owned: the policy is ours');
  t.is(h.metrics.get('verifications', { converged: 'yes' }), 1);
  t.deepEqual(await readManagedPolicy(x.truth, LOCAL_ACCOUNT_ID, wanted, 'verify-moved'), { document: doc('wanted'), versions: 1 });
  t.is(await readManagedPolicy(x.truth, LOCAL_ACCOUNT_ID, late, 'verify-moved'), undefined, 'nothing left where the late create put it');
  const entry = ledger.entries.get('verify-moved')!;
  t.is(entry.verifiedUpTo, entry.verifyRequested);
});

test.serial('a re-verification that finds the name taken by a policy that is not ours never touches it: refused, counted', async (t) => {
  const x = await rig(t);
  const ledger = new MemoryLedger();
  const applier = reconcilerApplier(x.r);
  const records = streamRecords([upsertAt('verify-taken', 'tk-1', '/stream-managed/', 'wanted')]);
  await harness({ ledger, applier, owner: 'worker' }).pipeline.processBatch(records);
  t.is(await x.settle.delete({ specVersion: '1', eventId: 'tk-0', type: 'policy.deleted', policyName: 'verify-taken', policyPath: '/stream-managed/', pathGiven: true }), 'deleted');
  await x.iam.send(new CreatePolicyCommand({ PolicyName: 'verify-taken', Path: '/stream-managed/theirs/', PolicyDocument: JSON.stringify(doc('theirs')) }));
  await ledger.requestVerification('verify-taken');
  const h = harness({ ledger, applier, owner: 'worker-2' });
  const [settled] = await h.pipeline.processBatch(records);
  t.is(settled!.outcome, 'duplicate');
  t.is(h.metrics.get('verifications', { converged: 'refused' }), 1);
  t.deepEqual(await readManagedPolicy(x.truth, LOCAL_ACCOUNT_ID, '/stream-managed/theirs/', 'verify-taken'), { document: doc('theirs'), versions: 1 }, 'never touched');
});

test.serial('ips drift --repair converges as a worker re-verifies: a read that lags a change out of band does not make it unchanged', async (t) => {
  const x = await rig(t);
  const ledger = new MemoryLedger();
  const applier = reconcilerApplier(x.r);
  await harness({ ledger, applier, owner: 'worker' }).pipeline.processBatch(streamRecords([upsertAt('repair-lagged', 'rl-1', '/stream-managed/', 'wanted')]));
  await x.layer.settled();
  // Changed out of band; IAM's reads show the ledger's document for a while yet.
  x.layer.setLag(3_000, 3_000);
  await x.iam.send(new CreatePolicyVersionCommand({ PolicyArn: arn('repair-lagged'), PolicyDocument: JSON.stringify(doc('drifted')), SetAsDefault: true }));
  t.deepEqual((await readManagedPolicy(x.truth, LOCAL_ACCOUNT_ID, '/stream-managed/', 'repair-lagged'))?.document, doc('drifted'));
  const config = { ...loadConfig({}), lateWriteMs: 0 };
  const result = await repairPolicy({ policy: 'repair-lagged', kinds: ['document'], details: [] }, 'operator/1/ips-drift/x', { ledger, applier, config });
  t.is(result.result, 'repaired', JSON.stringify(result));
  t.deepEqual((await readManagedPolicy(x.truth, LOCAL_ACCOUNT_ID, '/stream-managed/', 'repair-lagged'))?.document, doc('wanted'), "the ledger's document is the default again");
  const entry = ledger.entries.get('repair-lagged')!;
  t.is(entry.verifiedUpTo, entry.verifyRequested);
});
