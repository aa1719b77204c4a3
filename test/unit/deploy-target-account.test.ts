// The target-account stack (infra/aws/target-stack.ts) and the main stack's
// side of it: each target account holds a role the worker assumes, trusted by
// the worker role alone (and the ExternalId when one is set), with the
// worker's own IAM grant, and a read-only role for the drift audit, which a
// shadow shares when the stack is given its role (ShadowRoleArn); the main
// stack lets the worker and the audit assume exactly those roles in the
// accounts of TargetAccounts, and tells them the accounts, the role names and
// the ExternalId. Read from the synthesized templates, resolved as
// CloudFormation would with the parameters each test sets.
import { IAM_STEP_FILES } from '../support/iam-step-files.js';
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../../infra/aws/app.js';
import { DRIFT_CONTAINER_NAME, DRIFT_IAM_LIST_ACTIONS, DRIFT_IAM_READ_ACTIONS } from '../../infra/aws/drift-audit.js';
import { STAND_IN, TemplateResolver, allowsAssumeRole, checkLeastPrivilege, workerRoleUnderTest } from '../../infra/aws/least-privilege.js';
import type { Json, JsonObject, Statement } from '../../infra/aws/least-privilege.js';
import { STACK_NAME } from '../../infra/aws/stack.js';
import { DEFAULT_TARGET_AUDIT_ROLE_NAME, DEFAULT_TARGET_ROLE_NAME, TARGET_STACK_NAME } from '../../infra/aws/target-account.js';
import { IAM_LIST_ACTIONS, IAM_READ_ACTIONS, IAM_WRITE_ACTIONS } from '../../infra/aws/worker-role.js';
import { CONTAINER_NAME } from '../../infra/aws/workers.js';

