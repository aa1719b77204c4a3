// Taking over policies made out of band, and giving them back, against the
// real daemon on the local stack: `ips adopt` tags a policy under the managed
// path and records it in the ledger, so that an event for it, which was
// `not-owned` before, is then an update; `ips release` gives it back, after
// which the processor leaves it alone again. Both run twice (idempotent), and
// neither ever touches a policy outside the managed path. The tool runs as
// operators run it: a separate process, configured by the environment.
import test from 'ava';
import { CreatePolicyCommand, GetPolicyCommand, GetPolicyVersionCommand } from '@aws-sdk/client-iam';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../src/config/paths.js';
import { OWNER_TAG } from '../../src/contract/ownership.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { decodePolicyVersionDocument, documentHash } from '../../src/iam/document.js';
import { policyArn } from '../../src/iam/policies.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import { startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';

const exec = promisify(execFile);
let testStack: TestStack | undefined;
let daemon: TestDaemon | undefined;
const stackOf = () => testStack!;

/** `ips <args>` as a separate process: exit code, stdout, stderr (a non-zero exit is a result, not a throw). */
async function ips(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    // IAM's visibility window at 0: the drift audit judges a policy changed a moment ago instead of leaving it as settling.
    const env = { ...process.env, ...stackOf().stack.env, IPS_IAM_VISIBILITY_WINDOW_MS: '0' };
    const { stdout, stderr } = await exec(process.execPath, [join(projectRoot(), 'dist', 'ops', 'cli.js'), ...args], { env, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: unknown; stdout: string; stderr: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** The pino lines of a run's stderr with the given message. */
function auditLines(stderr: string, msg: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === msg);
}

const doc = (action: string) => ({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: action, Resource: 'arn:aws:s3:::reports/*' }] });

async function createOutOfBand(name: string, path: string, document: object, tags: Record<string, string> = {}): Promise<string> {
  const created = await stackOf()
    .clients()
    .iam.send(new CreatePolicyCommand({ PolicyName: name, Path: path, PolicyDocument: JSON.stringify(document), Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }));
  return created.Policy!.Arn!;
}

async function iamPolicy(arn: string): Promise<{ tags: Record<string, string>; document: unknown }> {
  const iam = stackOf().clients().iam;
  const policy = (await iam.send(new GetPolicyCommand({ PolicyArn: arn }))).Policy!;
  const version = await iam.send(new GetPolicyVersionCommand({ PolicyArn: arn, VersionId: policy.DefaultVersionId }));
  return { tags: Object.fromEntries((policy.Tags ?? []).map((tag) => [tag.Key!, tag.Value!])), document: decodePolicyVersionDocument(version.PolicyVersion!.Document!) };
}

async function outcomeOf(event: Parameters<typeof upsertedEvent>[0]) {
  const puts = await putRecords(stackOf().clients().kinesis, stackOf().config.streamName, [eventRecord(upsertedEvent(event))]);
  const outcomes = await waitForOutcomes([daemon!.logFile], puts);
  return [...outcomes.values()][0]!;
}

test.before(async () => {
  testStack = await startTestStack({ shards: 1 });
  daemon = startTestDaemon(testStack, 'adopt-worker');
});
test.after.always(async () => {
  await daemon?.stop();
  await testStack?.stack.stop();
});

test.serial('a policy made out of band under the managed path is not-owned before ips adopt, and an event for it afterwards is updated', async (t) => {
  const { config } = stackOf();
  const name = 'legacy-reports-read';
  const arn = await createOutOfBand(name, config.managedPathPrefix, doc('s3:GetObject'), { team: 'reports' });

  const before = await outcomeOf({ eventId: 'legacy-1', name, revision: 40, document: doc('s3:ListBucket'), tags: { team: 'reports' } });
  t.is(before.outcome, 'rejected');
  t.is(before.reason, 'not-owned');

  const first = await ips('adopt', '--only', name, '--yes', '--json');
  t.is(first.code, 0, first.stderr);
  t.deepEqual(
    (JSON.parse(first.stdout) as { policies: { policy: string; result: string }[] }).policies.map((p) => [p.policy, p.result]),
    [[name, 'adopted']],
  );
  const audit = auditLines(first.stderr, 'adopted');
  t.is(audit.length, 1, first.stderr);
  t.is(audit[0]!.policy, name);
  t.truthy(audit[0]!.operator, 'the audit line names who adopted it');

  // Run again: nothing left to do, and it says so.
  const again = await ips('adopt', '--only', name, '--yes', '--json');
  t.is(again.code, 0, again.stderr);
  t.deepEqual(
    (JSON.parse(again.stdout) as { policies: { policy: string; result: string }[] }).policies.map((p) => [p.policy, p.result]),
    [[name, 'already-adopted']],
  );

  const adopted = await iamPolicy(arn);
  t.is(adopted.tags[OWNER_TAG], config.appName);
  t.is(adopted.tags.team, 'reports', "the policy's own tags stay");
  const entry = await ledgerFromConfig(stackOf().clients().dynamodb, config).get(name);
  t.is(entry?.state, 'present');
  t.is(entry?.docHash, documentHash(doc('s3:GetObject')), 'its current document is the last applied state');
  t.deepEqual(entry?.desired, { path: config.managedPathPrefix, document: doc('s3:GetObject'), tags: { team: 'reports' } });
  t.is(entry?.revision, undefined, 'the revision is unknown');
  // The drift audit agrees: what the ledger holds is what IAM holds (judged at once, not left as settling).
  const audit2 = await ips('drift', '--json');
  const report = JSON.parse(audit2.stdout) as { drift: { policy: string }[]; notJudged: { policy: string }[] };
  t.false(
    report.drift.some((d) => d.policy === name),
    audit2.stdout,
  );
  t.false(
    report.notJudged.some((d) => d.policy === name),
    'judged, not skipped',
  );

  // Any revision applies first: here one below the revision refused before adoption.
  const after = await outcomeOf({ eventId: 'legacy-2', name, revision: 3, document: doc('s3:ListBucket'), tags: { team: 'reports', tier: 'gold' } });
  t.is(after.outcome, 'updated');
  const updated = await iamPolicy(arn);
  t.deepEqual(updated.document, doc('s3:ListBucket'));
  t.deepEqual(updated.tags, { team: 'reports', tier: 'gold', [OWNER_TAG]: config.appName });
  // And the revision is known from then on.
  const stale = await outcomeOf({ eventId: 'legacy-3', name, revision: 2, document: doc('s3:PutObject') });
  t.is(stale.outcome, 'stale');
});

