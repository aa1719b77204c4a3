// Scale-out and resharding on the local stack, with the real daemon.
import test from 'ava';
import { UpdateShardCountCommand, ListShardsCommand } from '@aws-sdk/client-kinesis';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { listShards } from '../../src/stream/shard-tree.js';
import { checkInvariants, summaryLine } from '../../tools/oracle/invariants.js';
import { generateLoad } from '../../src/ops/load.js';
import type { LoadRecord } from '../../src/ops/load.js';
import { putRecords } from '../../src/ops/producer.js';
import type { PutResult } from '../../src/ops/producer.js';
import { outcomesIn, startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { outcomeRecordId } from '../../tools/oracle/outcome-log.js';

async function assertInvariants(t: import('ava').ExecutionContext, testStack: TestStack, load: LoadRecord[], puts: PutResult[], logs: string[]) {
  const report = await checkInvariants({
    shards: await listShards(testStack.clients().kinesis, testStack.config.streamName),
    sent: load.map((record, i) => ({ record, put: puts[i]! })),
    outcomes: outcomesIn(logs),
    iam: testStack.clients().iam,
    accountId: LOCAL_ACCOUNT_ID,
    managedPathPrefix: testStack.config.managedPathPrefix,
    appName: testStack.config.appName,
  });
  t.log(summaryLine(t.title, report));
  t.deepEqual(report.violations, []);
}

test.serial('two workers share the shards; killing one moves its leases with no duplicate IAM effect', async (t) => {
  const testStack = await startTestStack({ shards: 4 });
  const daemons: TestDaemon[] = [];
  try {
    daemons.push(startTestDaemon(testStack, 'worker-1'), startTestDaemon(testStack, 'worker-2'));
    const aws = testStack.clients();
    // Upserts only: every policy must be created exactly once in all.
    const load = generateLoad({ policies: 80, events: 800, seed: 21, prefix: 'scale', duplicateRatio: 0.05 });
    const firstHalf = await putRecords(aws.kinesis, testStack.config.streamName, load.slice(0, 400));
    await waitForOutcomes(
      daemons.map((d) => d.logFile),
      firstHalf.slice(0, 50),
      240_000,
    );
    await daemons[0]!.crash(); // kill -9 the whole first worker, children included
    const secondHalf = await putRecords(aws.kinesis, testStack.config.streamName, load.slice(400));
    const puts = [...firstHalf, ...secondHalf];
    const outcomes = await waitForOutcomes(
      daemons.map((d) => d.logFile),
      puts,
      300_000,
    );
    t.is(outcomes.size, load.length, 'every record has an outcome');

    const lines = outcomesIn(daemons.map((d) => d.logFile));
    const created = lines.filter((line) => line.outcome === 'created');
    const policies = new Set(load.filter((r) => r.kind === 'upsert').map((r) => r.policy));
    // No policy is created twice. A policy can lack a `created` line: the
    // killed worker may have created it and died before its log line was
    // written; the survivor then sees it as a duplicate (ledger completed) or
    // unchanged (claim expired, IAM already holds the document). The
    // invariant check below proves every policy exists with the right document.
    const createdNames = created.map((line) => line.partitionKey);
    t.is(new Set(createdNames).size, createdNames.length, 'no policy created twice across both workers');
    t.true(createdNames.every((name) => policies.has(name)));
    const unlogged = [...policies].filter((name) => !createdNames.includes(name));
    t.log(`policies=${policies.size} created-lines=${created.length} created-by-the-killed-worker-without-a-log-line=${unlogged.length}`);
    t.is(lines.filter((l) => l.outcome === 'rejected').length, 0);
    const worker2Shards = new Set(outcomesIn([daemons[1]!.logFile]).map((l) => l.shard));
    t.log(`worker-2 processed shards: ${[...worker2Shards].sort().join(', ')}`);
    await assertInvariants(
      t,
      testStack,
      load,
      puts,
      daemons.map((d) => d.logFile),
    );
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    await testStack.stack.stop();
  }
});

test.serial('resharding from 2 to 4 shards under load keeps order per policy, loses and duplicates nothing', async (t) => {
  const testStack = await startTestStack({ shards: 2 });
  let daemon: TestDaemon | undefined;
  try {
    daemon = startTestDaemon(testStack, 'worker-reshard');
    const aws = testStack.clients();
    const load = generateLoad({ policies: 40, events: 800, seed: 33, prefix: 'reshard', deleteRatio: 0.15 });
    const puts: PutResult[] = [];
    // Put in waves and reshard in the middle.
    for (let wave = 0; wave < 8; wave++) {
      puts.push(...(await putRecords(aws.kinesis, testStack.config.streamName, load.slice(wave * 100, wave * 100 + 100))));
      if (wave === 3) {
        await waitForOutcomes([daemon.logFile], puts.slice(0, 20), 240_000);
        await aws.kinesis.send(new UpdateShardCountCommand({ StreamName: testStack.config.streamName, TargetShardCount: 4, ScalingType: 'UNIFORM_SCALING' }));
      }
      await sleep(200);
    }
    const shards = await aws.kinesis.send(new ListShardsCommand({ StreamName: testStack.config.streamName }));
    t.true((shards.Shards?.length ?? 0) > 2, 'the stream was resharded');
    const outcomes = await waitForOutcomes([daemon.logFile], puts, 300_000);
    t.is(outcomes.size, load.length, 'nothing lost');
    const usedShards = new Set(puts.map((p) => p.shardId));
    t.true(usedShards.size > 2, `records landed in parent and child shards (${[...usedShards].join(', ')})`);
    const lines = outcomesIn([daemon.logFile]);
    const perRecord = new Map<string, string[]>();
    for (const line of lines) perRecord.set(outcomeRecordId(line), [...(perRecord.get(outcomeRecordId(line)) ?? []), line.outcome]);
    const doubleEffects = [...perRecord.values()].filter((list) => list.filter((o) => !['duplicate', 'superseded', 'stale'].includes(o)).length > 1);
    t.is(doubleEffects.length, 0, 'no record took effect twice');
    await assertInvariants(t, testStack, load, puts, [daemon.logFile]);
  } finally {
    await daemon?.stop();
    await testStack.stack.stop();
  }
});