const root = resolve(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const outdir = mkdtempSync(join(tmpdir(), 'ips-target-'));
test.after.always(() => rmSync(outdir, { recursive: true, force: true }));

const built = buildApp({ outdir, nag: false });
const main = Template.fromStack(built.stack).toJSON() as JsonObject;
const target = Template.fromStack(built.targetStack).toJSON() as JsonObject;
const targetResources = target.Resources as Record<string, JsonObject>;
const targetParameters = target.Parameters as Record<string, JsonObject>;
const mainParameters = main.Parameters as Record<string, JsonObject>;

const list = (value: Json | undefined): string[] => (value === undefined || value === null ? [] : ([] as string[]).concat(value as string | string[]));
const actionsOf = (statement: Statement) => list(statement.Action as Json);

const WORKER_ROLE_ARN = 'arn:aws:iam::123456789012:role/iam-policy-stream-TaskRole-1A2B3C';
const AUDIT_ROLE_ARN = 'arn:aws:iam::123456789012:role/iam-policy-stream-DriftAuditRole-4D5E6F';
const SHADOW_ROLE_ARN = 'arn:aws:iam::123456789012:role/iam-policy-stream-ShadowTaskRole-7G8H9I';
const TARGET_ACCOUNT = '111111111111';
const TARGETS = ['111111111111', '222222222222'];
const REQUIRED = { WorkerRoleArn: WORKER_ROLE_ARN, DriftAuditRoleArn: AUDIT_ROLE_ARN };

/** The target template resolved in an account, with parameter values. */
const inTarget = (overrides: Record<string, string> = {}, accountId = TARGET_ACCOUNT) => new TemplateResolver(target, { ...REQUIRED, ...overrides }, { ...STAND_IN, accountId });
const roleOf = (resolver: TemplateResolver, id: string) => (resolver.resolve(resolver.resource(id)) as JsonObject).Properties as JsonObject;
const inlineStatements = (role: JsonObject) => ((role.Policies ?? []) as JsonObject[]).flatMap((policy) => (policy.PolicyDocument as JsonObject).Statement as unknown as Statement[]);
const trustOf = (role: JsonObject) => (role.AssumeRolePolicyDocument as JsonObject).Statement as unknown as Statement[];
const roleArn = (account: string, name: string) => `arn:aws:iam::${account}:role/${name}`;

/** The statements of a role of the main stack, inline and attached, for these parameter values. */
function mainRoleStatements(roleId: string, overrides: Record<string, string | string[]> = {}): Statement[] {
  const resolver = new TemplateResolver(main, { ImageUri: 'image', VpcId: 'vpc-1', SubnetIds: ['subnet-1'], ...overrides });
  const attached = resolver
    .resourcesOfType('AWS::IAM::Policy')
    .map((id) => (resolver.resolve(resolver.resource(id)) as JsonObject).Properties as JsonObject)
    .filter((policy) => list(policy.Roles as Json).includes(roleId))
    .flatMap((policy) => (policy.PolicyDocument as JsonObject).Statement as unknown as Statement[]);
  return [...inlineStatements(roleOf(resolver, roleId)), ...attached];
}

// --- the target-account stack -------------------------------------------------

test('the target-account stack is two roles and nothing else, with no bootstrap, asset or lookup (a StackSet template as it is)', (t) => {
  t.deepEqual(Object.fromEntries(Object.entries(targetResources).map(([id, resource]) => [id, resource.Type])), {
    TargetRole: 'AWS::IAM::Role',
    TargetAuditRole: 'AWS::IAM::Role',
    TargetAuditShadowPolicy: 'AWS::IAM::Policy',
  });
  // The shadow's reads of the audit role exist only once a shadow role is named.
  t.deepEqual(
    Object.keys(targetResources).filter((id) => inTarget().exists(id)),
    ['TargetRole', 'TargetAuditRole'],
  );
  t.true(inTarget({ ShadowRoleArn: SHADOW_ROLE_ARN }).exists('TargetAuditShadowPolicy'));
  t.deepEqual(Object.keys(targetParameters).sort(), [
    'ApplicationName',
    'DriftAuditRoleArn',
    'ManagedPathPrefix',
    'ShadowRoleArn',
    'TargetAuditRoleName',
    'TargetExternalId',
    'TargetRoleName',
    'WorkerRoleArn',
  ]);
  t.deepEqual(Object.keys(target.Conditions as JsonObject).sort(), ['HasShadowRole', 'HasTargetExternalId']);
  t.deepEqual(Object.keys(target.Outputs as JsonObject).sort(), ['TargetAuditRoleArn', 'TargetRoleArn']);
  const assembly = built.app.synth();
  t.deepEqual(assembly.stacks.map((stack) => stack.stackName).sort(), [STACK_NAME, TARGET_STACK_NAME].sort(), 'the CDK app synthesizes both');
  const artifact = assembly.getStackByName(TARGET_STACK_NAME);
  t.is(artifact.environment.account, 'unknown-account', 'environment-agnostic: the account is the one it is deployed to');
  t.is(artifact.assets.length, 0);
  t.false('BootstrapVersion' in targetParameters);
  t.is(assembly.manifest.missing, undefined, 'no context lookups');
});

test('the shared parameters read the same in both stacks: names, defaults and allowed values', (t) => {
  for (const name of ['ApplicationName', 'ManagedPathPrefix', 'TargetRoleName', 'TargetAuditRoleName', 'TargetExternalId']) {
    const { Description: _a, ...inTargetStack } = targetParameters[name]!;
    const { Description: _b, ...inMainStack } = mainParameters[name]!;
    t.deepEqual(inTargetStack, inMainStack, name);
  }
  t.is(targetParameters.TargetRoleName!.Default, DEFAULT_TARGET_ROLE_NAME);
  t.is(DEFAULT_TARGET_ROLE_NAME, 'iam-policy-stream-target');
  t.is(targetParameters.TargetAuditRoleName!.Default, DEFAULT_TARGET_AUDIT_ROLE_NAME);
  t.is(targetParameters.TargetExternalId!.Default, '');
  for (const name of ['WorkerRoleArn', 'DriftAuditRoleArn', 'ShadowRoleArn']) {
    if (name === 'ShadowRoleArn') t.is(targetParameters[name]!.Default, '', 'no shadow unless one is named');
    else t.is(targetParameters[name]!.Default, undefined, `${name} has no default: the trust names a role of the main stack`);
    const pattern = new RegExp(String(targetParameters[name]!.AllowedPattern));
    t.regex(WORKER_ROLE_ARN, pattern);
    t.regex('arn:aws-us-gov:iam::123456789012:role/x', pattern);
    for (const bad of ['*', 'arn:aws:iam::123456789012:root', '123456789012', 'arn:aws:iam::*:role/x', 'arn:aws:sts::123456789012:assumed-role/x/y']) t.notRegex(bad, pattern, bad);
    t.is(pattern.test(''), name === 'ShadowRoleArn', `${name}: empty`);
  }
});

test('the roles carry the names the workers build their ARNs from, under the path "/"', (t) => {
  for (const [id, parameter, name] of [
    ['TargetRole', 'TargetRoleName', 'ops-writer'],
    ['TargetAuditRole', 'TargetAuditRoleName', 'ops-reader'],
  ] as const) {
    t.deepEqual((targetResources[id]!.Properties as JsonObject).RoleName, { Ref: parameter });
    const role = roleOf(inTarget({ [parameter]: name }), id);
    t.is(role.RoleName, name);
    t.true(role.Path === undefined || role.Path === '/', 'arn:<partition>:iam::<account>:role/<name> has no path');
    t.deepEqual(role.ManagedPolicyArns ?? [], [], 'every grant is in the template');
    t.is(role.PermissionsBoundary, undefined);
  }
  // The names allowed are IAM's role names.
  const pattern = new RegExp(String(mainParameters.TargetRoleName!.AllowedPattern));
  for (const good of [DEFAULT_TARGET_ROLE_NAME, 'a', 'Role_With+Chars=.@-', 'x'.repeat(64)]) t.regex(good, pattern, good);
  for (const bad of ['', 'x'.repeat(65), 'path/name', 'a b', 'a*']) t.notRegex(bad, pattern, bad);
});

for (const [id, trusted, parameter] of [
  ['TargetRole', WORKER_ROLE_ARN, 'WorkerRoleArn'],
  ['TargetAuditRole', AUDIT_ROLE_ARN, 'DriftAuditRoleArn'],
] as const) {
  test(`${id} trusts ${parameter} alone, and asks for the ExternalId when one is set`, (t) => {
    const without = trustOf(roleOf(inTarget(), id));
    t.deepEqual(without, [{ Effect: 'Allow', Principal: { AWS: trusted }, Action: 'sts:AssumeRole' }]);
    const withId = trustOf(roleOf(inTarget({ TargetExternalId: 'ips-ext-7f3a' }), id));
    t.deepEqual(withId, [{ Effect: 'Allow', Principal: { AWS: trusted }, Action: 'sts:AssumeRole', Condition: { StringEquals: { 'sts:ExternalId': 'ips-ext-7f3a' } } }]);
  });
}

test('with ShadowRoleArn, the audit role trusts the shadow role beside the drift audit (with the ExternalId when set); the target role never trusts it', (t) => {
  const shadowSet = { ShadowRoleArn: SHADOW_ROLE_ARN };
  t.deepEqual(trustOf(roleOf(inTarget(shadowSet), 'TargetAuditRole')), [{ Effect: 'Allow', Principal: { AWS: [AUDIT_ROLE_ARN, SHADOW_ROLE_ARN] }, Action: 'sts:AssumeRole' }]);
  t.deepEqual(trustOf(roleOf(inTarget({ ...shadowSet, TargetExternalId: 'ips-ext-7f3a' }), 'TargetAuditRole')), [
    { Effect: 'Allow', Principal: { AWS: [AUDIT_ROLE_ARN, SHADOW_ROLE_ARN] }, Action: 'sts:AssumeRole', Condition: { StringEquals: { 'sts:ExternalId': 'ips-ext-7f3a' } } },
  ]);
  t.deepEqual(trustOf(roleOf(inTarget(shadowSet), 'TargetRole')), [{ Effect: 'Allow', Principal: { AWS: WORKER_ROLE_ARN }, Action: 'sts:AssumeRole' }]);
  // Without it, the trust is as it always was (the tests above): the drift audit alone.
  t.deepEqual(trustOf(roleOf(inTarget({ ShadowRoleArn: '' }), 'TargetAuditRole')), [{ Effect: 'Allow', Principal: { AWS: AUDIT_ROLE_ARN }, Action: 'sts:AssumeRole' }]);
});

test("with ShadowRoleArn, the audit role also holds the shadow role's IAM reads, statement for statement, and still no write", (t) => {
  const resolver = inTarget({ ShadowRoleArn: SHADOW_ROLE_ARN }, STAND_IN.accountId);
  const policy = (resolver.resolve(resolver.resource('TargetAuditShadowPolicy')) as JsonObject).Properties as JsonObject;
  t.deepEqual(policy.Roles, ['TargetAuditRole']);
  const shadowReads = (policy.PolicyDocument as JsonObject).Statement as unknown as Statement[];
  const inShadowRole = mainRoleStatements('ShadowTaskRole', { ShadowWorkers: '1' }).filter((statement) => actionsOf(statement).every((action) => action.startsWith('iam:')));
  t.deepEqual(shadowReads, inShadowRole);
  const actions = [...inlineStatements(roleOf(resolver, 'TargetAuditRole')), ...shadowReads].flatMap(actionsOf);
  t.deepEqual([...new Set(actions)].sort(), [...new Set([...DRIFT_IAM_READ_ACTIONS, ...DRIFT_IAM_LIST_ACTIONS, ...IAM_READ_ACTIONS, ...IAM_LIST_ACTIONS])].sort());
  t.false(actions.some((action) => IAM_WRITE_ACTIONS.includes(action)));
  // In its own account it reaches the managed path there, and nothing else.
  const scope = { managedPoliciesArnPrefix: `arn:aws:iam::${TARGET_ACCOUNT}:policy/stream-managed/`, tableArns: [], streamArn: '-', metricsLogGroupArn: '-' };
  const inAccount = inTarget({ ShadowRoleArn: SHADOW_ROLE_ARN });
  t.deepEqual(
    checkLeastPrivilege(
      (((inAccount.resolve(inAccount.resource('TargetAuditShadowPolicy')) as JsonObject).Properties as JsonObject).PolicyDocument as JsonObject).Statement as unknown as Statement[],
      scope,
    ),
    [],
  );
});

for (const variant of [{}, { ApplicationName: 'ips-prod', ManagedPathPrefix: '/platform/iam/' }] as Record<string, string>[]) {
  test(`the target role holds the worker's IAM grant, statement for statement (${JSON.stringify(variant)})`, (t) => {
    // Both in the same stand-in account, so that the managed path's ARN reads the same.
    const inWorker = workerRoleUnderTest(main, variant).statements.filter((statement) => actionsOf(statement).every((action) => action.startsWith('iam:')));
    const inTargetRole = inlineStatements(roleOf(inTarget(variant, STAND_IN.accountId), 'TargetRole'));
    t.deepEqual(inTargetRole, inWorker);
    t.deepEqual([...new Set(inTargetRole.flatMap(actionsOf))].sort(), [...IAM_READ_ACTIONS, ...IAM_LIST_ACTIONS, ...IAM_WRITE_ACTIONS].sort());
    // The reconciler's calls, as for the worker (test/unit/deploy.test.ts).
    const imported = IAM_STEP_FILES.map((file) => /import\s*\{([^}]*)\}\s*from\s*'@aws-sdk\/client-iam'/.exec(read(file))?.[1] ?? '').join(',');
    t.deepEqual([...new Set(inTargetRole.flatMap(actionsOf))].sort(), [...new Set([...imported.matchAll(/\b(\w+)Command\b/g)].map((match) => `iam:${match[1]}`))].sort());
    // In its own account it reaches the managed path there, and nothing else.
    const prefix = variant.ManagedPathPrefix ?? String(targetParameters.ManagedPathPrefix!.Default);
    const scope = { managedPoliciesArnPrefix: `arn:aws:iam::${TARGET_ACCOUNT}:policy${prefix}`, tableArns: [], streamArn: '-', metricsLogGroupArn: '-' };
    t.deepEqual(checkLeastPrivilege(inlineStatements(roleOf(inTarget(variant), 'TargetRole')), scope), []);
    // Every write needs the owner tag of this application.
    for (const statement of inTargetRole.filter((item) => actionsOf(item).some((action) => IAM_WRITE_ACTIONS.includes(action)))) {
      t.true(
        JSON.stringify(statement.Condition ?? {}).includes(`"aws:ResourceTag/managed-by":"${variant.ApplicationName ?? 'iam-policy-stream'}"`) ||
          JSON.stringify(statement.Condition ?? {}).includes(`"aws:RequestTag/managed-by":"${variant.ApplicationName ?? 'iam-policy-stream'}"`),
        statement.Sid,
      );
    }
  });
}

