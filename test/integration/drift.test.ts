// The drift audit against the emulators: policies made by real events
// through a shard pipeline (real ledger, real reconciler), then IAM edited
// behind the processor's back. `ips drift` runs as operators run it, a
// separate process with --json; it reports each kind of drift with exit code
// 1, --repair converges what it may through the ledger's claims, and once
// the rest is fixed by hand the audit finds nothing (exit 0).
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { CreatePolicyCommand, CreatePolicyVersionCommand, DeletePolicyCommand, GetPolicyCommand, TagPolicyCommand, UntagPolicyCommand } from '@aws-sdk/client-iam';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../src/config/paths.js';
import { OWNER_TAG } from '../../src/contract/ownership.js';
import { reconcilerApplier } from '../../src/intake/applier.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import { policyArn } from '../../src/iam/policies.js';
import { DedupCache } from '../../src/ledger/dedup-cache.js';
import { ledgerFromConfig } from '../../src/ledger/dynamodb-ledger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { repairPolicy } from '../../src/ops/drift-repair.js';
import type { RepairResult } from '../../src/ops/drift-repair.js';
import type { Drift } from '../../src/ops/drift-audit.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import type { DeadLetter } from '../../src/deadletter/dead-letter-store.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { startRealisticIam } from '../../tools/harness/realistic-iam.js';
import type { PolicyAccess, RealisticIam } from '../../tools/harness/realistic-iam.js';
import { MemoryDeadLetters } from '../support/fakes.js';
import { stackPipeline } from '../support/stack-pipeline.js';
import { readManagedPolicy } from '../support/iam-state.js';
import { doc, silentLogger, streamRecords } from '../support/pipeline.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';

const startedAt = Date.now();
const stackOf = useTestStack(test, { shards: 1 });
const run = promisify(execFile);

interface DriftReport {
  drifted: number;
  ledgerEntries: number;
  drift: Drift[];
  notJudged: { policy: string; why: string }[];
  failed?: { policy: string; reason: string }[];
  repairs?: RepairResult[];
  left?: number;
}

/** `ips drift ...` as a separate process; its exit code and its JSON. */
async function ips(args: string[], settings: Record<string, string> = {}): Promise<{ code: number; report: DriftReport; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(projectRoot(), 'dist', 'ops', 'cli.js'), ...args], {
      env: { ...process.env, ...stackOf().stack.env, ...settings },
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, report: JSON.parse(stdout) as DriftReport, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    if (typeof failed.code !== 'number' || !failed.stdout) throw error;
    return { code: failed.code, report: JSON.parse(failed.stdout) as DriftReport, stderr: failed.stderr };
  }
}

/** Judged at once: nothing counts as too recent for IAM to show. */
const NOW = { IPS_IAM_VISIBILITY_WINDOW_MS: '0' };

function event(type: 'policy.upserted' | 'policy.deleted', name: string, eventId: string, extra: Record<string, unknown> = {}) {
  const body = { specVersion: '1', eventId, type, policy: { name }, ...(type === 'policy.upserted' ? { document: doc(name) } : {}), ...extra };
  return { partitionKey: name, data: Buffer.from(JSON.stringify(body)) };
}

/** Every dead letter as stored, in order (a record stored twice shows twice). */
class CountingDeadLetters extends MemoryDeadLetters {
  readonly stored: DeadLetter[] = [];
  override async store(letter: DeadLetter): Promise<void> {
    this.stored.push(letter);
    await super.store(letter);
  }
}

const arn = (name: string) => policyArn({ account: LOCAL_ACCOUNT_ID }, stackOf().config.managedPathPrefix, name);
const kindsOf = (report: DriftReport) => Object.fromEntries(report.drift.map((d) => [d.policy, d.kinds]));

test.serial('the local stack names the region under both variables and leaves no DynamoDB Local metadata in the repository', (t) => {
  const env = readFileSync(join(stackOf().stack.dir, 'stack.env'), 'utf8');
  t.regex(env, /^AWS_REGION=us-east-1$/m);
  t.regex(env, /^AWS_DEFAULT_REGION=us-east-1$/m);
  const metadata = join(projectRoot(), 'dynamodb-local-metadata.json');
  t.false(existsSync(metadata) && statSync(metadata).mtimeMs >= startedAt, 'no dynamodb-local-metadata.json written by this stack');
});

