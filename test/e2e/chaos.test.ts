// Crash chaos: while events flow over 4 shards and 2 workers, kill -9 a
// record-processor child or a whole daemon at random moments (a replacement
// worker is started each time), then check every invariant. Half of each wave
// is put as KPL aggregates (aws-kinesis-agg), as real producers write it, the
// other half as plain records. A third of the policies live in the workers'
// own account, the others in the two target accounts of the local stack
// (CHAOS_ACCOUNTS; each reached through its assumed role), and the
// invariants hold account by account. The workers reach IAM and STS through
// the fault proxy, and the first target account fails outright (every IAM
// call 503) for the middle third of the waves: its records are parked while
// workers die around them, and redriven once it is back. The short run is
// part of `npm test`; `npm run test:chaos` runs the long one
// (CHAOS_EVENTS=5000 CHAOS_KILLS=10).
import test from 'ava';
import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { LOCAL_TARGET_ACCOUNTS } from '../../tools/local/target-roles.js';
import { checkInvariantsByAccount } from '../../tools/oracle/accounts.js';
import { assumedIam } from '../support/assumed-iam.js';
import { listShards } from '../../src/stream/shard-tree.js';
import { summaryLine } from '../../tools/oracle/invariants.js';
import { generateLoad, seededRandom } from '../../src/ops/load.js';
import { putAggregated } from '../../src/ops/aggregate.js';
import type { SentRecord } from '../../tools/oracle/invariants.js';
import { putRecords } from '../../src/ops/producer.js';
import type { OutgoingRecord } from '../../src/ops/producer.js';
import { outcomesIn, startTestDaemon, waitForOutcomes, waitForUnparked } from '../../tools/harness/daemon.js';
import { startFaultProxy } from '../../tools/harness/fault-proxy.js';
import { accountOutage, outageWaves } from '../../tools/harness/account-outage.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startTestStack } from '../../tools/harness/stack.js';
import { recordProcessorsOf } from '../../tools/harness/processes.js';
import { ownershipFixtures } from '../../tools/harness/ownership-fixtures.js';

const EVENTS = Number(process.env.CHAOS_EVENTS ?? 600);
const KILLS = Number(process.env.CHAOS_KILLS ?? 3);
const SEED = Number(process.env.CHAOS_SEED ?? 5);
/** The target accounts policies live in besides the own account (comma-separated; empty: the own account alone). */
const ACCOUNTS = (process.env.CHAOS_ACCOUNTS ?? LOCAL_TARGET_ACCOUNTS.join(',')).split(',').filter(Boolean);
/** The target account that fails for part of the run, and for how long at least. */
const FAILING = ACCOUNTS[0];
const OUTAGE_MIN_MS = 20_000;

