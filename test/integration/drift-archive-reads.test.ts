// What a drift audit reads from DynamoDB, as DynamoDB Local counts it
// (ReturnConsumedCapacity): its cost follows the policies, not the events.
// Archived eventIds (one item per applied event that left its policy's
// window, kept for days) must not be read by the audit's scan of the ledger.
import test from 'ava';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { DriftAudit } from '../../src/ops/drift-audit.js';
import { meterCapacity } from '../../tools/harness/consumed-capacity.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { stackPipeline } from '../support/stack-pipeline.js';
import { doc, streamRecords } from '../support/pipeline.js';

const stackOf = useTestStack(test, { shards: 1 });

const POLICIES = 30;
/** Archived eventIds per policy: 100 times the policies in all, as a busy stream leaves them within the archive's days. */
const ARCHIVED_PER_POLICY = 100;
const names = Array.from({ length: POLICIES }, (_, i) => `archive-reads-${i}`);

function upsert(name: string) {
  const body = { specVersion: '1', eventId: `e-${name}`, type: 'policy.upserted', policy: { name }, document: doc(name) };
  return { partitionKey: name, data: Buffer.from(JSON.stringify(body)) };
}

test.serial.before(async () => {
  const { config, clients } = stackOf();
  const aws = clients();
  const pipeline = stackPipeline(config, aws, 'archive-reads-worker');
  const settled = await pipeline.processBatch(streamRecords(names.map(upsert)));
  if (!settled.every((s) => s.outcome === 'created')) throw new Error(`not all created: ${JSON.stringify(settled.map((s) => s.outcome))}`);
});

test.serial('a drift audit reads no more from DynamoDB with 100 archived eventIds per policy than with none (within 1.2x)', async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const meter = meterCapacity(aws.dynamodb);
  const ledger = ledgerFromConfig(aws.dynamodb, config);
  const audit = () => new DriftAudit({ iam: aws.iam, ledger, config: { ...config, iamVisibilityWindowMs: 0 } }).run();

  meter.reset();
  const before = await audit();
  const unitsWithout = meter.totalReadUnits();
  t.is(before.ledgerEntries, POLICIES);
  t.deepEqual(before.drift, []);
  t.true(unitsWithout > 0, 'DynamoDB reports the read units');

  // The archive filled through the ledger's own path, as completions fill it.
  for (const name of names) {
    const events = Array.from({ length: ARCHIVED_PER_POLICY }, (_, i) => ({ eventId: `old-${name}-${i}`, payloadHash: `hash-${i}` }));
    await ledger.archiveEvents(name, 0, events);
  }
  // Still there for the producer retries it is kept for.
  const entry = await ledger.get(names[0]!);
  const found = await ledger.archivedEvents(names[0]!, 0, [`old-${names[0]}-7`, 'never-applied'], entry?.position);
  t.deepEqual(found, [{ eventId: `old-${names[0]}-7`, payloadHash: 'hash-7' }]);

  meter.reset();
  const after = await audit();
  const unitsWith = meter.totalReadUnits();
  t.is(after.ledgerEntries, POLICIES);
  t.deepEqual(after.drift, []);
  const ratio = unitsWith / unitsWithout;
  t.log(
    `audit read units: ${unitsWithout} with no archived eventIds, ${unitsWith} with ${POLICIES * ARCHIVED_PER_POLICY} (x${ratio.toFixed(2)}); per table: ${JSON.stringify(Object.fromEntries(meter.readUnits))}`,
  );
  t.true(ratio <= 1.2, `read units x${ratio.toFixed(2)}`);
});
