// The operator tool against the real daemon on the local stack: produce,
// replay (duplicates only; --reapply repairs drift), and a dead letter
// redriven after its cause was fixed. The tool runs as operators run it: a
// separate process, configured by the environment.
import test from 'ava';
import { CreatePolicyCommand, CreatePolicyVersionCommand, DeletePolicyCommand, DeletePolicyVersionCommand, ListPolicyVersionsCommand, UntagPolicyCommand } from '@aws-sdk/client-iam';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { compareSequence } from '../../src/ledger/sequence.js';
import { OWNER_TAG } from '../../src/contract/ownership.js';
import type { Drift } from '../../src/ops/drift-audit.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { projectRoot } from '../../src/config/paths.js';
import { listShards } from '../../src/stream/shard-tree.js';
import { checkInvariants, summaryLine } from '../../tools/oracle/invariants.js';
import { policyDocument } from '../../src/ops/load.js';
import type { OutcomeLine } from '../../tools/oracle/outcome-log.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import type { PutResult } from '../../src/ops/producer.js';
import { readSendLog } from '../../src/ops/send-log.js';
import type { LoggedRecord } from '../../src/ops/send-log.js';
import { readManagedPolicy } from '../support/iam-state.js';
import { checkpoints } from '../support/leases.js';
import { outcomesIn, startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { outcomeRecordId, sentRecordId } from '../../tools/oracle/outcome-log.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';

const run = promisify(execFile);
let testStack: TestStack | undefined;
const daemons: TestDaemon[] = [];
let sent: LoggedRecord[] = [];
const stackOf = () => testStack!;

async function ips(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [join(projectRoot(), 'dist', 'ops', 'cli.js'), ...args], {
    env: { ...process.env, ...stackOf().stack.env },
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** `ips drift --json`: its exit code and report (exit 1 means drift, not a failure). */
async function drift(settings: Record<string, string>): Promise<{ code: number; report: { drift: Drift[]; notJudged: { policy: string; why: string }[] } }> {
  const args = [join(projectRoot(), 'dist', 'ops', 'cli.js'), 'drift', '--json'];
  const env = { ...process.env, ...stackOf().stack.env, ...settings };
  try {
    return { code: 0, report: JSON.parse((await run(process.execPath, args, { env, maxBuffer: 64 * 1024 * 1024 })).stdout) };
  } catch (error) {
    const failed = error as { code: number; stdout: string };
    if (typeof failed.code !== 'number' || !failed.stdout) throw error;
    return { code: failed.code, report: JSON.parse(failed.stdout) };
  }
}

const arnOf = (name: string) => `arn:aws:iam::${LOCAL_ACCOUNT_ID}:policy${stackOf().config.managedPathPrefix}${name}`;

async function snapshot(names: string[]) {
  const iam = stackOf().clients().iam;
  const state = new Map<string, unknown>();
  for (const name of names) state.set(name, await readManagedPolicy(iam, LOCAL_ACCOUNT_ID, stackOf().config.managedPathPrefix, name));
  return state;
}

/** Outcome lines written after `since` for the given records, once every one has one. */
async function outcomesSince(since: number, puts: PutResult[], timeoutMs = 180_000): Promise<Map<string, OutcomeLine>> {
  const wanted = new Set(puts.map(sentRecordId));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = new Map<string, OutcomeLine>();
    for (const line of outcomesIn(daemons.map((d) => d.logFile))) {
      const key = outcomeRecordId(line);
      if (line.time >= since && wanted.has(key)) found.set(key, line);
    }
    if (found.size === wanted.size) return found;
    if (Date.now() > deadline) throw new Error(`only ${found.size} of ${wanted.size} records were replayed after ${timeoutMs} ms`);
    await sleep(500);
  }
}

test.before(async () => {
  testStack = await startTestStack({ shards: 2 });
  daemons.push(startTestDaemon(testStack, 'ops-worker-1'));
});
test.after.always(async () => {
  await Promise.all(daemons.map((d) => d.stop()));
  await testStack?.stack.stop();
});

test.serial('produce puts the events it logs; the processor applies them', async (t) => {
  const out = join(stackOf().stack.dir, 'sent.jsonl');
  const { stdout } = await ips('produce', '--policies', '12', '--events', '240', '--seed', '7', '--prefix', 'ops', '--duplicate-ratio', '0.05', '--rate', '2000', '--out', out, '--json');
  const report = JSON.parse(stdout) as { records: number };
  sent = readSendLog(out);
  t.is(report.records, 240);
  t.is(sent.length, 240);
  await waitForOutcomes(
    daemons.map((d) => d.logFile),
    sent.map((s) => s.put),
  );
  const status = JSON.parse((await ips('status', '--json')).stdout) as { managedPolicies: number; ledgerEntries: number; shards: { owner: string }[] };
  t.is(status.managedPolicies, new Set(sent.map((s) => s.record.policy)).size);
  t.is(status.ledgerEntries, status.managedPolicies);
  t.true(status.shards.every((shard) => shard.owner !== '(no lease)'));
});

test.serial('replay from TRIM_HORIZON with the workers stopped: every record is a duplicate, IAM is unchanged', async (t) => {
  const names = [...new Set(sent.map((s) => s.record.policy))];
  const before = await snapshot(names);
  await daemons[0]!.stop();
  const refusedWithoutYes = await ips('replay', '--trim-horizon', '--liveness-ms', '1500').catch((error: { code: number; stderr: string }) => error);
  t.is((refusedWithoutYes as { code: number }).code, 1, 'no terminal to confirm on: refused');

  // Per shard: to replay record S itself, the checkpoint becomes the record before S.
  const shardId = sent[0]!.put.shardId;
  const inShard = sent
    .map((s) => s.put)
    .filter((p) => p.shardId === shardId)
    .sort((a, b) => compareSequence(a.sequenceNumber, b.sequenceNumber));
  const perShard = JSON.parse((await ips('replay', '--shard', `${shardId}=${inShard[5]!.sequenceNumber}`, '--yes', '--liveness-ms', '1500', '--json')).stdout) as {
    resets: { shard: string; to: string }[];
  };
  t.deepEqual(
    perShard.resets.map((r) => [r.shard, r.to]),
    [[shardId, inShard[4]!.sequenceNumber]],
  );
  t.is((await checkpoints(stackOf().clients().dynamodb, stackOf().config.leaseTable)).get(shardId), inShard[4]!.sequenceNumber);
  // By time: a time after the last record replays nothing; one before the first replays each shard from its start.
  const later = JSON.parse((await ips('replay', '--at', new Date().toISOString(), '--yes', '--liveness-ms', '0', '--json')).stdout) as { resets: unknown[] };
  t.deepEqual(later.resets, []);
  const past = JSON.parse((await ips('replay', '--at', new Date(Date.now() - 3_600_000).toISOString(), '--yes', '--liveness-ms', '0', '--json')).stdout) as { resets: { to: string }[] };
  t.deepEqual(
    past.resets.map((r) => r.to),
    ['TRIM_HORIZON', 'TRIM_HORIZON'],
  );

  const since = Date.now();
  const { stdout } = await ips('replay', '--trim-horizon', '--yes', '--liveness-ms', '1500', '--json');
  t.is((JSON.parse(stdout) as { resets: unknown[] }).resets.length, 2);
  daemons.push(startTestDaemon(stackOf(), 'ops-worker-2'));
  const replayed = await outcomesSince(
    since,
    sent.map((s) => s.put),
  );
  const kinds = new Set([...replayed.values()].map((line) => line.outcome));
  t.deepEqual([...kinds], ['duplicate']);
  t.deepEqual(await snapshot(names), before);
});

test.serial('replay --reapply while a worker runs (--force): a policy deleted out of band is back, drift is repaired', async (t) => {
  const iam = stackOf().clients().iam;
  const names = [...new Set(sent.map((s) => s.record.policy))];
  const [deleted, drifted] = [names[0]!, names[1]!];
  const versions = await iam.send(new ListPolicyVersionsCommand({ PolicyArn: arnOf(deleted) }));
  for (const version of versions.Versions ?? []) {
    if (!version.IsDefaultVersion) await iam.send(new DeletePolicyVersionCommand({ PolicyArn: arnOf(deleted), VersionId: version.VersionId }));
  }
  await iam.send(new DeletePolicyCommand({ PolicyArn: arnOf(deleted) }));
  await iam.send(new CreatePolicyVersionCommand({ PolicyArn: arnOf(drifted), PolicyDocument: JSON.stringify(policyDocument('edited-by-hand', 99)), SetAsDefault: true }));

  const live = await ips('replay', '--trim-horizon', '--reapply', '--yes', '--liveness-ms', '2500').catch((error: { code: number; stderr: string }) => error);
  t.is((live as { code: number }).code, 1, 'refuses while a live worker holds the leases');
  t.regex((live as { stderr: string }).stderr, /live workers hold/);

  const since = Date.now();
  await ips('replay', '--trim-horizon', '--reapply', '--force', '--yes', '--liveness-ms', '2500');
  await outcomesSince(
    since,
    sent.map((s) => s.put),
  );
  const report = await checkInvariants({
    shards: await listShards(stackOf().clients().kinesis, stackOf().config.streamName),
    sent,
    // This replay's outcomes only: the deleted policy was created once before it.
    outcomes: outcomesIn(daemons.map((d) => d.logFile)).filter((line) => line.time >= since),
    iam,
    accountId: LOCAL_ACCOUNT_ID,
    managedPathPrefix: stackOf().config.managedPathPrefix,
    appName: stackOf().config.appName,
  });
  t.log(summaryLine(t.title, report));
  t.deepEqual(report.violations, [], 'IAM equals the fold of the stream again');
  t.truthy(await readManagedPolicy(iam, LOCAL_ACCOUNT_ID, stackOf().config.managedPathPrefix, deleted), 'the deleted policy is back');
});

test.serial('a dead letter redriven after its cause is fixed is applied', async (t) => {
  const { config } = stackOf();
  const aws = stackOf().clients();
  // Someone else's policy holds the name: the processor refuses to take it over.
  await aws.iam.send(new CreatePolicyCommand({ PolicyName: 'ops-foreign', Path: config.managedPathPrefix, PolicyDocument: JSON.stringify(policyDocument('theirs', 1)) }));
  const event = upsertedEvent({ eventId: 'ops-foreign-1', name: 'ops-foreign', document: policyDocument('ours', 1) });
  const [put] = await putRecords(aws.kinesis, config.streamName, [eventRecord(event)]);
  const outcome = (
    await waitForOutcomes(
      daemons.map((d) => d.logFile),
      [put!],
    )
  ).get(sentRecordId(put!));
  t.is(outcome?.outcome, 'rejected');
  t.is(outcome?.reason, 'not-owned');

  const letters = JSON.parse((await ips('dead-letters', 'list', '--reason', 'not-owned', '--json')).stdout) as { id: string }[];
  t.deepEqual(
    letters.map((l) => l.id),
    [sentRecordId(put!)],
  );

  // The owner of the foreign policy retires it; the operator redrives the letter.
  await aws.iam.send(new DeletePolicyCommand({ PolicyArn: arnOf('ops-foreign') }));
  const [redriven] = JSON.parse((await ips('dead-letters', 'redrive', letters[0]!.id, '--yes', '--json')).stdout) as PutResult[];
  const after = (
    await waitForOutcomes(
      daemons.map((d) => d.logFile),
      [redriven!],
    )
  ).get(sentRecordId(redriven!));
  t.is(after?.outcome, 'created');
  const policy = await readManagedPolicy(aws.iam, LOCAL_ACCOUNT_ID, config.managedPathPrefix, 'ops-foreign');
  t.deepEqual(policy?.document, policyDocument('ours', 1));
  const shown = JSON.parse((await ips('dead-letters', 'show', letters[0]!.id, '--json')).stdout) as { status: string; redrivenTo: string };
  t.is(shown.status, 'redriven');
  t.is(shown.redrivenTo, sentRecordId(redriven!));
});

test.serial('replay --reapply does not hide ownership drift: a policy whose managed-by tag was removed by hand is still reported, with one dead letter per replayed record', async (t) => {
  const iam = stackOf().clients().iam;
  const names = [...new Set(sent.map((s) => s.record.policy))];
  const untagged = names[2]!;
  await iam.send(new UntagPolicyCommand({ PolicyArn: arnOf(untagged), TagKeys: [OWNER_TAG] }));
  const now = { IPS_IAM_VISIBILITY_WINDOW_MS: '0' };
  const before = await drift(now);
  t.is(before.code, 1);
  t.deepEqual(
    before.report.drift.map((d) => [d.policy, d.kinds]),
    [[untagged, ['ownership-tag']]],
  );

  const since = Date.now();
  await ips('replay', '--trim-horizon', '--reapply', '--force', '--yes', '--liveness-ms', '2500');
  const replayed = await outcomesSince(
    since,
    sent.map((s) => s.put),
  );
  const ofUntagged = sent.filter((s) => s.record.policy === untagged).map((s) => replayed.get(sentRecordId(s.put))!);
  const rejected = ofUntagged.filter((line) => line.outcome === 'rejected');
  t.true(rejected.length > 0);
  t.true(rejected.every((line) => line.reason === 'not-owned'));
  t.true(
    ofUntagged.every((line) => ['rejected', 'duplicate', 'stale', 'superseded'].includes(line.outcome)),
    'the processor leaves a policy without its tag alone',
  );

  // One dead letter per rejected record, none more.
  const letters = JSON.parse((await ips('dead-letters', 'list', '--reason', 'not-owned', '--json')).stdout) as { id: string; policy: string }[];
  const ids = letters
    .filter((letter) => letter.policy === untagged)
    .map((letter) => letter.id)
    .sort();
  t.deepEqual(ids, rejected.map(outcomeRecordId).sort());
  t.log(`${untagged}: ${ofUntagged.length} records replayed, ${rejected.length} rejected not-owned, ${ids.length} dead letters`);

  // Still reported: the DriftFound alarm does not clear.
  const after = await drift(now);
  t.is(after.code, 1, JSON.stringify(after.report.notJudged));
  t.deepEqual(
    after.report.drift.map((d) => [d.policy, d.kinds]),
    [[untagged, ['ownership-tag']]],
  );
  t.false(after.report.notJudged.some((n) => n.policy === untagged));
});
