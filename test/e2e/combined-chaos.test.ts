// Combined reliability run: DynamoDB loses answers after the effect while
// workers are frozen mid-IAM-step and then killed (kill -9) instead of thawed.
//
// 4 shards, 2 workers. Each worker reaches DynamoDB through a fault proxy that
// loses a share of the answers after DynamoDB applied the call (a claim, a
// completion, a mark the processor never hears of, so the SDK's retry meets
// its own write), and IAM through one that holds a share of the calls 1-7 s
// (slow answers, so that pauses catch IAM steps in flight and some writes of a
// frozen worker land after its claim expired). While events flow, a worker
// with IAM calls in flight is frozen (SIGSTOP, whole worker) past its claims'
// TTL and the KCL failover, until the other worker has taken its shards over;
// then it is killed with SIGKILL, frozen, so it never wakes to finish or mark
// anything, and a fresh worker (with fresh proxies) takes its place. The
// killed worker's calls still held in its proxy land afterwards. Then every
// invariant is checked against IAM itself (moto, no proxy), and the run ends
// with its summary line.
//
// It runs only when COMBINED_EVENTS is set (npm run test:chaos: 2000 events,
// 5 pauses): each pause takes a takeover plus a worker's start, far more than
// `npm test` can spend. Knobs: COMBINED_EVENTS, COMBINED_PAUSES,
// COMBINED_DDB_LOST_RATE (share of DynamoDB answers lost after the effect),
// COMBINED_SEED.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { listShards } from '../../src/stream/shard-tree.js';
import { checkInvariants, summaryLine } from '../../tools/oracle/invariants.js';
import type { SentRecord } from '../../tools/oracle/invariants.js';
import { generateLoad, seededRandom } from '../../src/ops/load.js';
import { putRecords } from '../../src/ops/producer.js';
import type { OutgoingRecord } from '../../src/ops/producer.js';
import { outcomesIn, startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startFaultProxy } from '../../tools/harness/fault-proxy.js';
import type { FaultProxy } from '../../tools/harness/fault-proxy.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { ownershipFixtures } from '../../tools/harness/ownership-fixtures.js';
import { loadConfig } from '../../src/config/config.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { claimsHeldBy, freezeWorker, killFrozenWorker, leasesByOwner, workerIdOf } from '../support/workers.js';
import { describeBound, takeoverBound, watchTakeover, whereTheTimeWent } from '../support/takeover.js';

const ENABLED = process.env.COMBINED_EVENTS !== undefined;
const EVENTS = Number(process.env.COMBINED_EVENTS ?? 2_000);
const PAUSES = Number(process.env.COMBINED_PAUSES ?? 5);
const LOST_RATE = Number(process.env.COMBINED_DDB_LOST_RATE ?? 0.05);
const SEED = Number(process.env.COMBINED_SEED ?? 29);
const CLAIM_TTL_MS = 4_000;
const SLOWEST_IAM_MS = 7_000;
/** A pause with no takeover this many bounds after the freeze is a liveness failure. */
const GIVING_UP_BOUNDS = 5;
const WORKER_SETTINGS = {
  IPS_CLAIM_TTL_MS: String(CLAIM_TTL_MS),
  IPS_KCL_FAILOVER_MILLIS: '4000',
  IPS_RETRY_BACKOFF_CAP_MS: '2000',
};

interface Worker {
  name: string;
  daemon: TestDaemon;
  iam: FaultProxy;
  dynamodb: FaultProxy;
  id: string;
}

async function startWorker(testStack: TestStack, name: string, seed: number): Promise<Worker> {
  const { env } = testStack.stack;
  // Lost answers only: the call took effect, the processor never hears of it.
  const dynamodb = await startFaultProxy({ target: env.AWS_ENDPOINT_URL_DYNAMODB!, protocol: 'dynamodb', rate: LOST_RATE, kinds: ['reset-after'], seed });
  // Slow calls only, with IAM's own rules where moto is lenient (no read lag: this run is about zombies and lost answers).
  const iam = await startFaultProxy({
    target: env.AWS_ENDPOINT_URL_IAM!,
    protocol: 'iam',
    rate: 0.3,
    kinds: ['slow'],
    slowMs: [1_000, SLOWEST_IAM_MS],
    seed: seed + 1,
    realisticIam: { lagMs: [0, 0], seed: seed + 1 },
  });
  const daemon = startTestDaemon(testStack, name, { AWS_ENDPOINT_URL_DYNAMODB: dynamodb.endpoint, AWS_ENDPOINT_URL_IAM: iam.endpoint, ...WORKER_SETTINGS });
  return { name, daemon, iam, dynamodb, id: await workerIdOf(daemon) };
}

