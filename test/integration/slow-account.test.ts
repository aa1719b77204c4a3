// A slow target account, throttled for real: the record processor's IAM and
// STS calls go through the fault proxy, which refuses one account's calls past
// 1 call/s with IAM's own `Throttling` error (as IAM's rate limit does), while
// two other accounts have all the rate they need. The shard's pipeline is
// wired as a record-processor child wires it (buildProcessParts and
// startShardPipeline: per-account clients whose throttles are watched, the
// DynamoDB ledger and park store, the redriver), so nothing in the path from
// IAM's refusal to the `account-slow` park is a stand-in.
//
// The promise: the healthy accounts' records are applied and the batch is
// answered without waiting for the slow account, whose unsettled policies are
// parked `account-slow`; every record has exactly one outcome; the redriver
// then applies the parks at the account's own pace, and each account's IAM
// ends as the in-order fold of its events, no record taking effect twice
// (tools/oracle's invariant checker, account by account).
import test from 'ava';
import { pino } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import { loadConfig } from '../../src/config/config.js';
import { deletedEvent, upsertedEvent } from '../../src/contract/wire-event.js';
import { buildProcessParts } from '../../src/intake/process-parts.js';
import { startShardPipeline } from '../../src/intake/start-shard.js';
import type { Logger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { eventRecord } from '../../src/ops/producer.js';
import type { OutgoingRecord } from '../../src/ops/producer.js';
import type { Settlement, StreamRecord } from '../../src/pipeline/types.js';
import { startFaultProxy } from '../../tools/harness/fault-proxy.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { checkInvariants } from '../../tools/oracle/invariants.js';
import type { SentRecord } from '../../tools/oracle/invariants.js';
import { outcomeRecordId } from '../../tools/oracle/outcome-log.js';
import type { OutcomeLine } from '../../tools/oracle/outcome-log.js';
import { recordId } from '../../src/contract/record-id.js';
import { assumedIam } from '../support/assumed-iam.js';
import { doc, streamRecords } from '../support/pipeline.js';

const HEALTHY = ['111111111111', '222222222222'];
const SLOW = '333333333333';
const ACCOUNTS = [...HEALTHY, SLOW];
const SHARD = 'shardId-000000000000';
/** Policies per account: the slow account needs several calls per second of them, and gets 1. */
const POLICIES = 5;
const APPLIED = new Set(['created', 'updated', 'deleted', 'superseded', 'unchanged']);

// The stack provisions the target role in each of these accounts.
const stackOf = useTestStack(test, { shards: 1, settings: { IPS_TARGET_ACCOUNTS: ACCOUNTS.join(',') } });

const name = (i: number) => `slow-acct-${i}`;
const upsert = (account: string, i: number, revision: number) =>
  eventRecord(upsertedEvent({ eventId: `${account}-${i}-r${revision}`, account, name: name(i), revision, document: doc(`${account}-${i}-r${revision}`) }));
const remove = (account: string, i: number, revision: number) => eventRecord(deletedEvent({ eventId: `${account}-${i}-r${revision}`, account, name: name(i), revision }));

/** Round robin over the accounts, so that every batch holds each account's records side by side. */
function interleaved(make: (account: string, i: number) => OutgoingRecord): { account: string; record: OutgoingRecord }[] {
  return Array.from({ length: POLICIES }, (_, i) => ACCOUNTS.map((account) => ({ account, record: make(account, i) }))).flat();
}

/** A logger keeping its lines, as the outcome log of a child's stderr would hold them. */
function keptLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { logger: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }), lines };
}

