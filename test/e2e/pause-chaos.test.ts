// Pause chaos: a zombie worker. While events flow over 4 shards and 2
// workers, freeze one worker whole (SIGSTOP to the daemon's java process and
// its record-processor children) at a moment its children have IAM calls in
// flight, so they hold ledger claims mid-IAM-step. It stays frozen longer
// than the claim TTL and the KCL failover time, until the other worker has
// taken its leases over and applied events put during the pause; then it is
// thawed (SIGCONT) and wakes up as a zombie: its claims expired, its leases
// gone, IAM calls of its own still in flight or answered while it slept. Each
// worker reaches IAM through its own fault proxy, which holds a share of the
// calls back (slow answers, 1-7 s), so that steps are long, pauses catch them,
// and some of a frozen worker's writes reach IAM after its claim expired.
// Then every invariant is checked against IAM itself (moto, no proxy),
// account by account: a third of the policies live in the workers' own
// account, the others in the local stack's two target accounts
// (CHAOS_ACCOUNTS), reached through their assumed roles. The first target
// account fails outright (every IAM call 503) for the middle third of the
// waves, pauses included: its records are parked, by zombies too, and
// redriven once it is back.
// PAUSE_EVENTS and PAUSES make it longer (npm run test:chaos: 2000 and 5).
//
// How long a takeover may take is derived from what the run configures (the
// daemon's failoverTimeMillis, the claim TTL, the late-write time:
// test/support/takeover.ts); each pause logs the measured time beside that
// bound, and where the time went when it was longer. Only a pause in which
// no takeover comes at all, long past the bound, fails the run.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { LOCAL_TARGET_ACCOUNTS } from '../../tools/local/target-roles.js';
import { checkInvariantsByAccount } from '../../tools/oracle/accounts.js';
import { assumedIam } from '../support/assumed-iam.js';
import { listShards } from '../../src/stream/shard-tree.js';
import { summaryLine } from '../../tools/oracle/invariants.js';
import type { SentRecord } from '../../tools/oracle/invariants.js';
import { generateLoad, seededRandom } from '../../src/ops/load.js';
import { putRecords } from '../../src/ops/producer.js';
import type { OutgoingRecord } from '../../src/ops/producer.js';
import { accountOutage, outageWaves } from '../../tools/harness/account-outage.js';
import { outcomesIn, startTestDaemon, waitForOutcomes, waitForUnparked } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startFaultProxy } from '../../tools/harness/fault-proxy.js';
import type { FaultProxy } from '../../tools/harness/fault-proxy.js';
import { startTestStack } from '../../tools/harness/stack.js';
import { claimsHeldBy, freezeWorker, leasesByOwner, thawWorker, workerIdOf } from '../support/workers.js';
import { describeBound, takeoverBound, watchTakeover, whereTheTimeWent } from '../support/takeover.js';
import { loadConfig } from '../../src/config/config.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { ownershipFixtures } from '../../tools/harness/ownership-fixtures.js';

const EVENTS = Number(process.env.PAUSE_EVENTS ?? 400);
const PAUSES = Number(process.env.PAUSES ?? 2);
const SEED = Number(process.env.PAUSE_SEED ?? 23);
/** The target accounts policies live in besides the own account (comma-separated; empty: the own account alone). */
const ACCOUNTS = (process.env.CHAOS_ACCOUNTS ?? LOCAL_TARGET_ACCOUNTS.join(',')).split(',').filter(Boolean);
/**
 * Share of a team policy's events that name no path (then: where the policy
 * is, or the prefix for a new one), which makes path conflicts. Default 0.1; 0 makes
 * each policy's events always name its own path, or never name one.
 */
