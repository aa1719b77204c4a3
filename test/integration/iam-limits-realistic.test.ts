// IAM's limits against IAM as it really answers (the realistic layer counts
// size, versions and the account's quota, with IAM's codes and messages):
// only the 5-version limit is made room for. A document too large or an
// account at its quota ends the event as `rejected` with its own reason,
// deletes no version, and never keeps the policy's unit retrying.
import test from 'ava';
import { ListPoliciesCommand } from '@aws-sdk/client-iam';
import { classifyIamError, iamLimitOf } from '../../src/iam/classify-iam-error.js';
import { RejectedEventError } from '../../src/faults/errors.js';
import { CreatePolicyVersionCommand } from '@aws-sdk/client-iam';
import { actual, arn, doc, rig, upsert, useMoto } from '../support/iam-rig.js';

useMoto(test);

const oversized = () => ({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: '*', Condition: { StringEquals: { 'aws:PrincipalTag/team': '\u00a0'.repeat(7_000) } } }],
});

test.serial('an oversized update at 5 versions is rejected document-too-large and deletes no version', async (t) => {
  const x = await rig(t);
  t.is(await x.r.upsert(upsert('lim-size', doc('1'))), 'created');
  for (const v of ['2', '3', '4', '5']) t.is(await x.r.upsert(upsert('lim-size', doc(v))), 'updated');
  const before = await actual(x, 'lim-size');
  t.is(await x.settle.upsert(upsert('lim-size', oversized())), 'rejected:document-too-large');
  const after = await actual(x, 'lim-size');
  t.is(after?.versions, 5, 'no version deleted');
  t.deepEqual(after?.document, doc('5'));
  t.deepEqual(after, before);
});

test.serial("the realistic layer refuses a document over 6,144 characters with IAM's code and message, and the processor reads it as the size, not the versions", async (t) => {
  const x = await rig(t);
  t.is(await x.r.upsert(upsert('lim-size-iam', doc('1'))), 'created');
  const error = await t.throwsAsync(x.iam.send(new CreatePolicyVersionCommand({ PolicyArn: arn('lim-size-iam'), PolicyDocument: JSON.stringify(oversized()), SetAsDefault: true })));
  t.regex(error?.message ?? '', /Cannot exceed quota for PolicySize: 6144/);
  t.is(iamLimitOf(error), 'size');
  const classified = classifyIamError(error, 'upsert');
  t.true(classified instanceof RejectedEventError && classified.reason === 'document-too-large');
  t.is(x.layer.stats.limitsExceeded, 1, 'one call: the SDK does not retry a refusal as if it were throttling');
  t.is((error as { $metadata?: { attempts?: number } }).$metadata?.attempts, 1);
});

test.serial("a create past the account's policy quota is rejected account-quota-exceeded, not retried", async (t) => {
  const x0 = await rig(t);
  const existing = (await x0.truth.send(new ListPoliciesCommand({ Scope: 'Local', MaxItems: 1000 }))).Policies?.length ?? 0;
  const x = await rig(t, { maxPoliciesPerAccount: existing + 1 });
  t.is(await x.settle.upsert(upsert('lim-quota-1', doc('1'))), 'created');
  t.is(await x.settle.upsert(upsert('lim-quota-2', doc('1'))), 'rejected:account-quota-exceeded');
  t.is(await actual(x, 'lim-quota-2'), undefined);
});
