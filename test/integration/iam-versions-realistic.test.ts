// Updating a policy at IAM's limit of 5 versions against IAM as it really
// behaves: a lost answer retried by the SDK, version lists that lag. A valid
// upsert ends `updated`, never `rejected` because of what IAM let us see late.
import test from 'ava';
import { SetDefaultPolicyVersionCommand } from '@aws-sdk/client-iam';
import { actual, arn, doc, rig, upsert, useMoto } from '../support/iam-rig.js';

useMoto(test);

test.serial('LimitExceeded from the SDK retry of a CreatePolicyVersion that succeeded ends updated, not rejected', async (t) => {
  const x = await rig(t, { sdkAttempts: 3 });
  t.is(await x.r.upsert(upsert('ver-lost-create', doc('1'))), 'created');
  for (const v of ['2', '3', '4']) t.is(await x.r.upsert(upsert('ver-lost-create', doc(v))), 'updated');
  x.proxy.inject('reset-after', 'CreatePolicyVersion');
  t.is(await x.r.upsert(upsert('ver-lost-create', doc('5'))), 'updated');
  t.is(x.proxy.injected['reset-after'], 1);
  const state = await actual(x, 'ver-lost-create');
  t.deepEqual(state?.document, doc('5'));
  t.is(state?.versions, 5);
});

test.serial('LimitExceeded because a stale list showed 4 versions: the oldest is pruned and the version made', async (t) => {
  const x = await rig(t);
  t.is(await x.r.upsert(upsert('ver-stale-count', doc('1'))), 'created');
  for (const v of ['2', '3', '4']) t.is(await x.r.upsert(upsert('ver-stale-count', doc(v))), 'updated');
  x.layer.setLag(800, 800);
  t.is(await x.r.upsert(upsert('ver-stale-count', doc('5'))), 'updated'); // 5 versions now; readers still see 4
  t.is(await x.settle.upsert(upsert('ver-stale-count', doc('6'))), 'updated');
  const state = await actual(x, 'ver-stale-count');
  t.deepEqual(state?.document, doc('6'));
  t.is(state?.versions, 5);
});

test.serial('pruning from a stale list meets NoSuchEntity (version already gone): re-read, not rejected', async (t) => {
  const x = await rig(t);
  t.is(await x.r.upsert(upsert('ver-stale-gone', doc('1'))), 'created');
  for (const v of ['2', '3', '4', '5']) t.is(await x.r.upsert(upsert('ver-stale-gone', doc(v))), 'updated');
  x.layer.setLag(800, 800);
  t.is(await x.r.upsert(upsert('ver-stale-gone', doc('6'))), 'updated'); // v1 pruned, v6 made; readers still see v1..v5
  t.is(await x.settle.upsert(upsert('ver-stale-gone', doc('7'))), 'updated');
  const state = await actual(x, 'ver-stale-gone');
  t.deepEqual(state?.document, doc('7'));
  t.is(state?.versions, 5);
});

test.serial('pruning from a stale list meets DeleteConflict (the version is the default now): re-read, not rejected', async (t) => {
  const x = await rig(t);
  t.is(await x.r.upsert(upsert('ver-stale-default', doc('1'))), 'created');
  for (const v of ['2', '3', '4', '5']) t.is(await x.r.upsert(upsert('ver-stale-default', doc(v))), 'updated');
  x.layer.setLag(800, 800);
  // Someone makes v1 the default again; readers do not see it yet.
  await x.iam.send(new SetDefaultPolicyVersionCommand({ PolicyArn: arn('ver-stale-default'), VersionId: 'v1' }));
  t.is(await x.settle.upsert(upsert('ver-stale-default', doc('6'))), 'updated');
  const state = await actual(x, 'ver-stale-default');
  t.deepEqual(state?.document, doc('6'));
  t.is(state?.versions, 5);
});