test.serial(
  "a target account its IAM throttles to 1 call/s is parked account-slow while the other accounts' records are applied; the redriver applies the park at its pace; every account's IAM ends as the fold of its events, nothing twice",
  async (t) => {
    const { stack } = stackOf();
    const proxy = await startFaultProxy({ target: stack.env.AWS_ENDPOINT_URL_IAM!, protocol: 'iam', rate: 0, rateLimit: { ratePerSecond: 1_000, perAccount: { [SLOW]: 1 } } });
    const env = { ...stack.env, AWS_ENDPOINT_URL_IAM: proxy.endpoint, AWS_ENDPOINT_URL_STS: proxy.endpoint };
    const config = loadConfig({
      ...env,
      IPS_PARK_AFTER_MS: '1500',
      IPS_REDRIVE_EVERY_MS: '500',
      IPS_RETRY_BASE_MS: '20',
      IPS_RETRY_BACKOFF_CAP_MS: '500',
      // A given-up step's call may land this long after: its re-verification waits for it.
      IPS_LATE_WRITE_MS: '2000',
    });
    const { logger, lines } = keptLogger();
    const metrics = new Metrics();
    const clients = createAwsClients(config, { env });
    const parts = buildProcessParts(config, clients, logger, metrics, { env });
    const stop = new AbortController();
    const readers = ACCOUNTS.map((account) => assumedIam(stack.env, account));
    try {
      const settledInBatches: Settlement[] = [];
      const pipeline = await startShardPipeline(parts, SHARD, (settlement) => settledInBatches.push(settlement), stop.signal);
      const sent: { account: string; record: OutgoingRecord; delivered: StreamRecord }[] = [];
      const deliver = async (records: { account: string; record: OutgoingRecord }[]) => {
        const delivered = streamRecords(
          records.map(({ record }) => record),
          SHARD,
        );
        sent.push(...records.map((item, i) => ({ ...item, delivered: delivered[i]! })));
        return { delivered, settled: await pipeline.processBatch(delivered) };
      };
      const ofAccount = (settled: Settlement[], wanted: (account: string | undefined) => boolean) => settled.filter((s) => wanted(s.account));

      // Batch 1: two revisions of every policy in every account.
      const first = await deliver([...interleaved((account, i) => upsert(account, i, 1)), ...interleaved((account, i) => upsert(account, i, 2))]);
      t.is(first.settled.length, first.delivered.length, 'the batch is answered with one outcome per record');
      const healthyFirst = ofAccount(first.settled, (account) => HEALTHY.includes(account ?? ''));
      t.true(
        healthyFirst.every((s) => APPLIED.has(s.outcome)),
        `the healthy accounts' records are applied: ${JSON.stringify(healthyFirst.map((s) => [s.eventId, s.outcome, s.reason]))}`,
      );
      const slowFirst = ofAccount(first.settled, (account) => account === SLOW);
      const slowParked = slowFirst.filter((s) => s.outcome === 'parked' && s.reason === 'account-slow');
      t.true(
        slowParked.length >= 1,
        `the batch was answered with the slow account's unsettled records parked account-slow, not waited for: ${JSON.stringify(slowFirst.map((s) => [s.eventId, s.outcome, s.reason]))}`,
      );
      t.true(
        slowFirst.every((s) => APPLIED.has(s.outcome) || s.outcome === 'parked'),
        'what the slow account did not park it applied',
      );

      // Batch 2: the shard has moved on; a third revision, and a delete of one policy, in every account.
      const second = await deliver(interleaved((account, i) => (i === 0 ? remove(account, i, 3) : upsert(account, i, 3))));
      t.is(second.settled.length, second.delivered.length);
      const healthySecond = ofAccount(second.settled, (account) => HEALTHY.includes(account ?? ''));
      t.true(
        healthySecond.every((s) => APPLIED.has(s.outcome)),
        `the healthy accounts' records are applied: ${JSON.stringify(healthySecond.map((s) => [s.eventId, s.outcome, s.reason]))}`,
      );

      // The redriver (started with the shard's pipeline) applies the parks while the account stays throttled.
      const deadline = Date.now() + 45_000;
      while ((await parts.parks!.parkedPolicies()).size > 0 && Date.now() < deadline) await sleep(250);
      t.deepEqual([...(await parts.parks!.parkedPolicies())], [], 'every park is drained');

      // Every record: exactly one outcome as its batch settled it, and a parked one exactly one more, from the redriver.
      const outcomes = lines.filter((line) => line.msg === 'outcome') as unknown as OutcomeLine[];
      const parkedIds = new Set(settledInBatches.filter((s) => s.outcome === 'parked').map((s) => recordId(s.record)));
      for (const { delivered } of sent) {
        const id = recordId(delivered);
        const mine = outcomes.filter((line) => outcomeRecordId(line) === id);
        t.is(mine.filter((line) => !line.redriven).length, 1, `${id}: one outcome when its batch settled`);
        t.is(mine.filter((line) => line.redriven).length, parkedIds.has(id) ? 1 : 0, `${id}: ${parkedIds.has(id) ? 'one outcome from the redriver' : 'never redriven'}`);
      }

      // Each account's IAM against the fold of its own events, in stream order.
      const shards = await parts.listShards();
      for (const [index, account] of ACCOUNTS.entries()) {
        const mine: SentRecord[] = sent
          .filter((item) => item.account === account)
          .map(({ record, delivered }) => ({ record, put: { partitionKey: record.partitionKey, shardId: delivered.shardId, sequenceNumber: delivered.sequenceNumber } }));
        t.is(mine.length, 3 * POLICIES, `${account}: every record it was sent`);
        const report = await checkInvariants({
          sent: mine,
          shards,
          outcomes,
          iam: readers[index]!,
          accountId: account,
          managedPathPrefix: config.managedPathPrefix,
          appName: config.appName,
        });
        t.deepEqual(report.violations, [], `${account}: IAM is the fold of its events (outcomes ${JSON.stringify(report.outcomes)})`);
      }
      const counts = proxy.accountCounts().get(SLOW);
      t.true((counts?.refused ?? 0) > 0, `the slow account was throttled for real: ${JSON.stringify(counts)}`);
      t.log(`slow account: ${slowParked.length} of ${slowFirst.length} records parked account-slow in batch 1; IAM calls ${JSON.stringify(counts)}`);
    } finally {
      stop.abort();
      parts.accounts?.destroy();
      destroyAwsClients(clients);
      for (const reader of readers) reader.destroy();
      await proxy.close();
    }
  },
);
