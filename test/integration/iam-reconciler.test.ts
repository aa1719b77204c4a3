// The IAM step against the IAM emulator (moto): state-aware create, update,
// delete, guardrails, and transient faults injected into 30% of calls.
import test from 'ava';
import { AttachRolePolicyCommand, CreatePolicyCommand, CreateRoleCommand, GetPolicyCommand, ListAttachedRolePoliciesCommand, ListPolicyVersionsCommand } from '@aws-sdk/client-iam';
import type { PolicyDeleted, PolicyUpserted } from '../../src/contract/event.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { seededRandom } from '../../src/ops/load.js';
import { readManagedPolicy } from '../support/iam-state.js';
import { silentLogger } from '../support/pipeline.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { RejectedEventError } from '../../src/faults/errors.js';
import { retryUntilSettled } from '../../src/faults/retry.js';

const stackOf = useTestStack(test, { shards: 1 });
const PREFIX = '/stream-managed/';
const arn = (name: string, path = PREFIX) => `arn:aws:iam::${LOCAL_ACCOUNT_ID}:policy${path}${name}`;

function reconciler(options: { faultRate?: number; seed?: number } = {}) {
  const { config, clients } = stackOf();
  const metrics = new Metrics();
  const random = seededRandom(options.seed ?? 1);
  let faults = 0;
  const observers = [metrics.awsCallCounter()];
  if (options.faultRate) {
    observers.push({
      before: (service) => {
        if (service === 'iam' && random() < options.faultRate!) {
          faults++;
          throw Object.assign(new Error('Rate exceeded'), { name: 'Throttling', $metadata: { httpStatusCode: 400 }, $retryable: { throttling: true } });
        }
      },
    });
  }
  const aws = clients({ observers, maxAttempts: 1 });
  const r = new IamReconciler({ iam: aws.iam, sts: aws.sts, config: { ...config, breakerCooldownMs: 50 }, metrics, logger: silentLogger, attempts: 12, baseDelayMs: 2, maxDelayMs: 20 });
  return { r, metrics, iam: aws.iam, faults: () => faults };
}

