// `ips plan` against the emulators: policies made by real events through a
// shard pipeline (real ledger, real reconciler), one attached to a role, one
// made by hand without the managed-by tag. The plan of a file of events runs
// as operators run it, a separate process; it says what the processor would
// do with each (create, update with its diff, none, refuse with the reason,
// retain, duplicate, stale), exits 1 because IAM would change, and leaves
// IAM, the ledger and the dead-letter table exactly as they were. Then the
// same events go through the real pipeline, one per batch: each record's
// outcome is the one the plan announced. The same records put on the stream
// plan the same from the stream, and a replay's dry run reads them again
// without moving a checkpoint.
import test from 'ava';
import { AttachRolePolicyCommand, CreatePolicyCommand, CreateRoleCommand, GetPolicyCommand, GetPolicyVersionCommand, ListPolicyVersionsCommand } from '@aws-sdk/client-iam';
import type { IAMClient } from '@aws-sdk/client-iam';
import { CreateTableCommand, PutItemCommand, ScanCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';
import { listPolicies, policyArn } from '../../src/iam/policies.js';
import { putRecords } from '../../src/ops/producer.js';
import { putAggregate } from '../../src/ops/aggregate.js';
import type { ShardPipeline } from '../../src/pipeline/shard-pipeline.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { stackPipeline } from '../support/stack-pipeline.js';
import { assumedIam } from '../support/assumed-iam.js';
import { OWNER_TAG } from '../../src/contract/ownership.js';
import { streamRecords } from '../support/pipeline.js';

const stackOf = useTestStack(test, { shards: 1 });
const SHARD = 'shardId-000000000000';

function ips(args: string[], settings: Record<string, string> = {}) {
  const env = { ...process.env, ...stackOf().stack.env, ...settings };
  delete env.npm_lifecycle_event;
  const result = spawnSync(process.execPath, ['--import=tsx', join(projectRoot(), 'src', 'ops', 'cli.ts'), ...args], { env, encoding: 'utf8', timeout: 120_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const statement = (bucket: string, sid?: string) => ({ ...(sid ? { Sid: sid } : {}), Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${bucket}/*` });
const doc = (...statements: object[]) => ({ Version: '2012-10-17', Statement: statements });

function upsert(name: string, eventId: string, document: object, extra: Record<string, unknown> = {}) {
  return { specVersion: '1', eventId, type: 'policy.upserted', policy: { name }, document, ...extra };
}
function remove(name: string, eventId: string) {
  return { specVersion: '1', eventId, type: 'policy.deleted', policy: { name } };
}
const record = (event: { policy: { name: string } }) => ({ partitionKey: event.policy.name, data: Buffer.from(JSON.stringify(event)) });

/** Everything a plan must leave as it was: IAM's policies (path, tags, versions, documents), the ledger and the dead letters. */
async function snapshot(iam: IAMClient, dynamodb: DynamoDBClient): Promise<string> {
  const { config } = stackOf();
  const policies = [];
  for (const listed of await listPolicies(iam)) {
    const arn = listed.Arn!;
    const { Policy: policy } = await iam.send(new GetPolicyCommand({ PolicyArn: arn }));
    const versions = (await iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn }))).Versions ?? [];
    const documents = [];
    for (const version of versions)
      documents.push([version.VersionId, version.IsDefaultVersion, (await iam.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: version.VersionId }))).PolicyVersion?.Document]);
    policies.push({ arn, path: policy?.Path, tags: policy?.Tags, attachments: policy?.AttachmentCount, defaultVersion: policy?.DefaultVersionId, documents });
  }
  const table = async (name: string) => ((await dynamodb.send(new ScanCommand({ TableName: name, ConsistentRead: true }))).Items ?? []).map((item) => JSON.stringify(item)).sort();
  return JSON.stringify({ policies, ledger: await table(config.ledgerTable), deadLetters: await table(config.deadLetterTable) }, null, 1);
}

function pipelineOf(): ShardPipeline {
  const { config, clients } = stackOf();
  return stackPipeline(config, clients(), 'plan-test-worker');
}

interface PlannedLine {
  where: string;
  policy?: string;
  eventId?: string;
  action: string;
  outcome: string;
  reason?: string;
  document?: { added: unknown[]; removed: unknown[]; changed: { sid: string }[] };
  tags?: { added: Record<string, string>; removed: Record<string, string>; changed: Record<string, { before: string; after: string }> };
}