test.serial('drift: each kind reported with exit 1; --repair converges what it may through the claims; after the rest is fixed by hand, none and exit 0', async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const metrics = new Metrics();
  const ledger = ledgerFromConfig(aws.dynamodb, config);
  const parts = {
    config: { ...config, retryBaseMs: 5, retryBackoffCapMs: 200 },
    logger: silentLogger,
    metrics,
    ledger,
    cache: new DedupCache(1_000),
    applier: reconcilerApplier(new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger })),
    deadLetters: new MemoryDeadLetters(),
  };
  const pipeline = createShardPipeline(parts, { shardId: 'shardId-000000000000', lineage: [], hashKeyRange: ALL_HASH_KEYS, epoch: 0, owner: 'drift-test-worker' });
  const settled = await pipeline.processBatch(
    streamRecords([
      event('policy.upserted', 'drift-doc', 'e1', { tags: { team: 'a' } }),
      event('policy.upserted', 'drift-tag', 'e2', { tags: { team: 'a', env: 'prod' } }),
      event('policy.upserted', 'drift-owner', 'e3'),
      event('policy.upserted', 'drift-gone', 'e4'),
      event('policy.upserted', 'drift-back', 'e5'),
      event('policy.upserted', 'drift-ok', 'e6', { tags: { team: 'b' } }),
    ]),
  );
  t.deepEqual(
    settled.map((s) => s.outcome),
    ['created', 'created', 'created', 'created', 'created', 'created'],
  );
  const [deleted] = await pipeline.processBatch(streamRecords([event('policy.deleted', 'drift-back', 'e7')]));
  t.is(deleted?.outcome, 'deleted');

  // Just applied: IAM may not show it yet, so nothing is judged (the default visibility window).
  const fresh = await ips(['drift', '--json']);
  t.is(fresh.code, 0);
  t.is(fresh.report.drifted, 0);
  t.true(fresh.report.notJudged.length === 6 && fresh.report.notJudged.every((n) => n.why === 'settling'));
  const clean = await ips(['drift', '--json'], NOW);
  t.is(clean.code, 0, clean.stderr);
  t.deepEqual(clean.report.drift, []);
  t.is(clean.report.ledgerEntries, 6);

  // Behind the processor's back.
  const iam = aws.iam;
  await iam.send(new CreatePolicyVersionCommand({ PolicyArn: arn('drift-doc'), PolicyDocument: JSON.stringify(doc('edited-by-hand')), SetAsDefault: true }));
  await iam.send(new UntagPolicyCommand({ PolicyArn: arn('drift-tag'), TagKeys: ['env'] }));
  await iam.send(new UntagPolicyCommand({ PolicyArn: arn('drift-owner'), TagKeys: [OWNER_TAG] }));
  await iam.send(new DeletePolicyCommand({ PolicyArn: arn('drift-gone') }));
  const ours = [{ Key: OWNER_TAG, Value: config.appName }];
  await iam.send(new CreatePolicyCommand({ PolicyName: 'drift-back', Path: config.managedPathPrefix, PolicyDocument: JSON.stringify(doc('back')), Tags: ours }));
  await iam.send(new CreatePolicyCommand({ PolicyName: 'drift-stranger', Path: config.managedPathPrefix, PolicyDocument: JSON.stringify(doc('stranger')), Tags: ours }));
  // Someone else's policy under the managed path, without our tag: not ours, not drift.
  await iam.send(new CreatePolicyCommand({ PolicyName: 'drift-foreign', Path: config.managedPathPrefix, PolicyDocument: JSON.stringify(doc('foreign')) }));

  const found = await ips(['drift', '--json'], NOW);
  t.is(found.code, 1);
  t.deepEqual(kindsOf(found.report), {
    'drift-back': ['present-but-deleted'],
    'drift-doc': ['document'],
    'drift-gone': ['missing'],
    'drift-owner': ['ownership-tag'],
    'drift-stranger': ['unknown-to-ledger'],
    'drift-tag': ['tags'],
  });
  t.regex(found.report.drift.find((d) => d.policy === 'drift-tag')!.details.join(), /\+env=prod/);

  const repaired = await ips(['drift', '--repair', '--yes', '--json'], NOW);
  t.is(repaired.code, 1, 'the ownership tag and the unknown policy are left');
  const results = Object.fromEntries((repaired.report.repairs ?? []).map((r) => [r.policy, r.result === 'repaired' ? `repaired ${r.outcome}` : r.result]));
  t.deepEqual(results, {
    'drift-back': 'repaired deleted',
    'drift-doc': 'repaired updated',
    'drift-gone': 'repaired created',
    'drift-owner': 'skipped',
    'drift-stranger': 'skipped',
    // The document was right; the repair writes it anyway, as a worker's re-verification does (a read may lag).
    'drift-tag': 'repaired updated',
  });
  t.is(repaired.report.left, 2);
  t.deepEqual((await readManagedPolicy(iam, LOCAL_ACCOUNT_ID, config.managedPathPrefix, 'drift-doc'))?.document, doc('drift-doc'));
  t.truthy(await readManagedPolicy(iam, LOCAL_ACCOUNT_ID, config.managedPathPrefix, 'drift-gone'));
  t.is(await readManagedPolicy(iam, LOCAL_ACCOUNT_ID, config.managedPathPrefix, 'drift-back'), undefined);
  const tags = (await iam.send(new GetPolicyCommand({ PolicyArn: arn('drift-tag') }))).Policy?.Tags ?? [];
  t.true(tags.some((tag) => tag.Key === 'env' && tag.Value === 'prod'));
  // The verifications were answered: no mark is left for a worker.
  for (const name of ['drift-doc', 'drift-gone', 'drift-back', 'drift-tag']) {
    const entry = await ledger.get(name);
    t.is(entry?.verifiedUpTo, entry?.verifyRequested, name);
    t.is(entry?.claim, undefined, name);
  }

  // What repair leaves to people: the ownership tag back, the stranger gone.
  await iam.send(new TagPolicyCommand({ PolicyArn: arn('drift-owner'), Tags: ours }));
  await iam.send(new DeletePolicyCommand({ PolicyArn: arn('drift-stranger') }));
  const after = await ips(['drift', '--json'], NOW);
  t.is(after.code, 0, JSON.stringify(after.report.drift));
  t.deepEqual(after.report.drift, []);

  // The human-readable table says the same.
  const text = await run(process.execPath, [join(projectRoot(), 'dist', 'ops', 'cli.js'), 'drift'], { env: { ...process.env, ...stackOf().stack.env, ...NOW } });
  t.regex(text.stdout, /^No drift\.$/m);
  t.regex(text.stdout, /Checked 6 ledger entries and \d+ policies under the managed path: 0 drifted\./);
});