test("the audit role holds the drift audit's IAM reads, statement for statement, and no write", (t) => {
  const inAudit = mainRoleStatements('DriftAuditRole').filter((statement) => actionsOf(statement).every((action) => action.startsWith('iam:')));
  const inTargetAudit = inlineStatements(roleOf(inTarget({}, STAND_IN.accountId), 'TargetAuditRole'));
  t.deepEqual(inTargetAudit, inAudit);
  t.deepEqual(inTargetAudit.flatMap(actionsOf).sort(), [...DRIFT_IAM_READ_ACTIONS, ...DRIFT_IAM_LIST_ACTIONS].sort());
  t.false(inTargetAudit.flatMap(actionsOf).some((action) => IAM_WRITE_ACTIONS.includes(action)));
});

// --- the main stack's side ------------------------------------------------------

test('the worker may assume the target role in each target account and no other role; none at all without target accounts', (t) => {
  const statements = mainRoleStatements('TaskRole', { TargetAccounts: TARGETS });
  for (const account of TARGETS) t.true(allowsAssumeRole(statements, roleArn(account, DEFAULT_TARGET_ROLE_NAME)), account);
  for (const other of [
    roleArn('333333333333', DEFAULT_TARGET_ROLE_NAME),
    roleArn(STAND_IN.accountId, DEFAULT_TARGET_ROLE_NAME),
    roleArn(TARGETS[0]!, DEFAULT_TARGET_AUDIT_ROLE_NAME),
    roleArn(TARGETS[0]!, 'OrganizationAccountAccessRole'),
    roleArn(TARGETS[0]!, `${DEFAULT_TARGET_ROLE_NAME}-other`),
    `arn:aws:iam::${TARGETS[0]}:role/team/${DEFAULT_TARGET_ROLE_NAME}`,
  ]) {
    t.false(allowsAssumeRole(statements, other), other);
  }
  // The role name follows its parameter.
  const renamed = mainRoleStatements('TaskRole', { TargetAccounts: TARGETS, TargetRoleName: 'ops-writer' });
  t.true(allowsAssumeRole(renamed, roleArn(TARGETS[1]!, 'ops-writer')));
  t.false(allowsAssumeRole(renamed, roleArn(TARGETS[1]!, DEFAULT_TARGET_ROLE_NAME)));
  // No target account: no STS statement at all (the policy holding it is not created).
  const none = mainRoleStatements('TaskRole');
  t.deepEqual(
    none.flatMap(actionsOf).filter((action) => action.startsWith('sts:')),
    [],
  );
  t.false(allowsAssumeRole(none, roleArn(TARGETS[0]!, DEFAULT_TARGET_ROLE_NAME)));
  // The statement is one AssumeRole, nothing else from STS.
  const sts = statements.filter((statement) => actionsOf(statement).some((action) => action.startsWith('sts:')));
  t.deepEqual(sts.flatMap(actionsOf), ['sts:AssumeRole']);
});

