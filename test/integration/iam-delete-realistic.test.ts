// Deleting a policy against IAM as it really behaves: version lists that lag,
// DeletePolicy refused while versions remain (not only while attached), a
// just-created policy not yet visible, answers lost after the effect and
// retried by the SDK. A delete ends `deleted`, `retained-in-use` only when
// attached, and `absent` only when the policy is really gone.
import test from 'ava';
import { AttachRolePolicyCommand, CreateRoleCommand } from '@aws-sdk/client-iam';
import { actual, arn, doc, remove, rig, trust, upsert, useMoto } from '../support/iam-rig.js';
import { silentLogger } from '../support/pipeline.js';
import { retryUntilSettled } from '../../src/faults/retry.js';

useMoto(test);

test.serial('a DeletePolicyVersion retried after its answer was lost (NoSuchEntity) ends deleted, not absent', async (t) => {
  const x = await rig(t, { sdkAttempts: 3 });
  t.is(await x.r.upsert(upsert('del-lost-version', doc('1'))), 'created');
  t.is(await x.r.upsert(upsert('del-lost-version', doc('2'))), 'updated');
  t.is(await x.r.upsert(upsert('del-lost-version', doc('3'))), 'updated');
  x.proxy.inject('reset-after', 'DeletePolicyVersion');
  t.is(await x.settle.delete(remove('del-lost-version')), 'deleted');
  t.is(x.proxy.injected['reset-after'], 1);
  t.is(await actual(x, 'del-lost-version'), undefined, 'the policy is gone');
});

test.serial('DeleteConflict from versions a stale list did not show is not in use: the versions go, then the policy', async (t) => {
  const x = await rig(t);
  t.is(await x.r.upsert(upsert('del-stale-versions', doc('1'))), 'created');
  x.layer.setLag(800, 800);
  t.is(await x.r.upsert(upsert('del-stale-versions', doc('2'))), 'updated');
  // The version list still shows v1 as the only (default) version: no version is deleted first.
  t.is(await x.settle.delete(remove('del-stale-versions'), { ledgerSaysPresent: true }), 'deleted');
  t.true(x.layer.stats.deleteConflicts >= 1, 'IAM refused the first DeletePolicy');
  t.is(await actual(x, 'del-stale-versions'), undefined);
});

test.serial('an attached policy is retained in use, even when the attachment shows only after the conflict', async (t) => {
  const x = await rig(t);
  t.is(await x.r.upsert(upsert('del-attached-late', doc('1'))), 'created');
  x.layer.setLag(600, 600);
  await x.iam.send(new CreateRoleCommand({ RoleName: 'del-attached-role', AssumeRolePolicyDocument: trust }));
  await x.iam.send(new AttachRolePolicyCommand({ RoleName: 'del-attached-role', PolicyArn: arn('del-attached-late') }));
  t.is(await x.settle.delete(remove('del-attached-late'), { ledgerSaysPresent: true }), 'retained-in-use');
  t.truthy(await actual(x, 'del-attached-late'));
});

test.serial('a delete right after the create, the ledger saying present, waits for IAM to show the policy: deleted, not absent', async (t) => {
  const x = await rig(t, { lagMs: [800, 800] });
  t.is(await x.r.upsert(upsert('del-just-created', doc('1'))), 'created');
  t.is(await x.settle.delete(remove('del-just-created'), { ledgerSaysPresent: true }), 'deleted');
  t.is(await actual(x, 'del-just-created'), undefined);
  t.true((x.metrics.get('transient_retries', { reason: 'iam-not-yet-visible' }) ?? 0) > 0, 'read lag was retried as transient');
});

test.serial('NoSuchEntity is read lag only for a bounded time: a policy deleted out of band is absent in the end', async (t) => {
  const x = await rig(t);
  const r = x.reconciler({ attempts: 2, visibilityWindowMs: 300 });
  const retry = { baseMs: 20, capMs: 100, logger: silentLogger, metrics: x.metrics, what: {} };
  const started = Date.now();
  t.is(await retryUntilSettled(() => r.delete(remove('del-gone-out-of-band'), { ledgerSaysPresent: true }), retry), 'absent'); // a refusal would fail the test
  t.true(Date.now() - started >= 300, 'it waited for the window first');
});
