// End to end on the local stack: events put into the emulated stream -> the
// real MultiLangDaemon -> the record processor -> the emulated IAM, ledger,
// dead-letter table and lease table.
import test from 'ava';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeLanded } from '../../tools/oracle/landed-record.js';
import type { PolicyEvent } from '../../src/contract/event.js';
import { documentsEqual } from '../../src/iam/document.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { compareSequence } from '../../src/ledger/sequence.js';
import { foldEvents } from '../../tools/oracle/expected-state.js';
import { generateLoad, policyDocument } from '../../src/ops/load.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import type { PutResult } from '../../src/ops/producer.js';
import { hostileCorpus } from '../support/hostile-corpus.js';
import { readManagedPolicy } from '../support/iam-state.js';
import { checkpoints } from '../support/leases.js';
import { startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { sentRecordId } from '../../tools/oracle/outcome-log.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { PutRecordCommand } from '@aws-sdk/client-kinesis';
import { hashKeyOf, inHashKeyRange } from '../../src/contract/hash-key.js';
import { DynamoDbDeadLetterStore } from '../../src/deadletter/dead-letter-store.js';
import { deadLettersCommand } from '../../src/ops/commands/dead-letters.js';
import type { OpsContext } from '../../src/ops/cli/context.js';
import { listShards } from '../../src/stream/shard-tree.js';
import { aggregateWithHashKeys } from '../support/kpl.js';
import type { KeyedUserRecord } from '../support/kpl.js';

let testStack: TestStack | undefined;
let daemon: TestDaemon | undefined;
const stackOf = () => testStack!;
test.before(async () => {
  testStack = await startTestStack({ shards: 2 });
  daemon = startTestDaemon(testStack);
});
test.after.always(async () => {
  await daemon?.stop();
  await testStack?.stack.stop();
});

/** The last sequence number put on each shard. */
function lastPerShard(puts: PutResult[]): Map<string, string> {
  const last = new Map<string, string>();
  for (const put of puts) {
    const seen = last.get(put.shardId);
    if (!seen || compareSequence(put.sequenceNumber, seen) > 0) last.set(put.shardId, put.sequenceNumber);
  }
  return last;
}

async function waitForCheckpoints(expected: Map<string, string>): Promise<Map<string, string>> {
  const { config, clients } = stackOf();
  const dynamodb = clients().dynamodb;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const actual = await checkpoints(dynamodb, config.leaseTable);
    const reached = [...expected].every(([shard, sequence]) => {
      const at = actual.get(shard);
      return at !== undefined && /^\d+$/.test(at) && compareSequence(at, sequence) >= 0;
    });
    if (reached || Date.now() > deadline) return actual;
    await sleep(500);
  }
}

test.serial('2,000 events over 100 policies end in the state their fold predicts, checkpointed at the last record', async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const load = generateLoad({ policies: 100, events: 2_000, seed: 7, deleteRatio: 0.2, duplicateRatio: 0.05, staleRatio: 0.05, prefix: 'e2e' });
  const puts = await putRecords(aws.kinesis, config.streamName, load);
  const outcomes = await waitForOutcomes([daemon!.logFile], puts);

  t.is(outcomes.size, load.length, 'every record has an outcome');
  const counts: Record<string, number> = {};
  for (const line of outcomes.values()) counts[line.outcome] = (counts[line.outcome] ?? 0) + 1;
  t.is(
    Object.values(counts).reduce((a, b) => a + b, 0),
    load.length,
    'the outcomes add up to the records delivered',
  );
  t.log('outcomes', counts);
  t.is(counts.rejected ?? 0, 0);
  t.true((counts.duplicate ?? 0) >= load.filter((r) => r.kind === 'duplicate').length, 'producer retries are duplicates');

  // Stream order per policy is sequence-number order within its shard.
  const ordered = load.map((record, i) => ({ record, put: puts[i]! })).sort((a, b) => compareSequence(a.put.sequenceNumber, b.put.sequenceNumber));
  const events: PolicyEvent[] = [];
  const shards = await listShards(aws.kinesis, config.streamName);
  for (const { record, put } of ordered) {
    const decoded = decodeLanded(record, put.shardId, shards, config.managedPathPrefix);
    if (decoded.ok) events.push(decoded.event);
  }
  const expected = foldEvents(events);
  let mismatches = 0;
  for (const policy of expected.values()) {
    const actual = await readManagedPolicy(aws.iam, LOCAL_ACCOUNT_ID, config.managedPathPrefix, policy.name);
    const same = policy.document === undefined ? actual === undefined : actual !== undefined && documentsEqual(actual.document, policy.document);
    if (!same) {
      mismatches++;
      t.log(`${policy.name}: expected ${JSON.stringify(policy.document)}, IAM has ${JSON.stringify(actual?.document)}`);
    }
    if (actual) t.true(actual.versions <= 5, `${policy.name} keeps at most 5 versions`);
  }
  t.is(mismatches, 0, 'IAM equals the fold of the stream');

  const reached = await waitForCheckpoints(lastPerShard(puts));
  for (const [shard, sequence] of lastPerShard(puts)) t.is(reached.get(shard), sequence, `${shard} checkpointed at its last record`);
});