test('the drift audit may assume the audit role in each target account and no other role', (t) => {
  const statements = mainRoleStatements('DriftAuditRole', { TargetAccounts: TARGETS });
  for (const account of TARGETS) t.true(allowsAssumeRole(statements, roleArn(account, DEFAULT_TARGET_AUDIT_ROLE_NAME)), account);
  for (const other of [roleArn(TARGETS[0]!, DEFAULT_TARGET_ROLE_NAME), roleArn('333333333333', DEFAULT_TARGET_AUDIT_ROLE_NAME)]) {
    t.false(allowsAssumeRole(statements, other), other);
  }
  t.deepEqual(
    mainRoleStatements('DriftAuditRole')
      .flatMap(actionsOf)
      .filter((action) => action.startsWith('sts:')),
    [],
  );
  // The worker cannot assume the audit role and the audit cannot assume the worker's.
  t.false(allowsAssumeRole(mainRoleStatements('TaskRole', { TargetAccounts: TARGETS }), roleArn(TARGETS[0]!, DEFAULT_TARGET_AUDIT_ROLE_NAME)));
});

test('with target accounts, the worker role stays within its managed path, tables, stream and target roles', (t) => {
  const { statements, scope } = workerRoleUnderTest(main, { TargetAccounts: TARGETS });
  t.deepEqual(scope.targetRoles, { roleName: DEFAULT_TARGET_ROLE_NAME, accounts: TARGETS });
  t.deepEqual(checkLeastPrivilege(statements, scope), []);
});

