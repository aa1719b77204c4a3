// Through the real daemon: a record's verdict depends on the event and the
// ledger's state only. A revision the batch refused does not make a later one
// stale; and a replay gives each record its live verdict (or `duplicate`, for
// a record the ledger's position already passed), with no new dead letter.
import test from 'ava';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../src/config/paths.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import type { PutResult } from '../../src/ops/producer.js';
import { policyDocument } from '../../src/ops/load.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { outcomesIn, startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import type { OutcomeLine } from '../../tools/oracle/outcome-log.js';
import { outcomeRecordId, sentRecordId } from '../../tools/oracle/outcome-log.js';
import { readManagedPolicy } from '../support/iam-state.js';

const run = promisify(execFile);
let testStack: TestStack | undefined;
let daemon: TestDaemon | undefined;
const stackOf = () => testStack!;

async function ips(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [join(projectRoot(), 'dist', 'ops', 'cli.js'), ...args], { env: { ...process.env, ...stackOf().stack.env }, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

async function put(...events: Parameters<typeof upsertedEvent>[0][]): Promise<PutResult[]> {
  return putRecords(
    stackOf().clients().kinesis,
    stackOf().config.streamName,
    events.map((event) => eventRecord(upsertedEvent(event))),
  );
}

async function settled(puts: PutResult[]): Promise<OutcomeLine[]> {
  const outcomes = await waitForOutcomes([daemon!.logFile], puts);
  return puts.map((p) => outcomes.get(sentRecordId(p))!);
}

/** The outcome, with the reason of a rejection. */
const verdict = (line: OutcomeLine) => (line.outcome === 'rejected' ? `rejected:${line.reason}` : line.outcome);

async function letters(): Promise<{ id: string; reason: string; status: string }[]> {
  return JSON.parse(await ips('dead-letters', 'list', '--json')) as { id: string; reason: string; status: string }[];
}

test.before(async () => {
  testStack = await startTestStack({ shards: 1 });
  daemon = startTestDaemon(testStack, 'verdicts-worker');
});
test.after.always(async () => {
  await daemon?.stop();
  await testStack?.stack.stop();
});

const all: PutResult[] = [];

test.serial('revision 4 after a refused revision 5 in one PutRecords is applied', async (t) => {
  const name = 'verdict-hw';
  const first = await put({ eventId: 'hw-r3', name, revision: 3, document: policyDocument(name, 3) });
  t.is((await settled(first))[0]!.outcome, 'created');
  const pair = await put(
    { eventId: 'hw-r5', name, path: '/stream-managed/elsewhere/', revision: 5, document: policyDocument(name, 5) },
    { eventId: 'hw-r4', name, revision: 4, document: policyDocument(name, 4) },
  );
  t.deepEqual((await settled(pair)).map(verdict), ['rejected:path-conflict', 'updated']);
  const policy = await readManagedPolicy(stackOf().clients().iam, LOCAL_ACCOUNT_ID, stackOf().config.managedPathPrefix, name);
  t.deepEqual(policy?.document, policyDocument(name, 4), "IAM holds revision 4's document");
  all.push(...first, ...pair);
});

test.serial('an eventId re-sent with another payload is event-id-conflict live and in a replay; the replay leaves no new dead letter', async (t) => {
  const name = 'verdict-reuse';
  const applied = await put({ eventId: 'reuse-1', name, revision: 3, document: policyDocument(name, 1) });
  t.is((await settled(applied))[0]!.outcome, 'created');
  // The same eventId with another payload and the same revision; a late revision; a producer retry.
  const reused = await put({ eventId: 'reuse-1', name, revision: 3, document: policyDocument(name, 2) });
  const late = await put({ eventId: 'reuse-late', name, revision: 2, document: policyDocument(name, 9) });
  const retry = await put({ eventId: 'reuse-1', name, revision: 3, document: policyDocument(name, 1) });
  const live = [...(await settled(reused)), ...(await settled(late)), ...(await settled(retry))].map(verdict);
  t.deepEqual(live, ['rejected:event-id-conflict', 'stale', 'duplicate']);
  all.push(...applied, ...reused, ...late, ...retry);

  const liveVerdicts = new Map((await settled(all)).map((line) => [outcomeRecordId(line), verdict(line)]));
  const lettersBefore = await letters();
  t.deepEqual(lettersBefore.map((letter) => letter.reason).sort(), ['event-id-conflict', 'path-conflict']);

  // Replay every record while the worker runs, as an operator would after an incident.
  const since = Date.now();
  await ips('replay', '--trim-horizon', '--force', '--yes', '--liveness-ms', '2500');
  const wanted = new Set(all.map(sentRecordId));
  let replayed: OutcomeLine[] = [];
  for (let waited = 0; replayed.length < wanted.size; waited += 500) {
    if (waited > 180_000) throw new Error(`only ${replayed.length} of ${wanted.size} records were replayed`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const latest = new Map(
      outcomesIn([daemon!.logFile])
        .filter((line) => line.time >= since && wanted.has(outcomeRecordId(line)))
        .map((line) => [outcomeRecordId(line), line]),
    );
    replayed = [...latest.values()];
  }
  for (const line of replayed) {
    const before = liveVerdicts.get(outcomeRecordId(line))!;
    // A record the ledger's position passed is a duplicate; any other gets its live verdict again.
    t.true(verdict(line) === 'duplicate' || verdict(line) === before, `${line.eventId}: live ${before}, replayed ${verdict(line)}`);
  }
  const replayedReuse = replayed.find((line) => outcomeRecordId(line) === sentRecordId(reused[0]!))!;
  t.is(verdict(replayedReuse), 'rejected:event-id-conflict', 'the same verdict as live, not stale');
  t.deepEqual(await letters(), lettersBefore, 'no new dead letter, none reopened');
  const policy = await readManagedPolicy(stackOf().clients().iam, LOCAL_ACCOUNT_ID, stackOf().config.managedPathPrefix, name);
  t.deepEqual(policy?.document, policyDocument(name, 1));
});