test.serial('a policy a worker holds is not judged by the audit and skipped by a repair, which leaves it marked for the worker', async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const ledger = ledgerFromConfig(aws.dynamodb, config);
  await aws.iam.send(new CreatePolicyVersionCommand({ PolicyArn: arn('drift-ok'), PolicyDocument: JSON.stringify(doc('edited-again')), SetAsDefault: true }));
  // A worker re-verifying the policy right now.
  await ledger.requestVerification('drift-ok');
  const worker = await ledger.claimVerification('drift-ok', 'worker-host/4242/shardId-000000000000/abcd1234');
  t.true(worker.won);

  const audit = await ips(['drift', '--json'], NOW);
  t.is(audit.code, 0);
  t.deepEqual(
    audit.report.notJudged.map((n) => [n.policy, n.why]),
    [['drift-ok', 'in-flight']],
  );

  const metrics = new Metrics();
  const applier = reconcilerApplier(new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger, visibilityWindowMs: 0 }));
  const result = await repairPolicy({ policy: 'drift-ok', kinds: ['document'], details: [] }, 'operator/1/ips-drift/x', { ledger, applier, config });
  t.is(result.result, 'skipped');
  t.regex((result as { why: string }).why, /claimed by worker-host\/4242/);
  const entry = await ledger.get('drift-ok');
  t.true((entry?.verifyRequested ?? 0) > (entry?.verifiedUpTo ?? 0), 'marked: the worker re-reads IAM');
  t.deepEqual((await readManagedPolicy(aws.iam, LOCAL_ACCOUNT_ID, config.managedPathPrefix, 'drift-ok'))?.document, doc('edited-again'), 'IAM untouched by the repair');

  // The worker's claim ends; a repair now converges it.
  if (worker.won) await ledger.completeVerification('drift-ok', worker.token, 0);
  const second = await repairPolicy({ policy: 'drift-ok', kinds: ['document'], details: [] }, 'operator/1/ips-drift/x', { ledger, applier, config });
  t.deepEqual(second, { policy: 'drift-ok', result: 'repaired', outcome: 'updated' });
  t.deepEqual((await readManagedPolicy(aws.iam, LOCAL_ACCOUNT_ID, config.managedPathPrefix, 'drift-ok'))?.document, doc('drift-ok'));
});