test('the least-privilege check reports an AssumeRole beyond the target roles (so it can fail)', (t) => {
  const { scope } = workerRoleUnderTest(main, { TargetAccounts: TARGETS });
  const inTargets = { StringEquals: { 'aws:ResourceAccount': TARGETS } };
  const bad: Statement[] = [
    { Sid: 'AnyRole', Effect: 'Allow', Action: 'sts:AssumeRole', Resource: '*' },
    { Sid: 'AnyRoleInTargets', Effect: 'Allow', Action: 'sts:AssumeRole', Resource: 'arn:aws:iam::*:role/*', Condition: inTargets },
    { Sid: 'AnyAccount', Effect: 'Allow', Action: 'sts:AssumeRole', Resource: `arn:aws:iam::*:role/${DEFAULT_TARGET_ROLE_NAME}` },
    { Sid: 'OtherAccount', Effect: 'Allow', Action: 'sts:AssumeRole', Resource: roleArn('333333333333', DEFAULT_TARGET_ROLE_NAME) },
    {
      Sid: 'OtherAccountByCondition',
      Effect: 'Allow',
      Action: 'sts:AssumeRole',
      Resource: `arn:aws:iam::*:role/${DEFAULT_TARGET_ROLE_NAME}`,
      Condition: { StringEquals: { 'aws:ResourceAccount': [...TARGETS, '333333333333'] } },
    },
    { Sid: 'OtherName', Effect: 'Allow', Action: 'sts:AssumeRole', Resource: roleArn(TARGETS[0]!, 'Admin') },
    { Sid: 'Federation', Effect: 'Allow', Action: 'sts:GetFederationToken', Resource: roleArn(TARGETS[0]!, DEFAULT_TARGET_ROLE_NAME) },
  ];
  const violations = checkLeastPrivilege(bad, scope);
  for (const sid of bad.map((statement) => statement.Sid!))
    t.true(
      violations.some((violation) => violation.startsWith(`${sid}:`)),
      `${sid} is reported: ${violations.join('; ')}`,
    );
  // And the evaluator the tests above rely on does tell them apart.
  t.true(allowsAssumeRole([bad[1]!], roleArn(TARGETS[0]!, 'Admin')));
  t.false(allowsAssumeRole([bad[2]!], 'arn:aws:iam::111111111111:role/team/x'));
  t.throws(() => allowsAssumeRole([{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: '*', Condition: { StringLike: { 'aws:ResourceAccount': '1*' } } }], roleArn(TARGETS[0]!, 'x')), {
    message: /StringLike/,
  });
});