test.serial('100 garbage records are dead-lettered with reasons, the checkpoint moves on, the next good event applies', async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  // Kinesis itself refuses records over 1 MiB, so those never reach the processor.
  const puttable = hostileCorpus.filter((hostile) => hostile.data.length < 1024 * 1024);
  const garbage = puttable.slice(0, 100);
  while (garbage.length < 100) garbage.push(...puttable.slice(0, 100 - garbage.length));
  const good = eventRecord(upsertedEvent({ eventId: 'after-garbage', name: 'after-garbage', document: policyDocument('after-garbage', 1) }));
  const puts = await putRecords(aws.kinesis, config.streamName, [...garbage.map(({ partitionKey, data }) => ({ partitionKey, data })), good]);
  const outcomes = await waitForOutcomes([daemon!.logFile], puts);

  const garbagePuts = puts.slice(0, garbage.length);
  garbagePuts.forEach((put, i) => {
    const line = outcomes.get(sentRecordId(put));
    t.is(line?.outcome, 'rejected', garbage[i]!.name);
    t.is(line?.reason, garbage[i]!.reason, garbage[i]!.name);
  });
  const letters = await aws.dynamodb.send(new ScanCommand({ TableName: config.deadLetterTable }));
  const stored = new Set((letters.Items ?? []).map((item) => item.id?.S));
  t.true(
    garbagePuts.every((put) => stored.has(sentRecordId(put))),
    'each garbage record is in the dead-letter table',
  );
  t.is(outcomes.get(sentRecordId(puts.at(-1)!))?.outcome, 'created', 'the good event after the garbage is applied');
  const reached = await waitForCheckpoints(lastPerShard(puts));
  for (const [shard, sequence] of lastPerShard(puts)) t.true(compareSequence(reached.get(shard) ?? '0', sequence) >= 0, `${shard} checkpoint moved past the garbage`);
});

/** The stream's shards, and for a policy name: the shard its partition key hashes into, and another one. */
async function shardsFor(policy: string) {
  const { config, clients } = stackOf();
  const shards = await listShards(clients().kinesis, config.streamName);
  const own = shards.find((shard) => inHashKeyRange(hashKeyOf(policy), shard))!;
  const other = shards.find((shard) => shard.shardId !== own.shardId)!;
  return { own, other };
}

