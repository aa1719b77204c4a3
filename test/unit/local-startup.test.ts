// What npm start promises about the daemon's start-up follows from the
// daemon's own properties, and its start-up steps are read from its log.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/config/paths.js';
import { renderPropertiesFile } from '../../src/daemon/properties.js';
import { startupEstimate, startupSteps } from '../../tools/local/startup.js';

const local = (env: Record<string, string> = {}) =>
  renderPropertiesFile(join(projectRoot(), 'properties', 'local.properties'), {
    AWS_ENDPOINT_URL_KINESIS: 'http://127.0.0.1:1',
    AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:2',
    APP_ROOT: '/app',
    KCL_APPLICATION_NAME: 'iam-policy-stream',
    ...env,
  });

test('the lease taker interval and the wait follow failoverTimeMillis and idleTimeBetweenReadsInMillis', (t) => {
  const estimate = startupEstimate(local());
  t.is(estimate.takerIntervalMs, 2 * (6000 + 25));
  t.deepEqual(estimate.afterTableMs, { min: 1_000, max: 30_000 + 3_000 + 200 });
  t.true(estimate.lines.some((line) => line.includes('failoverTimeMillis 6000') && line.includes('12.1 s')));
  const slower = startupEstimate(local({ IPS_KCL_FAILOVER_MILLIS: '10000', IPS_KCL_IDLE_MILLIS: '1000' }));
  t.is(slower.takerIntervalMs, 20_050);
  t.is(slower.afterTableMs.max, 34_000);
  t.true(
    slower.lines.some((line) => line.includes('latency')),
    'says why the first latencies are long',
  );
});

test("the daemon's start-up steps are read from its log once each", (t) => {
  const log = [
    '2026-12-02 20:32:41,494 [multi-lang-daemon-0000] INFO  s.a.k.l.d.DynamoDBLeaseCoordinator - Created new lease table for coordinator with pay per request billing mode.',
    '2026-12-02 20:33:04,588 [multi-lang-daemon-0000] INFO  s.a.k.leases.HierarchicalShardSyncer - iam-policy-events - Newly created leases 2: [Lease(leaseKey=shardId-000000000001, ...)]',
    '2026-12-02 20:33:10,853 [LeaseCoordinator-0000] INFO  s.a.k.l.dynamodb.DynamoDBLeaseTaker - Worker ce46 successfully took 2 leases: shardId-000000000001, shardId-000000000000',
  ].join('\n');
  const seen = new Set<string>();
  t.deepEqual(startupSteps(log.split('\n')[0]!, seen), ['lease table created']);
  t.deepEqual(startupSteps(log, seen), ['shards listed, 2 lease(s) created', 'took 2 lease(s); record processors starting']);
  t.deepEqual(startupSteps(log, seen), []);
});

test('the local and AWS properties give the KCL time for a graceful shutdown', (t) => {
  for (const file of ['local.properties', 'aws.properties']) {
    const text = readFileSync(join(projectRoot(), 'properties', file), 'utf8');
    t.regex(text, /^shutdownGraceMillis = \$\{IPS_KCL_SHUTDOWN_GRACE_MILLIS:-\d+\}$/m, file);
  }
});