test('crash chaos: kill -9 children and daemons while events flow; the invariants hold', async (t) => {
  const testStack = await startTestStack({ shards: 4, settings: { IPS_CLAIM_TTL_MS: '5000' } });
  const workers: TestDaemon[] = [];
  const random = seededRandom(SEED);
  try {
    const { config } = testStack;
    const aws = testStack.clients();
    // IAM and STS through the proxy (an assumed key counts as its role's account), which fails FAILING's calls on demand.
    const proxy = await startFaultProxy({ target: testStack.stack.env.AWS_ENDPOINT_URL_IAM!, protocol: 'iam', rate: 0 });
    t.teardown(() => proxy.close());
    const workerSettings = { AWS_ENDPOINT_URL_IAM: proxy.endpoint, AWS_ENDPOINT_URL_STS: proxy.endpoint, IPS_PARK_AFTER_MS: '3000', IPS_REDRIVE_EVERY_MS: '2000' };
    const worker = (name: string) => startTestDaemon(testStack, name, workerSettings);
    workers.push(worker('worker-1'), worker('worker-2'));

    const sent: SentRecord[] = [];
    const fixtures = await ownershipFixtures({
      iam: aws.iam,
      managedPathPrefix: config.managedPathPrefix,
      prefix: 'chaos',
      settle: async (records) => {
        const puts = await putRecords(aws.kinesis, config.streamName, records);
        for (const [i, record] of records.entries()) sent.push({ record, put: puts[i]! });
        await waitForOutcomes(
          workers.map((w) => w.logFile),
          puts,
          240_000,
        );
      },
    });

    const load: OutgoingRecord[] = [
      ...generateLoad({
        policies: 60,
        events: EVENTS,
        seed: SEED,
        prefix: 'chaos',
        deleteRatio: 0.15,
        duplicateRatio: 0.05,
        staleRatio: 0.05,
        malformedRatio: 0.02,
        ...(ACCOUNTS.length > 0 ? { accounts: [LOCAL_ACCOUNT_ID, ...ACCOUNTS] } : {}),
      }),
      ...fixtures.closingEvents,
    ];

    // Put the load in waves; between waves, kill something at random.
    const waves = Math.max(KILLS + 1, 4);
    const per = Math.ceil(load.length / waves);
    const outage = FAILING ? accountOutage(() => [proxy], FAILING, OUTAGE_MIN_MS) : undefined;
    const outageAt = outageWaves(waves);
    let kills = 0;
    let aggregates = 0;
    for (let wave = 0; wave < waves; wave++) {
      if (outage && wave === outageAt.from) {
        outage.begin();
        t.log(`wave ${wave}: account ${outage.account} fails`);
      }
      if (outage && wave === outageAt.backAt) t.log(`wave ${wave}: account ${outage.account} is back after ${Math.round((await outage.end()) / 1000)} s`);
      const slice = load.slice(wave * per, (wave + 1) * per);
      const half = Math.floor(slice.length / 2);
      const [plain, aggregated] = [slice.slice(0, half), slice.slice(half)];
      const puts = await putRecords(aws.kinesis, config.streamName, plain);
      for (const [i, record] of plain.entries()) sent.push({ record, put: puts[i]! });
      const packed = await putAggregated(aws.kinesis, config.streamName, aggregated, { maxRecords: 8 });
      for (const [i, record] of aggregated.entries()) sent.push({ record, put: packed.results[i]! });
      aggregates += packed.kinesisRecords;
      await sleep(500 + random() * 2_500);
      if (kills < KILLS) {
        const victim = workers.filter((w) => w.child.exitCode === null)[Math.floor(random() * 2)] ?? workers.at(-1)!;
        const children = recordProcessorsOf(victim.pid);
        if (random() < 0.5 && children.length > 0) {
          process.kill(children[Math.floor(random() * children.length)]!, 'SIGKILL'); // the daemon then stops the whole worker
          t.log(`kill ${kills + 1}: a record-processor child of ${victim.pid}`);
          await Promise.race([victim.exited, sleep(20_000)]);
        } else {
          await victim.crash();
          t.log(`kill ${kills + 1}: daemon ${victim.pid}`);
        }
        await victim.stop(1_000); // whatever is left of it
        kills++;
        workers.splice(workers.indexOf(victim), 1, worker(`worker-${kills + 2}`));
      }
    }
    const logs = () =>
      readdirSync(`${testStack.stack.dir}/logs`)
        .filter((f) => f.startsWith('worker-'))
        .map((f) => `${testStack.stack.dir}/logs/${f}`);
    if (outage) await outage.end();
    await waitForOutcomes(
      logs(),
      sent.map((s) => s.put),
      600_000,
    );
    // The failing account's parked records are applied by the redrivers once it is back.
    const parked = await waitForUnparked(
      logs(),
      sent.map((s) => s.put),
      600_000,
    );

    const report = await checkInvariantsByAccount({
      shards: await listShards(aws.kinesis, config.streamName),
      sent,
      outcomes: outcomesIn(logs()),
      ownAccount: LOCAL_ACCOUNT_ID,
      iamOf: (account) => (account === LOCAL_ACCOUNT_ID ? aws.iam : assumedIam(testStack.stack.env, account)),
      managedPathPrefix: config.managedPathPrefix,
      appName: config.appName,
      attached: fixtures.attached,
      foreign: fixtures.foreign,
    });
    const line = summaryLine('crash-chaos', report, { kills, aggregates, accounts: report.byAccount.size, parked, 'failing-account-calls-failed': outage?.failedCalls() ?? 0 });
    console.log(line);
    t.log(line);
    t.is(kills, KILLS);
    if (outage) {
      t.true(outage.failedCalls() > 0, `account ${outage.account}'s IAM failed for part of the run`);
      t.true(parked > 0, 'its records were parked, then redriven');
    }
    t.deepEqual(report.violations, []);
    t.is(report.outcomes['retained-in-use'] ?? 0, 1, 'the attached policy was retained');
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await testStack.stack.stop();
  }
});