test.serial("a record put under its policy name with an ExplicitHashKey in another shard's range is rejected as hash-key-mismatch, dead-lettered, and applied once redriven", async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const policy = 'wrong-shard-plain';
  const { own, other } = await shardsFor(policy);
  const upsert = (revision: number) => eventRecord(upsertedEvent({ eventId: `${policy}-r${revision}`, name: policy, revision, document: policyDocument(policy, revision) }));

  const [first] = await putRecords(aws.kinesis, config.streamName, [upsert(1)]);
  t.is(first!.shardId, own.shardId);
  t.is((await waitForOutcomes([daemon!.logFile], [first!])).get(sentRecordId(first!))?.outcome, 'created');

  // Revision 2 routed by an explicit hash key into the other shard: no order with revision 1's shard.
  const stray = upsert(2);
  const put = await aws.kinesis.send(new PutRecordCommand({ StreamName: config.streamName, PartitionKey: policy, ExplicitHashKey: other.startingHashKey.toString(), Data: stray.data }));
  const strayPut = { partitionKey: policy, shardId: put.ShardId!, sequenceNumber: put.SequenceNumber! };
  t.is(strayPut.shardId, other.shardId, 'Kinesis routed it by its explicit hash key');
  const line = (await waitForOutcomes([daemon!.logFile], [strayPut])).get(sentRecordId(strayPut));
  t.is(line?.outcome, 'rejected');
  t.is(line?.reason, 'hash-key-mismatch');

  const store = new DynamoDbDeadLetterStore(aws.dynamodb, config.deadLetterTable);
  const letter = await store.get(sentRecordId(strayPut));
  t.is(letter?.reason, 'hash-key-mismatch');
  t.is(letter?.policyName, policy);
  t.is(letter?.eventId, `${policy}-r2`);
  t.is(letter?.status, 'open');
  const held = await readManagedPolicy(aws.iam, LOCAL_ACCOUNT_ID, config.managedPathPrefix, policy);
  t.true(held !== undefined && documentsEqual(held.document, policyDocument(policy, 1)), 'IAM keeps revision 1');

  // A redrive puts it back under the policy name, routed by its hash: onto the policy's own shard, in order.
  const ops: OpsContext = { config, aws, json: true, confirm: async () => true, close: () => undefined };
  t.is(await deadLettersCommand.run(ops, { yes: true }, ['redrive', letter!.id]), 0);
  const redriven = await store.get(letter!.id);
  t.is(redriven?.status, 'redriven');
  const [redrivenShard, redrivenSequence] = (redriven?.redrivenTo ?? '').split('#');
  t.is(redrivenShard, own.shardId, "the redrive lands on the policy's own shard");
  const again = { partitionKey: policy, shardId: redrivenShard!, sequenceNumber: redrivenSequence! };
  t.is((await waitForOutcomes([daemon!.logFile], [again])).get(sentRecordId(again))?.outcome, 'updated');
  const now = await readManagedPolicy(aws.iam, LOCAL_ACCOUNT_ID, config.managedPathPrefix, policy);
  t.true(now !== undefined && documentsEqual(now.document, policyDocument(policy, 2)), 'IAM holds revision 2 after the redrive');
});

test.serial('a KPL user record whose explicit hash key lies in the shard range but whose partition key hashes elsewhere is rejected as hash-key-mismatch; its neighbours are applied', async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const policy = 'wrong-shard-kpl';
  const { other } = await shardsFor(policy);
  // A neighbour whose partition key hashes into the other shard: the aggregate's rightful content there.
  const neighbour = Array.from({ length: 50 }, (_, i) => `wrong-shard-kpl-neighbour-${i}`).find((name) => inHashKeyRange(hashKeyOf(name), other))!;
  const userRecord = (name: string) => {
    const { partitionKey, data } = eventRecord(upsertedEvent({ eventId: `${name}-1`, name, document: policyDocument(name, 1) }));
    return { partitionKey, data };
  };
  // The stray's explicit hash key routes it, for the KCL, into the other shard.
  const users: KeyedUserRecord[] = [userRecord(neighbour), { ...userRecord(policy), explicitHashKey: other.startingHashKey }];
  const put = await aws.kinesis.send(
    new PutRecordCommand({ StreamName: config.streamName, PartitionKey: neighbour, ExplicitHashKey: other.startingHashKey.toString(), Data: aggregateWithHashKeys(users) }),
  );
  t.is(put.ShardId, other.shardId);
  const puts = users.map((user, sub) => ({ partitionKey: user.partitionKey, shardId: put.ShardId!, sequenceNumber: put.SequenceNumber!, subSequenceNumber: sub }));
  const outcomes = await waitForOutcomes([daemon!.logFile], puts);
  t.deepEqual(
    puts.map((p) => [outcomes.get(sentRecordId(p))?.outcome, outcomes.get(sentRecordId(p))?.reason]),
    [
      ['created', undefined],
      ['rejected', 'hash-key-mismatch'],
    ],
  );
  const letter = await new DynamoDbDeadLetterStore(aws.dynamodb, config.deadLetterTable).get(sentRecordId(puts[1]!));
  t.is(letter?.reason, 'hash-key-mismatch');
  t.is(letter?.subSequenceNumber, 1);
  t.is(await readManagedPolicy(aws.iam, LOCAL_ACCOUNT_ID, config.managedPathPrefix, policy), undefined, 'not applied');
});
