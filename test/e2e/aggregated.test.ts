// KPL-aggregated records end to end: aggregates made by awslabs' own
// aggregation library (aws-kinesis-agg), put into the emulated stream,
// deaggregated by the real MultiLangDaemon and settled by the record
// processor, one outcome per user record.
import test from 'ava';
import { DynamoDbDeadLetterStore } from '../../src/deadletter/dead-letter-store.js';
import { documentsEqual } from '../../src/iam/document.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { aggregateRecord, putAggregate } from '../../src/ops/aggregate.js';
import type { UserRecord } from '../../src/ops/aggregate.js';
import { sentRecordId } from '../../tools/oracle/outcome-log.js';
import { policyDocument } from '../../src/ops/load.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import { readManagedPolicy } from '../support/iam-state.js';
import { outcomesIn, startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';

let testStack: TestStack | undefined;
let daemon: TestDaemon | undefined;
const stackOf = () => testStack!;
test.before(async () => {
  // One shard: every user record of an aggregate belongs to it, whatever its policy.
  testStack = await startTestStack({ shards: 1 });
  daemon = startTestDaemon(testStack);
});
test.after.always(async () => {
  await daemon?.stop();
  await testStack?.stack.stop();
});

function upsert(policy: string, eventId: string, variant: number, revision?: number): UserRecord {
  return eventRecord(upsertedEvent({ eventId, name: policy, document: policyDocument(policy, variant), ...(revision !== undefined ? { revision } : {}) }));
}

async function settle(records: UserRecord[]) {
  const { config, clients } = stackOf();
  const puts = await putAggregate(clients().kinesis, config.streamName, records);
  const outcomes = await waitForOutcomes([daemon!.logFile], puts);
  return { puts, outcomes: puts.map((put) => outcomes.get(sentRecordId(put))!) };
}

test.serial("one policy's successive revisions in one aggregate: the last is applied, the others superseded", async (t) => {
  const { puts, outcomes } = await settle([upsert('agg-rev', 'agg-rev-1', 1, 1), upsert('agg-rev', 'agg-rev-2', 2, 2), upsert('agg-rev', 'agg-rev-3', 3, 3)]);
  t.is(new Set(puts.map((put) => put.sequenceNumber)).size, 1, 'one Kinesis record');
  t.deepEqual(
    puts.map((put) => put.subSequenceNumber),
    [0, 1, 2],
  );
  t.deepEqual(
    outcomes.map((line) => line.outcome),
    ['superseded', 'superseded', 'created'],
  );
  t.deepEqual(
    outcomes.map((line) => line.subSequenceNumber),
    [0, 1, 2],
    'each outcome line names its user record',
  );
  const policy = await readManagedPolicy(stackOf().clients().iam, LOCAL_ACCOUNT_ID, stackOf().config.managedPathPrefix, 'agg-rev');
  t.true(policy !== undefined && documentsEqual(policy.document, policyDocument('agg-rev', 3)));
});

test.serial('many policies in one aggregate: each is applied', async (t) => {
  const records = Array.from({ length: 12 }, (_, i) => upsert(`agg-many-${i}`, `agg-many-e${i}`, i));
  const { outcomes } = await settle(records);
  t.deepEqual(
    outcomes.map((line) => line.outcome),
    records.map(() => 'created'),
  );
});

test.serial('bad and good user records in one aggregate: each bad one is its own dead letter, the good ones are applied', async (t) => {
  const { config, clients } = stackOf();
  const bad1: UserRecord = { partitionKey: 'agg-bad', data: Buffer.from('{"specVersion":"1", not json') };
  const bad2: UserRecord = { partitionKey: 'agg-bad', data: Buffer.from('[1,2,3]') };
  const { puts, outcomes } = await settle([upsert('agg-good-1', 'agg-good-e1', 1), bad1, upsert('agg-good-2', 'agg-good-e2', 2), bad2]);
  t.deepEqual(
    outcomes.map((line) => [line.outcome, line.reason]),
    [
      ['created', undefined],
      ['rejected', 'invalid-json'],
      ['created', undefined],
      ['rejected', 'not-an-object'],
    ],
  );
  const letters = await new DynamoDbDeadLetterStore(clients().dynamodb, config.deadLetterTable).list();
  const fromThisAggregate = letters.filter((letter) => letter.sequenceNumber === puts[0]!.sequenceNumber);
  t.deepEqual(fromThisAggregate.map((letter) => letter.id).sort(), [sentRecordId(puts[1]!), sentRecordId(puts[3]!)].sort(), 'two letters, one per bad user record');
  t.deepEqual(fromThisAggregate.map((letter) => letter.subSequenceNumber).sort(), [1, 3]);
  t.log(fromThisAggregate.map((letter) => `${letter.id} ${letter.reason}`).join('\n'));
});

test.serial('the same aggregate put twice: the second one is all duplicates, nothing applied twice', async (t) => {
  const { config, clients } = stackOf();
  const records = [upsert('agg-twice-1', 'agg-twice-e1', 1), upsert('agg-twice-2', 'agg-twice-e2', 1), upsert('agg-twice-1', 'agg-twice-e3', 2)];
  const first = await settle(records);
  t.deepEqual(
    first.outcomes.map((line) => line.outcome),
    ['superseded', 'created', 'created'],
  );
  const [again] = await putRecords(clients().kinesis, config.streamName, [aggregateRecord(records)]);
  const secondPuts = records.map((record, sub) => ({ ...again!, partitionKey: record.partitionKey, subSequenceNumber: sub }));
  const second = await waitForOutcomes([daemon!.logFile], secondPuts);
  t.deepEqual(
    secondPuts.map((put) => second.get(sentRecordId(put))?.outcome),
    ['duplicate', 'duplicate', 'duplicate'],
  );
  const effects = outcomesIn([daemon!.logFile]).filter((line) => line.partitionKey.startsWith('agg-twice') && ['created', 'updated'].includes(line.outcome));
  t.is(effects.length, 2, 'one effect per policy in all');
});
