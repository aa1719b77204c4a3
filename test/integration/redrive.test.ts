// A redrive puts a letter back at the stream's tail, after everything already
// there: a letter whose policy has had an event applied since it was stored
// would roll the policy back, so it is held back unless forced.
import test from 'ava';
import { DynamoDbDeadLetterStore } from '../../src/deadletter/dead-letter-store.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { deadLettersCommand } from '../../src/ops/commands/dead-letters.js';
import type { OpsContext } from '../../src/ops/cli/context.js';
import { eventRecord } from '../../src/ops/producer.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';

const stackOf = useTestStack(test, { shards: 1 });

function opsContext(): OpsContext {
  const { config, clients } = stackOf();
  return { config, aws: clients(), json: true, confirm: async () => true, close: () => undefined };
}

test.serial('a letter whose policy changed since it was stored is held back; --force redrives it', async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const store = new DynamoDbDeadLetterStore(aws.dynamodb, config.deadLetterTable);
  const ledger = ledgerFromConfig(aws.dynamodb, { ...config, claimTtlMs: 60_000 });
  const old = eventRecord(upsertedEvent({ eventId: 'redrive-old', name: 'redrive-1', document: { Version: '2012-10-17', Statement: [] } }));
  await store.store({
    record: { shardId: 'shardId-000000000000', sequenceNumber: '100', subSequenceNumber: 0 },
    partitionKey: 'redrive-1',
    reason: 'not-owned',
    detail: 'x',
    data: old.data,
    eventId: 'redrive-old',
    policyName: 'redrive-1',
  });
  await new Promise((resolve) => setTimeout(resolve, 20));
  // A later event for the policy is applied after the letter was stored.
  const claim = await ledger.claim({
    policy: 'redrive-1',
    record: { shardId: 'shardId-000000000000', sequenceNumber: '200', subSequenceNumber: 0 },
    eventId: 'redrive-new',
    payloadHash: 'h',
    owner: 'w',
    epoch: 0,
  });
  if (!claim.won) throw new Error('claim refused');
  await ledger.complete({
    policy: 'redrive-1',
    token: claim.token,
    epoch: 0,
    position: { shardId: 'shardId-000000000000', sequenceNumber: '200', subSequenceNumber: 0, lineage: [] },
    events: [],
    state: 'present',
    outcome: 'updated',
  });

  const id = 'shardId-000000000000#100#0';
  t.is(await deadLettersCommand.run(opsContext(), { yes: true }, ['redrive', id]), 1, 'nothing redriven');
  t.is((await store.get(id))?.status, 'open');
  t.is(await deadLettersCommand.run(opsContext(), { yes: true, force: true }, ['redrive', id]), 0);
  t.is((await store.get(id))?.status, 'redriven');
});

test.serial('a redelivered record finds its letter and leaves its status as it is', async (t) => {
  const { config, clients } = stackOf();
  const store = new DynamoDbDeadLetterStore(clients().dynamodb, config.deadLetterTable);
  const letter = { record: { shardId: 'shardId-000000000000', sequenceNumber: '300', subSequenceNumber: 2 }, partitionKey: 'p', reason: 'invalid-json' as const, detail: 'x', data: Buffer.from('{') };
  await store.store(letter);
  await store.markRedriven('shardId-000000000000#300#2', { shardId: 'shardId-000000000000', sequenceNumber: '400', subSequenceNumber: 0 });
  await store.store(letter); // the same record delivered again after a restart or a replay
  t.is((await store.get('shardId-000000000000#300#2'))?.status, 'redriven');
});