test('TargetAccounts takes 12-digit accounts, or nothing', (t) => {
  const declared = mainParameters.TargetAccounts!;
  t.is(declared.Type, 'CommaDelimitedList');
  t.is(declared.Default, '');
  const pattern = new RegExp(String(declared.AllowedPattern));
  for (const good of ['111111111111', '', '000000000000']) t.regex(good, pattern, good);
  for (const bad of ['11111111111', '1111111111111', 'abcdefghijkl', '*', ' 111111111111']) t.notRegex(bad, pattern, bad);
  const externalId = new RegExp(String(mainParameters.TargetExternalId!.AllowedPattern));
  for (const good of ['', 'ips-ext-7f3a', 'a1', 'x'.repeat(1224), 'a+b=c,d.e@f:g/h-i']) t.regex(good, externalId, good.slice(0, 20));
  for (const bad of ['a', 'x'.repeat(1225), 'has space', 'semi;colon']) t.notRegex(bad, externalId, bad.slice(0, 20));
});

/** The environment of a container of a task definition of the main stack, resolved. */
function environmentOf(taskDefinition: string, container: string, overrides: Record<string, string | string[]>): Record<string, Json> {
  const resolver = new TemplateResolver(main, { ImageUri: 'image', VpcId: 'vpc-1', SubnetIds: ['subnet-1'], ...overrides });
  const definitions = (roleOf(resolver, taskDefinition).ContainerDefinitions ?? []) as JsonObject[];
  const found = definitions.find((definition) => definition.Name === container)!;
  return Object.fromEntries((found.Environment as JsonObject[]).map((variable) => [String(variable.Name), variable.Value!]));
}

