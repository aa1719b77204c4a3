// The realistic-IAM layer of the test stack (test/support/realistic-iam.ts):
// what it must show that moto alone does not, since the tests of the IAM step
// rely on it. Reads lag writes; DeletePolicy is refused while the policy is
// attached or keeps non-default versions; documents come URL-encoded; a role
// scoped by policy path is refused, with AccessDenied, what lies outside it.
import test from 'ava';
import {
  AttachRolePolicyCommand,
  CreatePolicyCommand,
  ListPoliciesCommand,
  CreatePolicyVersionCommand,
  CreateRoleCommand,
  DeletePolicyCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  ListEntitiesForPolicyCommand,
  ListPolicyVersionsCommand,
} from '@aws-sdk/client-iam';
import { arn, doc, PREFIX, rig, trust, useMoto } from '../support/iam-rig.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';

useMoto(test);

test.serial('a new policy, version and attachment are invisible for the lag, then visible', async (t) => {
  const { iam, layer } = await rig(t, { lagMs: [400, 400] });
  await iam.send(new CreatePolicyCommand({ PolicyName: 'ri-lag', Path: PREFIX, PolicyDocument: JSON.stringify(doc('a')) }));
  await t.throwsAsync(iam.send(new GetPolicyCommand({ PolicyArn: arn('ri-lag') })), { name: 'NoSuchEntityException' });
  await layer.settled();
  t.is((await iam.send(new GetPolicyCommand({ PolicyArn: arn('ri-lag') }))).Policy?.DefaultVersionId, 'v1');

  await iam.send(new CreatePolicyVersionCommand({ PolicyArn: arn('ri-lag'), PolicyDocument: JSON.stringify(doc('b')), SetAsDefault: true }));
  t.is((await iam.send(new GetPolicyCommand({ PolicyArn: arn('ri-lag') }))).Policy?.DefaultVersionId, 'v1', 'the old default until the lag passes');
  t.is((await iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn('ri-lag') }))).Versions?.length, 1);
  await t.throwsAsync(iam.send(new GetPolicyVersionCommand({ PolicyArn: arn('ri-lag'), VersionId: 'v2' })), { name: 'NoSuchEntityException' });

  await iam.send(new CreateRoleCommand({ RoleName: 'ri-lag-role', AssumeRolePolicyDocument: trust }));
  await iam.send(new AttachRolePolicyCommand({ RoleName: 'ri-lag-role', PolicyArn: arn('ri-lag') }));
  t.is((await iam.send(new ListEntitiesForPolicyCommand({ PolicyArn: arn('ri-lag') }))).PolicyRoles?.length ?? 0, 0, 'the attachment is not listed yet');
  await layer.settled();
  t.is((await iam.send(new GetPolicyCommand({ PolicyArn: arn('ri-lag') }))).Policy?.DefaultVersionId, 'v2');
  t.is((await iam.send(new ListEntitiesForPolicyCommand({ PolicyArn: arn('ri-lag') }))).PolicyRoles?.length, 1);
  const version = await iam.send(new GetPolicyVersionCommand({ PolicyArn: arn('ri-lag'), VersionId: 'v2' }));
  t.true(version.PolicyVersion?.Document?.startsWith('%7B'), 'documents come URL-encoded, as from IAM');
  t.true(layer.stats.laggedReads >= 5);
});

