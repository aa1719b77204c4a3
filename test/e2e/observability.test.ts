// What an operator sees of a running processor, through the real daemon on
// the local stack: the Embedded Metric Format documents its record
// processors write (names, dimensions and values against what happened), and
// `ips status` showing a shard held by one policy, the age of its oldest
// unsettled record and that policy, the last minute's outcomes and the open
// dead letters; `--watch` refreshing.
import test from 'ava';
import { PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { projectRoot } from '../../src/config/paths.js';
import { LEDGER_KEY } from '../../src/ledger/table.js';
import { METRIC } from '../../src/metrics/metrics.js';
import type { StatusReport } from '../../src/ops/commands/status.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import { startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { sentRecordId } from '../../tools/oracle/outcome-log.js';

const run = promisify(execFile);
let testStack: TestStack | undefined;
let daemon: TestDaemon | undefined;
const stackOf = () => testStack!;

interface EmfDocument {
  _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] };
  [key: string]: unknown;
}

/** Every EMF document the daemon's children wrote to stderr (its log). */
function emfDocuments(): EmfDocument[] {
  return readFileSync(daemon!.logFile, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{') && line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as EmfDocument);
}

/** The values a metric had in the documents, for the given dimension values. */
function valuesOf(name: string, labels: Record<string, string> = {}): number[] {
  return emfDocuments()
    .filter((d) => d._aws.CloudWatchMetrics[0]!.Metrics.some((m) => m.Name === name) && Object.entries(labels).every(([k, v]) => d[k] === v))
    .flatMap((d) => [d[name]].flat() as number[]);
}

async function ips(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [join(projectRoot(), 'dist', 'ops', 'cli.js'), ...args], { env: { ...process.env, ...stackOf().stack.env }, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

const upsert = (name: string, eventId: string) =>
  eventRecord({
    specVersion: '1',
    eventId,
    type: 'policy.upserted',
    policy: { name },
    document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${name}/*` }] },
  });

test.before(async () => {
  testStack = await startTestStack({ shards: 1 });
  daemon = startTestDaemon(testStack, 'observed-worker', { IPS_METRICS_INTERVAL_MS: '1000', IPS_PROGRESS_REPORT_MS: '500', IPS_WORKER_ID: 'worker-under-test' });
});
test.after.always(async () => {
  await daemon?.stop();
  await testStack?.stack.stop();
});

test.serial('a shard held by one policy: status names the policy and the age of its oldest unsettled record; EMF documents count what happened', async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  // Another worker holds a claim on `held` for two minutes: its events wait (claimed-elsewhere), the others flow.
  await aws.dynamodb.send(
    new PutItemCommand({
      TableName: config.ledgerTable,
      Item: {
        [LEDGER_KEY]: { S: 'held' },
        claimOwner: { S: 'elsewhere/1/shardId-000000000000/x' },
        claimToken: { S: 'token' },
        claimExpires: { N: String(Date.now() + 120_000) },
        claimSeq: { S: 'verification' },
      },
    }),
  );
  const puts = await putRecords(aws.kinesis, config.streamName, [upsert('free-1', 'f1'), upsert('held', 'h1'), upsert('free-2', 'f2'), { partitionKey: 'junk', data: Buffer.from('not json') }]);
  const [free1, held, free2, junk] = puts;
  await waitForOutcomes([daemon!.logFile], [free1!, free2!, junk!]);

  // Status while the batch waits on `held`.
  let report: StatusReport | undefined;
  for (let i = 0; i < 60; i++) {
    report = JSON.parse(await ips('status', '--json')) as StatusReport;
    // The progress item is rewritten each second while the batch waits: the first one read may
    // still name a record that has settled since.
    if (report.shards[0]?.progress?.batch?.oldestUnsettled?.partitionKey === 'held' && Object.keys(report.lastMinute).length > 0) break;
    await sleep(500);
  }
  const shard = report!.shards[0]!;
  t.is(shard.progress?.batch?.oldestUnsettled?.partitionKey, 'held');
  t.is(shard.progress?.batch?.oldestUnsettled?.sequenceNumber, held!.sequenceNumber);
  t.true((shard.progress?.oldestUnsettledAgeMs ?? 0) > 0);
  t.regex(shard.progress?.worker ?? '', /^worker-under-test\/\d+$/);
  t.is(report!.lastMinute.created, 2);
  t.is(report!.lastMinute.rejected, 1);
  t.is(report!.deadLetters.open, 1);
  t.deepEqual(report!.deadLetters.openByReason, { 'invalid-json': 1 });
  const text = await ips('status');
  t.regex(text, /oldestUnsettled/i);
  t.regex(text, /shardId-000000000000\s+\d+\/4 settled\s+\S+s\s+held\s/);
  t.regex(text, /Dead letters: 1 open \(invalid-json=1\)/);

  // The gauge, published each second while it waits.
  await sleep(2_500);
  const ages = valuesOf(METRIC.oldestUnsettledAgeMs, { ShardId: shard.shard });
  t.true(
    ages.some((age) => age > 1_000),
    `the oldest unsettled record ages: ${ages.join(',')}`,
  );
  t.true(valuesOf(METRIC.transientRetries, { reason: 'claimed-elsewhere' }).reduce((a, b) => a + b, 0) > 0);

  // The claim goes: the batch settles, the gauge drops to 0.
  await aws.dynamodb.send(new UpdateItemCommand({ TableName: config.ledgerTable, Key: { [LEDGER_KEY]: { S: 'held' } }, UpdateExpression: 'REMOVE claimOwner, claimToken, claimExpires, claimSeq' }));
  const outcome = (await waitForOutcomes([daemon!.logFile], [held!])).get(sentRecordId(held!));
  t.is(outcome?.outcome, 'created');
  await sleep(2_500);
  t.is(valuesOf(METRIC.oldestUnsettledAgeMs, { ShardId: shard.shard }).at(-1), 0);

  // Counters as CloudWatch would sum them: the outcomes of the four records, by outcome, per shard and fleet-wide.
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  t.is(sum(valuesOf(METRIC.outcomes, { outcome: 'created', ShardId: shard.shard })), 3);
  t.is(sum(valuesOf(METRIC.outcomes, { outcome: 'rejected' })), 1);
  t.is(sum(valuesOf(METRIC.rejections, { reason: 'invalid-json' })), 1);
  t.is(sum(valuesOf(METRIC.deadLettersWritten, { reason: 'invalid-json' })), 1);
  t.true(valuesOf(METRIC.recordAgeMs).length >= 4);
  t.true(
    valuesOf(METRIC.batchDurationMs).some((ms) => ms >= 1_000),
    'the held batch took its time',
  );
  t.true(valuesOf(METRIC.iamBreakerState).every((state) => state === 0));
  t.true(sum(valuesOf(METRIC.awsCalls, { service: 'iam', operation: 'CreatePolicy', outcome: 'ok' })) >= 3);

  const [outcomes] = emfDocuments().filter((d) => d._aws.CloudWatchMetrics[0]!.Metrics.some((m) => m.Name === METRIC.outcomes));
  t.is(outcomes!._aws.CloudWatchMetrics[0]!.Namespace, 'IamPolicyStream');
  t.deepEqual(outcomes!._aws.CloudWatchMetrics[0]!.Dimensions, [
    ['App', 'outcome'],
    ['App', 'ShardId', 'outcome'],
  ]);
  t.is(outcomes!.App, config.appName);
  t.is(outcomes!.Worker, 'worker-under-test');
  const [calls] = emfDocuments().filter((d) => d._aws.CloudWatchMetrics[0]!.Metrics.some((m) => m.Name === METRIC.awsCalls));
  t.deepEqual(calls!._aws.CloudWatchMetrics[0]!.Dimensions, [
    ['App', 'operation', 'outcome', 'service'],
    ['App', 'Worker', 'operation', 'outcome', 'service'],
  ]);
});

test.serial('status --watch refreshes until told to stop', async (t) => {
  const lines = (await ips('status', '--watch', '--interval', '1', '--refreshes', '2', '--json')).trim().split('\n');
  t.is(lines.length, 2);
  const [first, second] = lines.map((line) => JSON.parse(line) as StatusReport);
  t.true(Date.parse(second!.at) - Date.parse(first!.at) >= 900);
  t.is(second!.shards.length, 1);
});