test('the worker and the audit are told the target accounts, the name of their role there and the ExternalId', (t) => {
  const settings = { TargetAccounts: TARGETS, TargetRoleName: 'ops-writer', TargetAuditRoleName: 'ops-reader', TargetExternalId: 'ips-ext-7f3a' };
  t.like(environmentOf('TaskDefinition', CONTAINER_NAME, settings), {
    IPS_TARGET_ACCOUNTS: TARGETS.join(','),
    IPS_TARGET_ROLE_NAME: 'ops-writer',
    IPS_TARGET_EXTERNAL_ID: 'ips-ext-7f3a',
  });
  t.like(environmentOf('DriftAuditTaskDefinition', DRIFT_CONTAINER_NAME, settings), {
    IPS_TARGET_ACCOUNTS: TARGETS.join(','),
    IPS_TARGET_ROLE_NAME: 'ops-reader',
    IPS_TARGET_EXTERNAL_ID: 'ips-ext-7f3a',
  });
  // Without target accounts or ExternalId the values are empty, which the configuration reads as unset.
  t.like(environmentOf('TaskDefinition', CONTAINER_NAME, {}), { IPS_TARGET_ACCOUNTS: '', IPS_TARGET_ROLE_NAME: DEFAULT_TARGET_ROLE_NAME, IPS_TARGET_EXTERNAL_ID: '' });
});

test("the main stack names the roles the target stack's trust needs: the shadow's only while it runs", (t) => {
  const outputs = main.Outputs as Record<string, JsonObject>;
  t.deepEqual(outputs.TaskRoleArn!.Value, { 'Fn::GetAtt': ['TaskRole', 'Arn'] });
  t.deepEqual(outputs.DriftAuditRoleArn!.Value, { 'Fn::GetAtt': ['DriftAuditRole', 'Arn'] });
  t.deepEqual(outputs.ShadowRoleArn!.Value, { 'Fn::GetAtt': ['ShadowTaskRole', 'Arn'] });
  t.is(outputs.ShadowRoleArn!.Condition, 'RunShadow');
  t.is(outputs.TaskRoleArn!.Condition, undefined);
});