const PATH_OMIT = Number(process.env.PATH_OMIT_RATIO ?? 0.1);
const CLAIM_TTL_MS = 4_000;
const FAILOVER_MS = 4_000;
/** The slowest IAM answer the proxies inject. */
const SLOWEST_IAM_MS = 7_000;
/** A pause with no takeover this many bounds after the freeze is a liveness failure. */
const GIVING_UP_BOUNDS = 5;
const WORKER_SETTINGS = {
  IPS_CLAIM_TTL_MS: String(CLAIM_TTL_MS),
  IPS_KCL_FAILOVER_MILLIS: String(FAILOVER_MS),
  IPS_RETRY_BACKOFF_CAP_MS: '2000',
  // The failing account's records are parked soon, and redriven soon once it is back.
  IPS_PARK_AFTER_MS: '3000',
  IPS_REDRIVE_EVERY_MS: '2000',
};
/** The target account that fails for part of the run (none without target accounts), and for how long at least. */
const FAILING = ACCOUNTS[0];
const OUTAGE_MIN_MS = 20_000;

interface Worker {
  name: string;
  daemon: TestDaemon;
  proxy: FaultProxy;
  id: string;
  frozen?: number[];
}

test('pause chaos: a worker frozen mid-IAM-step past its claims and leases wakes as a zombie; the invariants hold', async (t) => {
  const started = Date.now();
  const testStack = await startTestStack({ shards: 4, settings: { IPS_CLAIM_TTL_MS: String(CLAIM_TTL_MS) } });
  const workers: Worker[] = [];
  const random = seededRandom(SEED);
  try {
    const { config } = testStack;
    const { env } = testStack.stack;
    const aws = testStack.clients();
    for (const [i, name] of ['worker-1', 'worker-2'].entries()) {
      // Slow calls only: a third of the processor's IAM calls is held 1-7 s before it
      // reaches IAM, some of them past a frozen worker's claim expiry.
      // IAM's own rules where moto is lenient (a name is unique per account whatever
      // the path; DeletePolicy refused while versions or attachments remain), with
      // no read lag: this run is about zombies, iam-semantics about the lag.
      const proxy = await startFaultProxy({
        target: env.AWS_ENDPOINT_URL_IAM!,
        protocol: 'iam',
        rate: 0.3,
        kinds: ['slow'],
        slowMs: [1_000, SLOWEST_IAM_MS],
        seed: SEED + i,
        realisticIam: { lagMs: [0, 0], seed: SEED + i },
      });
      // STS too: the proxy learns which account an assumed key acts in, to fail FAILING's calls.
      const daemon = startTestDaemon(testStack, name, { AWS_ENDPOINT_URL_IAM: proxy.endpoint, AWS_ENDPOINT_URL_STS: proxy.endpoint, ...WORKER_SETTINGS });
      workers.push({ name, daemon, proxy, id: '' });
    }
    for (const worker of workers) worker.id = await workerIdOf(worker.daemon);
    const logs = workers.map((w) => w.daemon.logFile);
    const bound = takeoverBound(workers[0]!.daemon, loadConfig({ ...env, ...WORKER_SETTINGS }), SLOWEST_IAM_MS);
    const ledger = ledgerFromConfig(aws.dynamodb, config);
    t.log(`takeover ${describeBound(bound)}`);
    const measured: number[] = [];

    const sent: SentRecord[] = [];
    const put = async (records: OutgoingRecord[]) => {
      const puts = await putRecords(aws.kinesis, config.streamName, records);
      for (const [i, record] of records.entries()) sent.push({ record, put: puts[i]! });
      return puts;
    };
    const fixtures = await ownershipFixtures({
      iam: aws.iam,
      managedPathPrefix: config.managedPathPrefix,
      prefix: 'pause',
      settle: async (records) => void (await waitForOutcomes(logs, await put(records), 240_000)),
    });

    // Both workers hold leases before the first pause, so a pause moves leases to a live worker.
    const balanceDeadline = Date.now() + 60_000;
    while (Date.now() < balanceDeadline) {
      const owners = await leasesByOwner(aws.dynamodb, config.leaseTable);
      if (workers.every((w) => (owners.get(w.id)?.length ?? 0) > 0)) break;
      await sleep(500);
    }
    t.log(`workers ready after ${Math.round((Date.now() - started) / 1000)} s`);

    const load: OutgoingRecord[] = [
      ...generateLoad({
        policies: 60,
        events: EVENTS,
        seed: SEED,
        prefix: 'pause',
        deleteRatio: 0.15,
        duplicateRatio: 0.05,
        staleRatio: 0.05,
        malformedRatio: 0.02,
        // A third of the policies live under a team path, a third under another, the rest name none.
        paths: [`${config.managedPathPrefix}team-a/`, undefined, `${config.managedPathPrefix}team-b/`],
        pathOmitRatio: PATH_OMIT,
        ...(ACCOUNTS.length > 0 ? { accounts: [LOCAL_ACCOUNT_ID, ...ACCOUNTS] } : {}),
      }),
      ...fixtures.closingEvents,
    ];

    // The load in waves; each pause starts just after a wave was put, once the
    // victim has IAM calls in flight, and the next wave is put while it is frozen.
    const waves = PAUSES + 1;
    const per = Math.ceil(load.length / waves);
    let pauses = 0;
    let takeovers = 0;
    let caughtMidStep = 0;
    let claimsAtPause = 0;
    let callsAtPause = 0;
    const outage = FAILING ? accountOutage(() => workers.map((w) => w.proxy), FAILING, OUTAGE_MIN_MS) : undefined;
    const outageAt = outageWaves(waves, 1);
    await put(load.slice(0, per));
    for (let wave = 1; wave < waves; wave++) {
      if (outage && wave === outageAt.from) {
        outage.begin();
        t.log(`wave ${wave}: account ${outage.account} fails`);
      }
      if (outage && wave === outageAt.backAt) t.log(`wave ${wave}: account ${outage.account} is back after ${Math.round((await outage.end()) / 1000)} s`);
      // The victim: a worker that holds leases and whose children have IAM
      // calls in flight (so they hold claims mid-IAM-step).
      let victim: Worker | undefined;
      let before = await leasesByOwner(aws.dynamodb, config.leaseTable);
      let readAt = Date.now();
      const leasesOf = (w: Worker) => before.get(w.id)?.length ?? 0;
      const lookDeadline = Date.now() + 20_000;
      while (!victim && Date.now() < lookDeadline) {
        if (Date.now() - readAt > 500) [before, readAt] = [await leasesByOwner(aws.dynamodb, config.leaseTable), Date.now()];
        const busy = workers.filter((w) => leasesOf(w) > 0 && w.proxy.inFlight > 0);
        victim = busy[Math.floor(random() * busy.length)];
        if (!victim) await sleep(5);
      }
      victim ??= [...workers].sort((a, b) => leasesOf(b) - leasesOf(a))[0]!;
      const other = workers.find((w) => w !== victim)!;
      victim.frozen = await freezeWorker(victim.daemon);
      const frozenAt = Date.now();
      const inFlight = victim.proxy.inFlight;
      const held = await claimsHeldBy(aws.dynamodb, config.ledgerTable, victim.frozen, frozenAt);
      const victimShards = new Set((before.get(victim.id) ?? []).map((lease) => lease.shardId));
      if (inFlight > 0) caughtMidStep++;
      claimsAtPause += held.length;
      callsAtPause += inFlight;

      // Events keep flowing while it sleeps.
      const wavePuts = await put(load.slice(wave * per, (wave + 1) * per));

      // Frozen past the claim TTL and the failover time, until the other worker
      // holds every lease and has given an outcome to records of this wave on
      // each shard it took over.
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
      const tookOver = takeover.tookOver;
      const frozenFor = Date.now() - frozenAt;
      thawWorker(victim.daemon, victim.frozen);
      victim.frozen = undefined;
      pauses++;
      if (tookOver) takeovers++;
      if (takeover.takeoverMs !== undefined) measured.push(takeover.takeoverMs);
      const over = takeover.takeoverMs === undefined || takeover.takeoverMs > bound.boundMs;
      t.log(
        `pause ${pauses}: ${victim.name} frozen ${(frozenFor / 1000).toFixed(1)} s (${victimShards.size} leases, ${inFlight} IAM calls in flight, ${held.length} claims held: ${held.map((c) => c.policy).join(' ')}); ` +
          (tookOver
            ? `${other.name} took over in ${(takeover.takeoverMs! / 1000).toFixed(1)} s (bound ${(bound.boundMs / 1000).toFixed(1)} s${over ? ', LONGER' : ''})`
            : `NO takeover within ${GIVING_UP_BOUNDS} bounds`),
      );
      t.log(`pause ${pauses}, where the time went${over ? ' (longer than the bound)' : ''}: ${await whereTheTimeWent({ takeover, otherLog: other.daemon.logFile, frozenAt, held, ledger })}`);
      t.true(frozenFor > CLAIM_TTL_MS && frozenFor > bound.failoverMs, 'frozen longer than the claim TTL and the failover time');
      await sleep(1_000 + random() * 2_000);
    }

    if (outage) await outage.end();
    await waitForOutcomes(
      logs,
      sent.map((s) => s.put),
      600_000,
    );
    // The failing account's parked records are applied by the redrivers once it is back.
    const parked = await waitForUnparked(
      logs,
      sent.map((s) => s.put),
      600_000,
    );
    const report = await checkInvariantsByAccount({
      shards: await listShards(aws.kinesis, config.streamName),
      sent,
      outcomes: outcomesIn(logs),
      ownAccount: LOCAL_ACCOUNT_ID,
      // moto itself, not a proxy (a target account through its assumed role)
      iamOf: (account) => (account === LOCAL_ACCOUNT_ID ? aws.iam : assumedIam(testStack.stack.env, account)),
      managedPathPrefix: config.managedPathPrefix,
      appName: config.appName,
      attached: fixtures.attached,
      foreign: fixtures.foreign,
    });
    const slow = workers.reduce((sum, w) => sum + w.proxy.injected.slow, 0);
    const line = summaryLine('pause-chaos', report, {
      pauses,
      takeovers,
      accounts: report.byAccount.size,
      'paused-mid-iam-step': caughtMidStep,
      'iam-calls-in-flight-at-pause': callsAtPause,
      'claims-held-at-pause': claimsAtPause,
      'slow-iam-answers': slow,
      'takeover-max-ms': measured.length > 0 ? Math.max(...measured) : -1,
      'takeover-bound-ms': bound.boundMs,
      parked,
      'failing-account-calls-failed': outage?.failedCalls() ?? 0,
    });
    console.log(line);
    t.log(line);
    for (const violation of report.violations.slice(0, 50)) t.log(`violation: ${violation}`);
    t.log(`run time ${Math.round((Date.now() - started) / 1000)} s`);
    t.is(pauses, PAUSES);
    t.is(takeovers, PAUSES, 'the other worker took the leases over during every pause (no pause went without one)');
    t.true(caughtMidStep > 0, 'a pause caught a worker with IAM calls in flight');
    if (outage) {
      t.true(outage.failedCalls() > 0, `account ${outage.account}'s IAM failed for part of the run`);
      t.true(parked > 0, 'its records were parked, then redriven');
    }
    t.deepEqual(report.violations, []);
    t.is(report.outcomes['retained-in-use'] ?? 0, 1, 'the attached policy was retained');
  } finally {
    for (const worker of workers) if (worker.frozen) thawWorker(worker.daemon, worker.frozen);
    await Promise.all(workers.map((w) => w.daemon.stop()));
    await Promise.all(workers.map((w) => w.proxy.close()));
    await testStack.stack.stop();
  }
});
