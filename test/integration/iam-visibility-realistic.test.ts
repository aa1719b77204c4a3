// Upserting a policy IAM does not show yet (eventual consistency): the step
// waits for it as a transient fault, and `not-owned` stays for policies that
// are seen and foreign.
import test from 'ava';
import { CreatePolicyCommand, DeletePolicyCommand } from '@aws-sdk/client-iam';
import { actual, arn, doc, PREFIX, remove, rig, upsert, useMoto } from '../support/iam-rig.js';
import { readManagedPolicy } from '../support/iam-state.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { documentHash } from '../../src/iam/document.js';
import { RejectedEventError } from '../../src/faults/errors.js';
import { OWNER_TAG } from '../../src/contract/ownership.js';
import { loadConfig } from '../../src/config/config.js';

useMoto(test);

test.serial('an update right after the create, the policy not visible yet, is never not-owned', async (t) => {
  const x = await rig(t, { lagMs: [800, 800] });
  t.is(await x.r.upsert(upsert('vis-update', doc('1')), { likelyAbsent: true }), 'created');
  t.is(await x.settle.upsert(upsert('vis-update', doc('2')), { ledgerSaysPresent: true }), 'updated');
  const state = await actual(x, 'vis-update');
  t.deepEqual(state, { document: doc('2'), versions: 2 });
});

test.serial('a create whose answer was lost meets EntityAlreadyExists for our own invisible policy: never not-owned', async (t) => {
  const x = await rig(t, { lagMs: [2_000, 2_000], sdkAttempts: 3 });
  x.proxy.inject('reset-after', 'CreatePolicy');
  const outcome = await x.settle.upsert(upsert('vis-lost-create', doc('1')), { likelyAbsent: true });
  t.true(outcome === 'created' || outcome === 'unchanged', outcome);
  t.is(x.proxy.injected['reset-after'], 1);
  const state = await actual(x, 'vis-lost-create');
  t.deepEqual(state, { document: doc('1'), versions: 1 });
});

test.serial('a policy that stays foreign is still refused as not-owned', async (t) => {
  const x = await rig(t);
  await x.iam.send(new CreatePolicyCommand({ PolicyName: 'vis-foreign', Path: PREFIX, PolicyDocument: JSON.stringify(doc('theirs')) }));
  const error = await t.throwsAsync(x.r.upsert(upsert('vis-foreign', doc('ours')), { likelyAbsent: true }), { instanceOf: RejectedEventError });
  t.is(error?.reason, 'not-owned');
});

test.serial('a name taken under another path is refused as not-owned once the policy there is seen', async (t) => {
  const x = await rig(t);
  await x.iam.send(new CreatePolicyCommand({ PolicyName: 'vis-elsewhere', Path: '/elsewhere/', PolicyDocument: JSON.stringify(doc('theirs')) }));
  const error = await t.throwsAsync(x.r.upsert(upsert('vis-elsewhere', doc('ours')), { likelyAbsent: true }), { instanceOf: RejectedEventError });
  t.is(error?.reason, 'not-owned');
  t.regex(error?.detail ?? '', /policy\/elsewhere\/vis-elsewhere/);
  t.is(await actual(x, 'vis-elsewhere'), undefined, 'nothing created at the managed path');
});

test.serial('an upsert for a policy deleted out of band is created again once the visibility window has passed', async (t) => {
  const x = await rig(t);
  const r = x.reconciler({ attempts: 2, visibilityWindowMs: 300 });
  const error = await t.throwsAsync(r.upsert(upsert('vis-recreate', doc('1')), { ledgerSaysPresent: true }));
  t.is((error as { reason?: string } | undefined)?.reason, 'iam-not-yet-visible', 'first, read lag');
  await new Promise((resolve) => setTimeout(resolve, 350));
  t.is(await r.upsert(upsert('vis-recreate', doc('1')), { ledgerSaysPresent: true }), 'created');
  t.deepEqual(await actual(x, 'vis-recreate'), { document: doc('1'), versions: 1 });
});