(ENABLED ? test : test.skip)('combined: DynamoDB answers lost after the effect, workers frozen mid-IAM-step and killed (kill -9) instead of thawed; the invariants hold', async (t) => {
  const started = Date.now();
  const testStack = await startTestStack({ shards: 4, settings: { IPS_CLAIM_TTL_MS: String(CLAIM_TTL_MS) } });
  const workers: Worker[] = [];
  const retired: Worker[] = [];
  const random = seededRandom(SEED);
  try {
    const { config } = testStack;
    const { env } = testStack.stack;
    const aws = testStack.clients();
    workers.push(await startWorker(testStack, 'worker-1', SEED * 10), await startWorker(testStack, 'worker-2', SEED * 10 + 2));
    const allLogs = () => [...workers, ...retired].map((w) => w.daemon.logFile);
    const bound = takeoverBound(workers[0]!.daemon, loadConfig({ ...env, ...WORKER_SETTINGS }), SLOWEST_IAM_MS);
    const ledger = ledgerFromConfig(aws.dynamodb, config);
    t.log(`takeover ${describeBound(bound)}`);

    const sent: SentRecord[] = [];
    const put = async (records: OutgoingRecord[]) => {
      const puts = await putRecords(aws.kinesis, config.streamName, records);
      for (const [i, record] of records.entries()) sent.push({ record, put: puts[i]! });
      return puts;
    };
    const fixtures = await ownershipFixtures({
      iam: aws.iam,
      managedPathPrefix: config.managedPathPrefix,
      prefix: 'combined',
      settle: async (records) => void (await waitForOutcomes(allLogs(), await put(records), 240_000)),
    });

    /** Both live workers hold leases, so that a pause moves leases to a live worker. */
    const balanced = async () => {
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const owners = await leasesByOwner(aws.dynamodb, config.leaseTable);
        if (workers.every((w) => (owners.get(w.id)?.length ?? 0) > 0)) return true;
        await sleep(500);
      }
      return false;
    };
    await balanced();
    t.log(`workers ready after ${Math.round((Date.now() - started) / 1000)} s`);

    const load: OutgoingRecord[] = [
      ...generateLoad({
        policies: 60,
        events: EVENTS,
        seed: SEED,
        prefix: 'combined',
        deleteRatio: 0.15,
        duplicateRatio: 0.05,
        staleRatio: 0.05,
        malformedRatio: 0.02,
        paths: [`${config.managedPathPrefix}team-a/`, undefined, `${config.managedPathPrefix}team-b/`],
        pathOmitRatio: 0.1,
      }),
      ...fixtures.closingEvents,
    ];

    const waves = PAUSES + 1;
    const per = Math.ceil(load.length / waves);
    let pauses = 0;
    let takeovers = 0;
    let caughtMidStep = 0;
    let claimsAtKill = 0;
    const measured: number[] = [];
    await put(load.slice(0, per));
    for (let wave = 1; wave < waves; wave++) {
      // The victim: a worker holding leases whose children have IAM calls in flight.
      let victim: Worker | undefined;
      let before = await leasesByOwner(aws.dynamodb, config.leaseTable);
      let readAt = Date.now();
      const leasesOf = (w: Worker) => before.get(w.id)?.length ?? 0;
      const lookDeadline = Date.now() + 20_000;
      while (!victim && Date.now() < lookDeadline) {
        if (Date.now() - readAt > 500) [before, readAt] = [await leasesByOwner(aws.dynamodb, config.leaseTable), Date.now()];
        const busy = workers.filter((w) => leasesOf(w) > 0 && w.iam.inFlight > 0);
        victim = busy[Math.floor(random() * busy.length)];
        if (!victim) await sleep(5);
      }
      victim ??= [...workers].sort((a, b) => leasesOf(b) - leasesOf(a))[0]!;
      const other = workers.find((w) => w !== victim)!;
      const frozen = await freezeWorker(victim.daemon);
      const frozenAt = Date.now();
      const inFlight = victim.iam.inFlight;
      const held = await claimsHeldBy(aws.dynamodb, config.ledgerTable, frozen, frozenAt);
      const victimShards = new Set((before.get(victim.id) ?? []).map((lease) => lease.shardId));
      if (inFlight > 0) caughtMidStep++;

      const wavePuts = await put(load.slice(wave * per, (wave + 1) * per));
      const takeover = await watchTakeover({
        dynamodb: aws.dynamodb,
        leaseTable: config.leaseTable,
        otherId: other.id,
        otherLog: other.daemon.logFile,
        victimShards,
        wavePuts,
        frozenAt,
        minimumMs: Math.max(CLAIM_TTL_MS, bound.failoverMs) + 1_000,
        givingUpMs: GIVING_UP_BOUNDS * bound.boundMs,
      });
      // Killed frozen: it never wakes to finish its steps, complete or mark anything.
      await killFrozenWorker(victim.daemon, frozen);
      claimsAtKill += (await claimsHeldBy(aws.dynamodb, config.ledgerTable, frozen, 0)).length;
      pauses++;
      if (takeover.tookOver) takeovers++;
      if (takeover.takeoverMs !== undefined) measured.push(takeover.takeoverMs);
      const over = takeover.takeoverMs === undefined || takeover.takeoverMs > bound.boundMs;
      t.log(
        `pause ${pauses}: ${victim.name} frozen (${victimShards.size} leases, ${inFlight} IAM calls in flight, ${held.length} claims held), then killed; ` +
          (takeover.tookOver
            ? `${other.name} took over in ${(takeover.takeoverMs! / 1000).toFixed(1)} s (bound ${(bound.boundMs / 1000).toFixed(1)} s${over ? ', LONGER' : ''})`
            : `NO takeover within ${GIVING_UP_BOUNDS} bounds`),
      );
      t.log(`pause ${pauses}, where the time went${over ? ' (longer than the bound)' : ''}: ${await whereTheTimeWent({ takeover, otherLog: other.daemon.logFile, frozenAt, held, ledger })}`);

      // A fresh worker takes the killed one's place.
      workers.splice(workers.indexOf(victim), 1);
      retired.push(victim);
      workers.push(await startWorker(testStack, `worker-${pauses + 2}`, SEED * 10 + 2 * (pauses + 2)));
      if (wave < waves - 1) await balanced();
      await sleep(1_000 + random() * 2_000);
    }

    await waitForOutcomes(
      allLogs(),
      sent.map((s) => s.put),
      600_000,
    );
    const report = await checkInvariants({
      shards: await listShards(aws.kinesis, config.streamName),
      sent,
      outcomes: outcomesIn(allLogs()),
      iam: aws.iam, // moto itself, not a proxy
      accountId: LOCAL_ACCOUNT_ID,
      managedPathPrefix: config.managedPathPrefix,
      appName: config.appName,
      attached: fixtures.attached,
      foreign: fixtures.foreign,
    });
    const every = [...workers, ...retired];
    const line = summaryLine('combined-chaos', report, {
      shards: 4,
      pauses,
      kills: pauses,
      takeovers,
      'paused-mid-iam-step': caughtMidStep,
      'claims-left-by-killed-workers': claimsAtKill,
      'dynamodb-answers-lost': every.reduce((sum, w) => sum + w.dynamodb.injected['reset-after'], 0),
      'dynamodb-calls': every.reduce((sum, w) => sum + w.dynamodb.calls, 0),
      'slow-iam-answers': every.reduce((sum, w) => sum + w.iam.injected.slow, 0),
      'takeover-max-ms': measured.length > 0 ? Math.max(...measured) : -1,
      'takeover-bound-ms': bound.boundMs,
    });
    console.log(line);
    t.log(line);
    for (const violation of report.violations.slice(0, 50)) t.log(`violation: ${violation}`);
    t.log(`run time ${Math.round((Date.now() - started) / 1000)} s`);
    t.is(pauses, PAUSES);
    t.is(takeovers, PAUSES, 'the other worker took over during every pause');
    t.true(caughtMidStep > 0, 'a pause caught a worker with IAM calls in flight');
    t.true(
      every.some((w) => w.dynamodb.injected['reset-after'] > 0),
      'DynamoDB answers were lost',
    );
    t.deepEqual(report.violations, []);
    t.is(report.outcomes['retained-in-use'] ?? 0, 1, 'the attached policy was retained');
  } finally {
    await Promise.all([...workers, ...retired].map((w) => w.daemon.stop()));
    await Promise.all([...workers, ...retired].flatMap((w) => [w.iam.close(), w.dynamodb.close()]));
    await testStack.stack.stop();
  }
});