let counter = 0;
function upsert(name: string, document: object, extra: Partial<PolicyUpserted> = {}): PolicyUpserted {
  return { specVersion: '1', eventId: `e${counter++}`, type: 'policy.upserted', policyName: name, policyPath: PREFIX, document: document as PolicyUpserted['document'], tags: {}, ...extra };
}
function remove(name: string): PolicyDeleted {
  return { specVersion: '1', eventId: `e${counter++}`, type: 'policy.deleted', policyName: name, policyPath: PREFIX };
}
const doc = (bucket: string, extra: object[] = []) => ({
  Version: '2012-10-17',
  Statement: [{ Sid: 'Read', Effect: 'Allow', Action: ['s3:GetObject', 's3:ListBucket'], Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`] }, ...extra],
});

test('create, then the same document reordered is unchanged with no new version, then update', async (t) => {
  const { r, metrics, iam } = reconciler();
  t.is(await r.upsert(upsert('iam-basic', doc('a'), { tags: { team: 'x' }, description: 'first' })), 'created');
  const reordered = {
    Statement: [{ Resource: ['arn:aws:s3:::a/*', 'arn:aws:s3:::a'], Action: ['s3:ListBucket', 's3:GetObject'], Effect: 'Allow', Sid: 'Read' }],
    Version: '2012-10-17',
  };
  t.is(await r.upsert(upsert('iam-basic', reordered, { tags: { team: 'x' } })), 'unchanged');
  t.is(metrics.get('aws_calls', { service: 'iam', operation: 'CreatePolicyVersion', outcome: 'ok' }), 0, 'no version written for an equal document');
  t.is(await r.upsert(upsert('iam-basic', doc('b'), { tags: { team: 'y' } })), 'updated');
  const policy = await iam.send(new GetPolicyCommand({ PolicyArn: arn('iam-basic') }));
  t.deepEqual(Object.fromEntries((policy.Policy?.Tags ?? []).map((tag) => [tag.Key, tag.Value])), { team: 'y', 'managed-by': stackOf().config.appName });
  const state = await readManagedPolicy(iam, LOCAL_ACCOUNT_ID, PREFIX, 'iam-basic');
  t.is(state?.versions, 2);
});

test('7 successive different updates keep 5 versions, the newest default', async (t) => {
  const { r, iam } = reconciler();
  t.is(await r.upsert(upsert('iam-versions', doc('v0'))), 'created');
  for (let i = 1; i <= 7; i++) t.is(await r.upsert(upsert('iam-versions', doc(`v${i}`))), 'updated');
  const versions = await iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn('iam-versions') }));
  t.is(versions.Versions?.length, 5);
  const state = await readManagedPolicy(iam, LOCAL_ACCOUNT_ID, PREFIX, 'iam-versions');
  t.deepEqual(state?.document, doc('v7'));
});

test('a delete of an attached policy retains it and the role keeps it; an unattached one with versions is deleted', async (t) => {
  const { r, iam } = reconciler();
  await r.upsert(upsert('iam-attached', doc('att')));
  await iam.send(
    new CreateRoleCommand({
      RoleName: 'app-role',
      AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] }),
    }),
  );
  await iam.send(new AttachRolePolicyCommand({ RoleName: 'app-role', PolicyArn: arn('iam-attached') }));
  t.is(await r.delete(remove('iam-attached')), 'retained-in-use');
  t.truthy(await readManagedPolicy(iam, LOCAL_ACCOUNT_ID, PREFIX, 'iam-attached'));
  const attached = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: 'app-role' }));
  t.true(attached.AttachedPolicies?.some((p) => p.PolicyArn === arn('iam-attached')));

  await r.upsert(upsert('iam-versioned', doc('x1')));
  await r.upsert(upsert('iam-versioned', doc('x2')));
  await r.upsert(upsert('iam-versioned', doc('x3')));
  t.is(await r.delete(remove('iam-versioned')), 'deleted');
  t.is(await readManagedPolicy(iam, LOCAL_ACCOUNT_ID, PREFIX, 'iam-versioned'), undefined);
  t.is(await r.delete(remove('iam-versioned')), 'absent', 'deleting again is harmless');
});

test('a policy created out of band without the ownership tag is never touched', async (t) => {
  const { r, iam } = reconciler();
  await iam.send(new CreatePolicyCommand({ PolicyName: 'iam-foreign', Path: PREFIX, PolicyDocument: JSON.stringify(doc('theirs')) }));
  const upsertError = await t.throwsAsync(r.upsert(upsert('iam-foreign', doc('ours'))), { instanceOf: RejectedEventError });
  t.is(upsertError?.reason, 'not-owned');
  const deleteError = await t.throwsAsync(r.delete(remove('iam-foreign')), { instanceOf: RejectedEventError });
  t.is(deleteError?.reason, 'not-owned');
  const state = await readManagedPolicy(iam, LOCAL_ACCOUNT_ID, PREFIX, 'iam-foreign');
  t.deepEqual(state, { document: doc('theirs'), versions: 1 });
});

test('running the step twice (a re-run after a crash) is harmless', async (t) => {
  const { r } = reconciler();
  const event = upsert('iam-rerun', doc('r'));
  t.is(await r.upsert(event), 'created');
  t.is(await r.upsert(event), 'unchanged');
  t.is(await r.delete(remove('iam-rerun')), 'deleted');
  t.is(await r.delete(remove('iam-rerun')), 'absent');
});

test('30% of IAM calls throttled: every event still ends with the right outcome, none rejected', async (t) => {
  const { r: inner, faults, metrics } = reconciler({ faultRate: 0.3, seed: 42 });
  // As in the pipeline: a step that runs out of its own budget (or meets the
  // open breaker) is run again later, never rejected.
  const retry = { baseMs: 5, capMs: 100, logger: silentLogger, metrics, what: {} };
  const r = {
    upsert: (event: PolicyUpserted) => retryUntilSettled(() => inner.upsert(event), retry),
    delete: (event: PolicyDeleted) => retryUntilSettled(() => inner.delete(event), retry),
  };
  const outcomes: string[] = [];
  const expected: string[] = [];
  for (let i = 0; i < 6; i++) {
    outcomes.push(await r.upsert(upsert(`iam-fault-${i}`, doc(`f${i}`))));
    expected.push('created');
    outcomes.push(await r.upsert(upsert(`iam-fault-${i}`, doc(`g${i}`))));
    expected.push('updated');
    outcomes.push(await r.upsert(upsert(`iam-fault-${i}`, doc(`g${i}`))));
    expected.push('unchanged');
    outcomes.push(await r.delete(remove(`iam-fault-${i}`)));
    expected.push('deleted');
  }
  t.deepEqual(outcomes, expected);
  t.true(faults() > 10, `faults were injected (${faults()})`);
  t.log(`[iam-fault-injection] events=${outcomes.length} faults=${faults()} breaker-opened=${metrics.get('iam_breaker', { state: 'open' })} rejected=0`);
});