test.serial('DeletePolicy is refused with DeleteConflict while attached or while non-default versions remain', async (t) => {
  const { iam, truth, layer } = await rig(t);
  await iam.send(new CreatePolicyCommand({ PolicyName: 'ri-conflict', Path: PREFIX, PolicyDocument: JSON.stringify(doc('a')) }));
  await iam.send(new CreatePolicyVersionCommand({ PolicyArn: arn('ri-conflict'), PolicyDocument: JSON.stringify(doc('b')), SetAsDefault: true }));
  const versions = await t.throwsAsync(iam.send(new DeletePolicyCommand({ PolicyArn: arn('ri-conflict') })));
  t.is(versions?.name, 'DeleteConflictException');
  t.is((versions as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode, 409);

  await iam.send(new CreateRoleCommand({ RoleName: 'ri-conflict-role', AssumeRolePolicyDocument: trust }));
  await iam.send(new CreatePolicyCommand({ PolicyName: 'ri-conflict-2', Path: PREFIX, PolicyDocument: JSON.stringify(doc('c')) }));
  await iam.send(new AttachRolePolicyCommand({ RoleName: 'ri-conflict-role', PolicyArn: arn('ri-conflict-2') }));
  await t.throwsAsync(iam.send(new DeletePolicyCommand({ PolicyArn: arn('ri-conflict-2') })), { name: 'DeleteConflictException' });
  t.is(layer.stats.deleteConflicts, 2);
  t.truthy((await truth.send(new GetPolicyCommand({ PolicyArn: arn('ri-conflict') }))).Policy, 'both still exist');
  t.truthy((await truth.send(new GetPolicyCommand({ PolicyArn: arn('ri-conflict-2') }))).Policy);
});

test.serial('CreatePolicy is refused with EntityAlreadyExists when the name is taken under another path', async (t) => {
  const { iam, layer } = await rig(t);
  await iam.send(new CreatePolicyCommand({ PolicyName: 'ri-name', Path: '/elsewhere/', PolicyDocument: JSON.stringify(doc('a')) }));
  await t.throwsAsync(iam.send(new CreatePolicyCommand({ PolicyName: 'ri-name', Path: PREFIX, PolicyDocument: JSON.stringify(doc('a')) })), { name: 'EntityAlreadyExistsException' });
  await t.throwsAsync(iam.send(new CreatePolicyCommand({ PolicyName: 'ri-name', Path: '/elsewhere/', PolicyDocument: JSON.stringify(doc('a')) })), { name: 'EntityAlreadyExistsException' });
  t.is(layer.stats.nameConflicts, 1, "the same path is moto's own refusal");
});

test.serial('a role scoped to a policy path gets AccessDenied (403) for a policy outside it, as from IAM, and reads and writes inside it', async (t) => {
  const { iam, truth, layer } = await rig(t);
  await truth.send(new CreatePolicyCommand({ PolicyName: 'ri-scope-out', Path: '/elsewhere/', PolicyDocument: JSON.stringify(doc('a')) }));
  layer.setPolicyAccess({ allow: [PREFIX], deny: [`${PREFIX}locked/`] });
  const outside = `arn:aws:iam::${LOCAL_ACCOUNT_ID}:policy/elsewhere/ri-scope-out`;
  const refused = await t.throwsAsync(iam.send(new GetPolicyCommand({ PolicyArn: outside })));
  t.is(refused?.name, 'AccessDenied');
  t.is((refused as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode, 403);
  t.regex(refused?.message ?? '', /not authorized to perform: iam:GetPolicy on resource: arn:aws:iam::\d+:policy\/elsewhere\/ri-scope-out/);
  await t.throwsAsync(iam.send(new CreatePolicyCommand({ PolicyName: 'ri-scope-new', Path: '/elsewhere/', PolicyDocument: JSON.stringify(doc('a')) })), { name: 'AccessDenied' });
  await t.throwsAsync(iam.send(new CreatePolicyCommand({ PolicyName: 'ri-scope-locked', Path: `${PREFIX}locked/`, PolicyDocument: JSON.stringify(doc('a')) })), { name: 'AccessDenied' });
  t.is(layer.stats.accessDenied, 3);

  await iam.send(new CreatePolicyCommand({ PolicyName: 'ri-scope-in', Path: PREFIX, PolicyDocument: JSON.stringify(doc('a')) }));
  t.truthy((await iam.send(new GetPolicyCommand({ PolicyArn: arn('ri-scope-in') }))).Policy);
  const names = ((await iam.send(new ListPoliciesCommand({ Scope: 'Local' }))).Policies ?? []).map((p) => p.PolicyName);
  t.true(names.includes('ri-scope-out'), 'ListPolicies is granted on "*": it lists what the role may not read');
  t.is((await truth.send(new GetPolicyCommand({ PolicyArn: outside }))).Policy?.Path, '/elsewhere/', 'untouched');

  layer.setPolicyAccess({ allow: [PREFIX], list: false });
  await t.throwsAsync(iam.send(new ListPoliciesCommand({ Scope: 'Local' })), { name: 'AccessDenied' });
  layer.setPolicyAccess(undefined);
  t.truthy((await iam.send(new GetPolicyCommand({ PolicyArn: outside }))).Policy);
});