test.serial("a re-apply replay that IAM refuses as not ours keeps the ledger's word: drift still reports the ownership tag, one dead letter per replayed record", async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const metrics = new Metrics();
  const ledger = ledgerFromConfig(aws.dynamodb, config);
  const deadLetters = new CountingDeadLetters();
  const parts = () => ({
    config: { ...config, retryBaseMs: 5, retryBackoffCapMs: 200 },
    logger: silentLogger,
    metrics,
    ledger,
    cache: new DedupCache(1_000),
    applier: reconcilerApplier(new IamReconciler({ iam: aws.iam, sts: aws.sts, config, metrics, logger: silentLogger })),
    deadLetters,
  });
  const shard = { shardId: 'shardId-000000000000', lineage: [], hashKeyRange: ALL_HASH_KEYS, owner: 'drift-test-worker' };
  // Two batches, with revisions: the second batch meets what the first one's completion left.
  const first = streamRecords([
    event('policy.upserted', 'reapply-owner', 'r1', { revision: 1, document: doc('r1'), tags: { team: 'a' } }),
    event('policy.upserted', 'reapply-owner', 'r2', { revision: 2, document: doc('r2'), tags: { team: 'a' } }),
  ]);
  const second = streamRecords([event('policy.upserted', 'reapply-owner', 'r3', { revision: 3, document: doc('r3'), tags: { team: 'a' } })]);
  const epoch = await ledger.currentEpoch();
  const live = createShardPipeline(parts(), { ...shard, epoch });
  t.deepEqual(
    (await live.processBatch(first)).map((s) => s.outcome),
    ['superseded', 'created'],
  );
  t.deepEqual(
    (await live.processBatch(second)).map((s) => s.outcome),
    ['updated'],
  );

  // Out of band, someone removes the ownership tag.
  await aws.iam.send(new UntagPolicyCommand({ PolicyArn: arn('reapply-owner'), TagKeys: [OWNER_TAG] }));
  const before = await ips(['drift', '--json'], NOW);
  t.is(before.code, 1);
  t.deepEqual(kindsOf(before.report)['reapply-owner'], ['ownership-tag']);

  // replay --reapply: a new ledger epoch, then the same records again.
  const next = await ledger.advanceEpoch();
  const replay = createShardPipeline(parts(), { ...shard, epoch: next });
  const replayed = [...(await replay.processBatch(first)), ...(await replay.processBatch(second))];
  t.deepEqual(
    replayed.map((s) => [s.outcome, s.reason]),
    [
      ['rejected', 'not-owned'],
      ['rejected', 'not-owned'],
      ['rejected', 'not-owned'],
    ],
  );
  // One dead letter per replayed record, written once each.
  t.deepEqual(
    deadLetters.stored
      .filter((letter) => letter.policyName === 'reapply-owner')
      .map((letter) => letter.eventId)
      .sort(),
    ['r1', 'r2', 'r3'],
  );

  // The refused replay applied nothing: the ledger still says what the stream made.
  const entry = await ledger.get('reapply-owner');
  t.is(entry?.state, 'present');
  t.deepEqual(entry?.desired?.document, doc('r3'));
  const after = await ips(['drift', '--json'], NOW);
  t.is(after.code, 1, 'the drift alarm does not clear');
  t.deepEqual(kindsOf(after.report)['reapply-owner'], ['ownership-tag']);
  t.false(
    after.report.notJudged.some((n) => n.policy === 'reapply-owner'),
    JSON.stringify(after.report.notJudged),
  );

  // Fixed by hand: the audit finds nothing left for it.
  await aws.iam.send(new TagPolicyCommand({ PolicyArn: arn('reapply-owner'), Tags: [{ Key: OWNER_TAG, Value: config.appName }] }));
  const fixed = await ips(['drift', '--json'], NOW);
  t.is(kindsOf(fixed.report)['reapply-owner'], undefined);
});

