// Fault injection between the record processor and the emulators: a share of
// the processor's DynamoDB and IAM calls is throttled, fails with a 5xx, has
// its connection reset before or after the emulator acted, or is slow. The
// real daemon runs the real processor; the invariants must hold, and no
// transient fault may end as a rejection or a dead letter. Errors are logged
// in plenty here, so the test also checks that no log line carries the
// credentials and that a huge rejected document stays out of the logs.
// FAULT_EVENTS and FAULT_RATE make it longer or harsher (npm run test:chaos).
import test from 'ava';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { readFileSync } from 'node:fs';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { listShards } from '../../src/stream/shard-tree.js';
import { checkInvariants, summaryLine } from '../../tools/oracle/invariants.js';
import { generateLoad } from '../../src/ops/load.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import type { OutgoingRecord } from '../../src/ops/producer.js';
import { outcomesIn, startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startFaultProxy } from '../../tools/harness/fault-proxy.js';
import type { FaultProxy } from '../../tools/harness/fault-proxy.js';
import { startTestStack } from '../../tools/harness/stack.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';

const EVENTS = Number(process.env.FAULT_EVENTS ?? 400);
const RATE = Number(process.env.FAULT_RATE ?? 0.2);
const ACCESS_KEY = 'AKIAFAULTPROXYTEST01';
const SECRET_KEY = 'fault/proxy+Secret+Key+0123456789abcdefXYZ';
const SESSION_TOKEN = 'FwoGZXIvYXdzEFaultProxySessionToken0123456789';

test('throttling, 5xx, resets and slow answers on DynamoDB and IAM: the invariants hold, only bad input is dead-lettered, logs stay clean', async (t) => {
  const testStack = await startTestStack({ shards: 2 });
  const proxies: FaultProxy[] = [];
  let daemon: TestDaemon | undefined;
  try {
    const { env } = testStack.stack;
    const dynamodbProxy = await startFaultProxy({ target: env.AWS_ENDPOINT_URL_DYNAMODB!, protocol: 'dynamodb', rate: RATE, seed: 11 });
    const iamProxy = await startFaultProxy({ target: env.AWS_ENDPOINT_URL_IAM!, protocol: 'iam', rate: RATE, seed: 12 });
    proxies.push(dynamodbProxy, iamProxy);
    daemon = startTestDaemon(testStack, 'faulty-worker', {
      AWS_ENDPOINT_URL_DYNAMODB: dynamodbProxy.endpoint,
      AWS_ENDPOINT_URL_IAM: iamProxy.endpoint,
      // Few SDK attempts, so faults reach the pipeline's own retry and the ledger's claim logic.
      IPS_AWS_MAX_ATTEMPTS: '2',
      IPS_CLAIM_TTL_MS: '5000',
      IPS_BREAKER_COOLDOWN_MS: '200',
      IPS_RETRY_BACKOFF_CAP_MS: '1000',
      // Credentials no log line may ever show (the emulators accept any).
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: SECRET_KEY,
      AWS_SESSION_TOKEN: SESSION_TOKEN,
    });
    const aws = testStack.clients();
    const load: OutgoingRecord[] = generateLoad({ policies: 40, events: EVENTS, seed: 17, prefix: 'fault', deleteRatio: 0.1, duplicateRatio: 0.05, staleRatio: 0.03 });
    // One bad record among them: a 300 KB document, far over IAM's limit.
    const huge = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${'x'.repeat(300_000)}` }] };
    load.splice(EVENTS / 2, 0, eventRecord(upsertedEvent({ eventId: 'fault-huge', name: 'fault-huge', document: huge })));
    const puts = await putRecords(aws.kinesis, testStack.config.streamName, load);
    await waitForOutcomes([daemon.logFile], puts, 280_000);

    const lines = outcomesIn([daemon.logFile]);
    const report = await checkInvariants({
      shards: await listShards(aws.kinesis, testStack.config.streamName),
      sent: load.map((record, i) => ({ record, put: puts[i]! })),
      outcomes: lines,
      iam: aws.iam,
      accountId: LOCAL_ACCOUNT_ID,
      managedPathPrefix: testStack.config.managedPathPrefix,
      appName: testStack.config.appName,
    });
    const faults = Object.values(dynamodbProxy.injected).reduce((a, b) => a + b, 0) + Object.values(iamProxy.injected).reduce((a, b) => a + b, 0);
    const byKind = Object.fromEntries(
      Object.keys(dynamodbProxy.injected).map((kind) => [`faults-${kind}`, dynamodbProxy.injected[kind as keyof FaultProxy['injected']] + iamProxy.injected[kind as keyof FaultProxy['injected']]]),
    );
    t.log(summaryLine('fault-injection', report, { kills: 0, faults, 'dynamodb-calls': dynamodbProxy.calls, 'iam-calls': iamProxy.calls, ...byKind }));

    t.true(dynamodbProxy.injected.throttle + dynamodbProxy.injected['reset-after'] > 0 && iamProxy.injected.throttle + iamProxy.injected['reset-after'] > 0, 'faults reached both services');
    t.deepEqual(report.violations, []);
    t.deepEqual(
      lines.filter((line) => line.outcome === 'rejected').map((line) => line.reason),
      ['document-too-large'],
      'no transient fault became a rejection',
    );
    const letters = await aws.dynamodb.send(new ScanCommand({ TableName: testStack.config.deadLetterTable }));
    t.deepEqual(
      letters.Items?.map((item) => item.eventId?.S),
      ['fault-huge'],
      'only the bad record was dead-lettered',
    );

    const log = readFileSync(daemon.logFile, 'utf8');
    for (const secret of [SECRET_KEY, SESSION_TOKEN]) t.false(log.includes(secret), 'no credential in any log line');
    t.true(log.includes('"level":50') || log.includes('"level":40'), 'errors and warnings were logged, so the check above means something');
    const longest = Math.max(
      ...log
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => line.length),
    );
    t.true(longest < 16_384, `every processor log line is bounded (longest ${longest} chars)`);
  } finally {
    await daemon?.stop();
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await testStack.stack.stop();
  }
});