const parseLines = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as PlannedLine);

// The events the plan is asked about, after the set-up below.
const PLANNED = [
  upsert('plan-new', 'n1', doc(statement('new'))),
  upsert('plan-changed', 'c2', doc(statement('kept', 'Kept'), statement('changed-after', 'Moved'), statement('added')), { tags: { team: 'b', env: 'prod' } }),
  // The same as applied, written otherwise: statements in another order, a one-item list, keys reordered.
  upsert('plan-same', 's2', { Statement: [statement('two'), { Resource: ['arn:aws:s3:::one/*'], Action: ['s3:GetObject'], Effect: 'Allow' }], Version: '2012-10-17' }),
  upsert('plan-admin', 'a1', doc({ Effect: 'Allow', Action: '*', Resource: '*' })),
  remove('plan-attached', 'd1'),
  upsert('plan-foreign', 'f1', doc(statement('mine'))),
  upsert('plan-same', 's1', doc(statement('one'), statement('two'))),
  upsert('plan-versioned', 'v2', doc(statement('older')), { revision: 3 }),
];

test.serial('ips plan --file: each event gets what the processor would do, exit 1, nothing changes; then the processor does exactly that', async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const pipeline = pipelineOf();
  // What IAM and the ledger hold before the plan: made by real events.
  const setUp = await pipeline.processBatch(
    streamRecords(
      [
        upsert('plan-changed', 'c1', doc(statement('kept', 'Kept'), statement('changed-before', 'Moved'), statement('removed')), { tags: { team: 'a', owner: 'x' } }),
        upsert('plan-same', 's1', doc(statement('one'), statement('two'))),
        upsert('plan-attached', 't1', doc(statement('attached'))),
        upsert('plan-versioned', 'v1', doc(statement('newer')), { revision: 5 }),
      ].map(record),
    ),
  );
  t.deepEqual(
    setUp.map((s) => s.outcome),
    ['created', 'created', 'created', 'created'],
  );
  await aws.iam.send(
    new CreateRoleCommand({
      RoleName: 'plan-role',
      AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] }),
    }),
  );
  await aws.iam.send(new AttachRolePolicyCommand({ RoleName: 'plan-role', PolicyArn: policyArn({ account: LOCAL_ACCOUNT_ID }, config.managedPathPrefix, 'plan-attached') }));
  // Made by hand under the managed path, without the managed-by tag.
  await aws.iam.send(new CreatePolicyCommand({ PolicyName: 'plan-foreign', Path: config.managedPathPrefix, PolicyDocument: JSON.stringify(doc(statement('theirs'))) }));

  const dir = mkdtempSync(join(tmpdir(), 'ips-plan-'));
  const file = join(dir, 'events.jsonl');
  writeFileSync(file, `${PLANNED.map((event) => JSON.stringify(event)).join('\n')}\n\nnot json\n`);

  const before = await snapshot(aws.iam, aws.dynamodb);
  const result = ips(['plan', '--file', file, '--json']);
  t.is(result.code, 1, result.stderr);
  const planned = parseLines(result.stdout);
  t.deepEqual(
    planned.map((line) => [line.where, line.policy, line.action, line.reason ?? line.outcome]),
    [
      ['line 1', 'plan-new', 'create', 'created'],
      ['line 2', 'plan-changed', 'update', 'updated'],
      ['line 3', 'plan-same', 'none', 'unchanged'],
      ['line 4', 'plan-admin', 'refuse', 'admin-grant-refused'],
      ['line 5', 'plan-attached', 'retain', 'retained-in-use'],
      ['line 6', 'plan-foreign', 'refuse', 'not-owned'],
      ['line 7', 'plan-same', 'duplicate', 'duplicate'],
      ['line 8', 'plan-versioned', 'stale', 'stale'],
      ['line 10', undefined, 'refuse', 'invalid-json'],
    ],
  );
  const update = planned[1]!;
  t.deepEqual(update.document!.added, [{ Action: ['s3:GetObject'], Effect: 'Allow', Resource: ['arn:aws:s3:::added/*'] }]);
  t.deepEqual(update.document!.removed, [{ Action: ['s3:GetObject'], Effect: 'Allow', Resource: ['arn:aws:s3:::removed/*'] }]);
  t.deepEqual(
    update.document!.changed.map((change) => change.sid),
    ['Moved'],
  );
  t.deepEqual(update.tags, { added: { env: 'prod' }, removed: { owner: 'x' }, changed: { team: { before: 'a', after: 'b' } } });
  t.is(await snapshot(aws.iam, aws.dynamodb), before, 'IAM, the ledger and the dead letters are as they were');

  // For people: a table and the update's diff; the same exit code.
  const human = ips(['plan', '--file', file]);
  t.is(human.code, 1, human.stderr);
  t.regex(human.stdout, /line 2 +plan-changed +c2 +update/);
  t.regex(human.stdout, /^ {4}\+ .*arn:aws:s3:::added/m);
  t.regex(human.stdout, /tags: \+env=prod -owner team: a -> b/);
  t.regex(human.stdout, /refuse \(admin-grant-refused\)/);
  t.is(await snapshot(aws.iam, aws.dynamodb), before);

  // The processor, one record per batch (no coalescing): the outcome each record gets is the one planned.
  const valid = PLANNED.map(record);
  const outcomes = [];
  for (const item of streamRecords(valid)) {
    const [settled] = await pipeline.processBatch([{ ...item, index: 0 }]);
    outcomes.push(settled!.outcome === 'rejected' ? settled!.reason : settled!.outcome);
  }
  t.deepEqual(
    outcomes,
    planned.slice(0, PLANNED.length).map((line) => line.reason ?? line.outcome),
  );

  // Now applied: the same file plans no change (the records are known), exit 0.
  const again = ips(['plan', '--file', file, '--json']);
  t.is(again.code, 0, again.stderr);
  t.deepEqual(
    parseLines(again.stdout).map((line) => line.reason ?? line.action),
    ['duplicate', 'duplicate', 'duplicate', 'admin-grant-refused', 'duplicate', 'not-owned', 'duplicate', 'stale', 'invalid-json'],
  );
});