test.serial('an update of a policy deleted out of band that IAM still shows is not rejected: it is created again', async (t) => {
  const x = await rig(t);
  t.is(await x.r.upsert(upsert('vis-deleted-meanwhile', doc('1'))), 'created');
  x.layer.setLag(500, 500);
  await x.iam.send(new DeletePolicyCommand({ PolicyArn: arn('vis-deleted-meanwhile') }));
  t.is(await x.settle.upsert(upsert('vis-deleted-meanwhile', doc('2'))), 'created');
  t.deepEqual(await actual(x, 'vis-deleted-meanwhile'), { document: doc('2'), versions: 1 });
});

test.serial('a read that lags our own last write never turns a real update into unchanged (the ledger knows what it last applied)', async (t) => {
  const x = await rig(t);
  t.is(await x.r.upsert(upsert('vis-stale-read', doc('A'))), 'created');
  x.layer.setLag(1_500, 1_500);
  t.is(await x.r.upsert(upsert('vis-stale-read', doc('B'))), 'updated'); // IAM holds B; reads show A for a while
  // The next event wants A again. A read shows A (stale); the ledger says it last applied B.
  const outcome = await x.r.upsert(upsert('vis-stale-read', doc('A')), { ledgerSaysPresent: true, ledgerDocHash: documentHash(doc('B')) });
  t.is(outcome, 'updated');
  await x.layer.settled();
  t.deepEqual((await actual(x, 'vis-stale-read'))?.document, doc('A'), 'IAM holds what the stream asked for last');
});

test.serial('a delete that names no path, for a policy whose path the ledger does not know, finds it by name under the managed prefix', async (t) => {
  const x = await rig(t);
  const deeper = { ...upsert('vis-deeper', doc('1')), policyPath: `${PREFIX}team-a/` };
  t.is(await x.r.upsert(deeper), 'created');
  const pathless = { ...remove('vis-deeper'), pathGiven: false };
  t.is(await x.r.delete(pathless, { pathUnknown: true }), 'deleted');
  t.is(await readManagedPolicy(x.truth, LOCAL_ACCOUNT_ID, `${PREFIX}team-a/`, 'vis-deeper'), undefined);
});

test.serial('a delete that names another path, for a policy whose path the ledger does not know, finds it by name as a delete at a known path would', async (t) => {
  // A previous owner's write created the policy at the prefix without its
  // completion; the delete names the path the policy had before. With the
  // path known the delete goes where the policy lives (the name identifies
  // it); unknown, it must find it there too, not answer `absent`.
  const x = await rig(t);
  t.is(await x.r.upsert(upsert('vis-moved', doc('1'))), 'created');
  const elsewhere = { ...remove('vis-moved'), policyPath: `${PREFIX}team-a/` };
  t.is(await x.r.delete(elsewhere, { pathUnknown: true }), 'deleted');
  t.is(await readManagedPolicy(x.truth, LOCAL_ACCOUNT_ID, PREFIX, 'vis-moved'), undefined);
});

test.serial('an upsert naming no path finds our policy under another path, updates it there and says where it lives', async (t) => {
  // The ledger cannot say where the policy lives (a new epoch after `replay --reapply`): the event goes
  // to the prefix, IAM answers EntityAlreadyExists, and the name is ours under a deeper path. The step
  // says that path: the ledger records it, and the policy's next event naming that path is placed there
  // (recorded at the prefix, it was a path-conflict: simulation seed 25840).
  const x = await rig(t);
  const deeper = `${PREFIX}team-x/`;
  await x.iam.send(new CreatePolicyCommand({ PolicyName: 'vis-deeper', Path: deeper, PolicyDocument: JSON.stringify(doc('1')), Tags: [{ Key: OWNER_TAG, Value: loadConfig({}).appName }] }));
  const step = await x.r.upsertStep({ ...upsert('vis-deeper', doc('2')), pathGiven: false }, { pathUnknown: true });
  t.deepEqual({ outcome: step.outcome, path: step.path }, { outcome: 'updated', path: deeper });
  const same = await x.r.upsertStep({ ...upsert('vis-deeper', doc('2')), pathGiven: false }, { pathUnknown: true });
  t.deepEqual({ outcome: same.outcome, path: same.path }, { outcome: 'unchanged', path: deeper });
  const atPrefix = await x.r.upsertStep(upsert('vis-deeper-2', doc('1')), { likelyAbsent: true });
  t.is(atPrefix.path, undefined, 'a policy where the event wants it: nothing to say');
});