/** The EMF documents an `ips drift` wrote on stderr (IPS_METRICS_SINK=stderr). */
function metricsIn(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{') && line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** An audit role scoped to the managed path, as the stack's DriftAuditRole: a realistic-IAM layer in front of moto. */
async function scopedIam(t: ExecutionContext, access: PolicyAccess): Promise<RealisticIam> {
  const layer = await startRealisticIam({ target: stackOf().stack.env.AWS_ENDPOINT_URL_IAM!, lagMs: [0, 0], policyAccess: access });
  t.teardown(() => layer.close());
  return layer;
}

test.serial('the audit never reads a policy outside the managed path: a deleted policy whose name a foreign policy now holds elsewhere is not drift, and the rest is judged', async (t) => {
  const { config, clients } = stackOf();
  const iam = clients().iam;
  // The stream deleted drift-back; someone else's policy of that name now lives outside the managed path.
  t.is((await ledgerFromConfig(clients().dynamodb, config).get('drift-back'))?.state, 'deleted');
  await iam.send(new CreatePolicyCommand({ PolicyName: 'drift-back', Path: '/elsewhere/', PolicyDocument: JSON.stringify(doc('theirs')) }));
  await iam.send(new CreatePolicyVersionCommand({ PolicyArn: arn('drift-doc'), PolicyDocument: JSON.stringify(doc('edited-once-more')), SetAsDefault: true }));
  const layer = await scopedIam(t, { allow: [config.managedPathPrefix] });

  const audit = await ips(['drift', '--json'], { ...NOW, AWS_ENDPOINT_URL_IAM: layer.endpoint, IPS_METRICS_SINK: 'stderr' });
  t.is(audit.code, 1, audit.stderr);
  t.deepEqual(kindsOf(audit.report), { 'drift-doc': ['document'] });
  t.deepEqual(audit.report.failed, []);
  t.is(layer.stats.accessDenied, 0, "no read outside the role's path");
  const [published] = metricsIn(audit.stderr);
  t.like(published, { drift_found: 1, drift_audit_failed: 0 });
});

test.serial('a policy the audit may not read is reported on its own as access-denied, the others are judged, and drift_audit_failed is published', async (t) => {
  const { config, clients } = stackOf();
  const aws = clients();
  const pipeline = stackPipeline(config, aws, 'drift-test-worker', await ledgerFromConfig(aws.dynamodb, config).currentEpoch());
  const [made] = await pipeline.processBatch(streamRecords([event('policy.upserted', 'drift-locked', 'l1', { policy: { name: 'drift-locked', path: `${config.managedPathPrefix}locked/` } })]));
  t.is(made?.outcome, 'created');
  // A Deny on a narrower path (a permissions boundary, say): IAM answers AccessDenied, which waiting does not change.
  const layer = await scopedIam(t, { allow: [config.managedPathPrefix], deny: [`${config.managedPathPrefix}locked/`] });

  const audit = await ips(['drift', '--json'], { ...NOW, AWS_ENDPOINT_URL_IAM: layer.endpoint, IPS_METRICS_SINK: 'stderr' });
  t.is(audit.code, 1, audit.stderr);
  t.deepEqual(kindsOf(audit.report), { 'drift-doc': ['document'] }, 'the others are judged');
  t.deepEqual(
    audit.report.failed?.map((f) => [f.policy, f.reason]),
    [['drift-locked', 'access-denied']],
  );
  t.is(layer.stats.accessDenied, 1, 'AccessDenied is not retried');
  const [published] = metricsIn(audit.stderr);
  t.like(published, { drift_found: 1, drift_audit_failed: 1 });

  // The table says it too.
  const text = await run(process.execPath, [join(projectRoot(), 'dist', 'ops', 'cli.js'), 'drift'], {
    env: { ...process.env, ...stackOf().stack.env, ...NOW, AWS_ENDPOINT_URL_IAM: layer.endpoint },
  }).catch((error: { code: number; stdout: string }) => error);
  t.is((text as { code?: number }).code, 1);
  t.regex(text.stdout, /Not audited \(1\):[\s\S]*drift-locked\s+access-denied/);
});

test.serial('an audit that cannot run publishes drift_audit_failed and no drift_found, and fails with exit 1', async (t) => {
  const { config } = stackOf();
  const layer = await scopedIam(t, { allow: [config.managedPathPrefix], list: false });
  const failed = await run(process.execPath, [join(projectRoot(), 'dist', 'ops', 'cli.js'), 'drift', '--json'], {
    env: { ...process.env, ...stackOf().stack.env, ...NOW, AWS_ENDPOINT_URL_IAM: layer.endpoint, IPS_METRICS_SINK: 'stderr' },
  }).then(
    () => undefined,
    (error: { code: number; stderr: string }) => error,
  );
  t.is(failed?.code, 1);
  t.regex(failed?.stderr ?? '', /AccessDenied/);
  t.is(layer.stats.accessDenied, 1, 'AccessDenied is not retried');
  const published = metricsIn(failed?.stderr ?? '');
  t.is(published.length, 1);
  t.is(published[0]!.drift_audit_failed, 1);
  t.false('drift_found' in published[0]!, 'no count from an audit that did not run');
});