test.serial('ips plan --from-stream plans the records as the workers would be handed them; replay --dry-run says what a reset would read again and, with --reapply, would write', async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const events = [upsert('stream-new', 'sn1', doc(statement('s'))), upsert('stream-new', 'sn2', doc(statement('t'))), remove('stream-gone', 'sg1')];
  const puts = await putRecords(
    aws.kinesis,
    config.streamName,
    events.map((event) => ({ partitionKey: event.policy.name, data: Buffer.from(JSON.stringify(event)) })),
  );
  // Two events in one KPL aggregate: the plan reads them as the KCL hands them over, one user record each.
  const aggregated = [upsert('stream-agg', 'sa1', doc(statement('x'))), remove('stream-agg', 'sa2')];
  const [first] = await putAggregate(aws.kinesis, config.streamName, aggregated.map(record));
  const before = await snapshot(aws.iam, aws.dynamodb);

  const fromStream = ips(['plan', '--from-stream', '--trim-horizon', '--json']);
  t.is(fromStream.code, 1, fromStream.stderr);
  const planned = parseLines(fromStream.stdout).filter((line) => line.policy?.startsWith('stream-'));
  t.deepEqual(
    planned.map((line) => [line.policy, line.action]),
    [
      ['stream-new', 'create'],
      ['stream-new', 'update'],
      ['stream-gone', 'none'],
      ['stream-agg', 'create'],
      ['stream-agg', 'delete'],
    ],
  );
  t.is(planned[0]!.where, `${SHARD}#${puts[0]!.sequenceNumber}#0`);
  t.deepEqual(
    planned.slice(3).map((line) => line.where),
    [`${SHARD}#${first!.sequenceNumber}#0`, `${SHARD}#${first!.sequenceNumber}#1`],
  );

  // A shard the stream does not have: a usage error that names the one meant.
  const typo = ips(['plan', '--from-stream', '--trim-horizon', '--shard', 'shardId-00000000000']);
  t.is(typo.code, 2);
  t.regex(typo.stderr, /has no shard shardId-00000000000; did you mean shardId-000000000000\?/);
  t.is(ips(['plan', '--file', 'x', '--trim-horizon']).code, 2);
  t.is(ips(['plan']).code, 2);

  // The workers' lease, as the KCL leaves it after reading the whole shard (no daemon here).
  await aws.dynamodb.send(
    new CreateTableCommand({
      TableName: config.leaseTable,
      KeySchema: [{ AttributeName: 'leaseKey', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'leaseKey', AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
  const lease = { leaseKey: { S: SHARD }, leaseOwner: { S: 'worker-1' }, leaseCounter: { N: '7' }, checkpoint: { S: first!.sequenceNumber }, checkpointSubSequenceNumber: { N: '1' } };
  await aws.dynamodb.send(new PutItemCommand({ TableName: config.leaseTable, Item: lease }));
  const leases = async () => JSON.stringify((await aws.dynamodb.send(new ScanCommand({ TableName: config.leaseTable, ConsistentRead: true }))).Items);
  const leasesBefore = await leases();

  const dry = ips(['replay', '--trim-horizon', '--dry-run', '--json']);
  t.is(dry.code, 0, dry.stderr);
  const report = JSON.parse(dry.stdout) as { dryRun: boolean; resets: { shard: string; records: number; policies: number }[] };
  t.true(report.dryRun);
  t.is(report.resets.length, 1);
  t.is(report.resets[0]!.shard, SHARD);
  t.true(report.resets[0]!.records >= 5, `every record up to the checkpoint is read again, an aggregate's one by one (${report.resets[0]!.records})`);
  t.true(report.resets[0]!.policies >= 3);

  const reapply = ips(['replay', '--trim-horizon', '--dry-run', '--reapply', '--json']);
  t.is(reapply.code, 1, reapply.stderr);
  const reapplied = JSON.parse(reapply.stdout) as { plan: PlannedLine[] };
  const byPolicy = (name: string) => reapplied.plan.filter((line) => line.policy === name).map((line) => line.reason ?? line.action);
  // In a new epoch the ledger counts for nothing: each record meets IAM as it is now.
  t.deepEqual(byPolicy('stream-new'), ['create', 'update']);
  t.deepEqual(byPolicy('stream-gone'), ['none']);
  t.deepEqual(byPolicy('stream-agg'), ['create', 'delete']);

  const human = ips(['replay', '--trim-horizon', '--dry-run', '--reapply']);
  t.is(human.code, 1, human.stderr);
  t.regex(human.stdout, /Dry run: nothing changed/);
  t.is(await leases(), leasesBefore, 'no checkpoint moved');
  t.is(await snapshot(aws.iam, aws.dynamodb), before, 'IAM, the ledger and the dead letters are as they were');
});

test.serial('ips plan reads a target account in that account: its own IAM through the role the workers assume, its own ledger key; an account not allowed is refused', async (t) => {
  const { config, clients, stack } = stackOf();
  const aws = clients();
  const target = '111111111111';
  // The same name in the workers' own account and in the target account, each with its own document.
  const pipeline = pipelineOf();
  const own = await pipeline.processBatch(streamRecords([record(upsert('plan-twin', 'w1', doc(statement('own'))))]));
  t.deepEqual(
    own.map((s) => s.outcome),
    ['created'],
  );
  const inTarget = assumedIam(stack.env, target);
  await inTarget.send(
    new CreatePolicyCommand({
      PolicyName: 'plan-twin',
      Path: config.managedPathPrefix,
      PolicyDocument: JSON.stringify(doc(statement('target-before'))),
      Tags: [{ Key: OWNER_TAG, Value: config.appName }],
    }),
  );
  inTarget.destroy();

  const events = [
    upsert('plan-twin', 'x1', doc(statement('target-after')), { account: target }),
    upsert('plan-twin', 'x2', doc(statement('own'))),
    upsert('plan-elsewhere', 'x3', doc(statement('nowhere')), { account: '333333333333' }),
  ];
  const dir = mkdtempSync(join(tmpdir(), 'ips-plan-accounts-'));
  const file = join(dir, 'events.jsonl');
  writeFileSync(file, `${events.map((event) => JSON.stringify(event)).join('\n')}\n`);
  const before = await snapshot(aws.iam, aws.dynamodb);
  const result = ips(['plan', '--file', file, '--json']);
  t.is(result.code, 1, `${result.stdout}\n${result.stderr}`);
  const planned = parseLines(result.stdout);
  t.deepEqual(
    planned.map((line) => [line.policy, line.reason ?? line.action]),
    [
      [`${target}/plan-twin`, 'update'],
      ['plan-twin', 'none'],
      ['333333333333/plan-elsewhere', 'account-not-allowed'],
    ],
  );
  t.is(await snapshot(aws.iam, aws.dynamodb), before, 'nothing changed');
});