test.serial('ips adopt never adopts outside the managed path, and --all takes every untagged policy under it', async (t) => {
  const { config } = stackOf();
  const outside = await createOutOfBand('outside-reports', '/elsewhere/', doc('s3:GetObject'));
  const inside = await createOutOfBand('inside-reports', config.managedPathPrefix, doc('s3:GetObject'));

  const named = await ips('adopt', '--only', 'outside-reports', '--yes', '--json');
  t.is(named.code, 1, 'a name not under the managed path is refused');
  t.deepEqual(
    (JSON.parse(named.stdout) as { policies: { policy: string; result: string }[] }).policies.map((p) => [p.policy, p.result]),
    [['outside-reports', 'not-found']],
  );

  const unconfirmed = await ips('adopt', '--all');
  t.is(unconfirmed.code, 1, 'no terminal to confirm on: refused');
  t.is((await iamPolicy(inside)).tags[OWNER_TAG], undefined, 'nothing changed without confirmation');

  const all = await ips('adopt', '--all', '--yes', '--json');
  t.is(all.code, 0, all.stderr);
  t.deepEqual(
    (JSON.parse(all.stdout) as { policies: { policy: string; result: string }[] }).policies.map((p) => [p.policy, p.result]),
    [['inside-reports', 'adopted']],
  );
  t.is((await iamPolicy(inside)).tags[OWNER_TAG], config.appName);
  t.is((await iamPolicy(outside)).tags[OWNER_TAG], undefined);
  t.is(await ledgerFromConfig(stackOf().clients().dynamodb, config).get('outside-reports'), undefined);

  const neither = await ips('adopt', '--yes');
  t.is(neither.code, 2, 'one of --only or --all is required');
});

test.serial('ips release gives a policy back: untagged, forgotten by the ledger, not-owned again; run twice', async (t) => {
  const { config } = stackOf();
  const name = 'released-reports';
  const created = await outcomeOf({ eventId: 'released-1', name, document: doc('s3:GetObject'), tags: { team: 'reports' } });
  t.is(created.outcome, 'created');
  const arn = policyArn({ account: LOCAL_ACCOUNT_ID }, config.managedPathPrefix, name);

  const first = await ips('release', name, '--yes', '--json');
  t.is(first.code, 0, first.stderr);
  t.deepEqual(
    (JSON.parse(first.stdout) as { policies: { policy: string; result: string }[] }).policies.map((p) => [p.policy, p.result]),
    [[name, 'released']],
  );
  t.is(auditLines(first.stderr, 'released').length, 1, first.stderr);
  const again = await ips('release', name, '--yes', '--json');
  t.is(again.code, 0, again.stderr);
  t.deepEqual(
    (JSON.parse(again.stdout) as { policies: { policy: string; result: string }[] }).policies.map((p) => [p.policy, p.result]),
    [[name, 'already-released']],
  );

  const released = await iamPolicy(arn);
  t.deepEqual(released.tags, { team: 'reports' }, 'only the ownership tag is removed');
  const entry = await ledgerFromConfig(stackOf().clients().dynamodb, config).get(name);
  t.is(entry?.state ?? 'unknown', 'unknown', 'the ledger no longer vouches for it');
  t.is(entry?.desired, undefined);

  const after = await outcomeOf({ eventId: 'released-2', name, document: doc('s3:ListBucket') });
  t.is(after.outcome, 'rejected');
  t.is(after.reason, 'not-owned');
  t.deepEqual((await iamPolicy(arn)).document, doc('s3:GetObject'));
});
