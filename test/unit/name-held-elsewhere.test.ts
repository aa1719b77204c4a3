// CreatePolicy answers EntityAlreadyExists and IAM shows nothing at the
// wanted ARN: the name is held under another path, or IAM does not show our
// own create yet. The listing lags like every read, so a policy we deleted
// moments ago may still be listed: judging the listing alone refused our own
// event `not-owned` while our create had landed (simulation seed 15151).
import test from 'ava';
import { CreatePolicyCommand, EntityAlreadyExistsException, GetPolicyCommand, GetPolicyVersionCommand, ListPoliciesCommand, NoSuchEntityException } from '@aws-sdk/client-iam';
import type { IAMClient, Policy } from '@aws-sdk/client-iam';
import type { STSClient } from '@aws-sdk/client-sts';
import { loadConfig } from '../../src/config/config.js';
import type { PolicyUpserted } from '../../src/contract/event.js';
import { RejectedEventError, TransientError } from '../../src/faults/errors.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { silentLogger } from '../support/pipeline.js';

const ACCOUNT = '123456789012';
const OLD = `arn:aws:iam::${ACCOUNT}:policy/stream-managed/gamma`;
const WANTED = '/stream-managed/other/';

/** IAM where the name is taken, GetPolicy shows only `readable`, and ListPolicies (lagging or not) shows `listed`. */
function heldIam(listed: Policy[], readable: Policy[]) {
  const calls: string[] = [];
  const send = async (command: object) => {
    calls.push(command.constructor.name);
    if (command instanceof CreatePolicyCommand) throw new EntityAlreadyExistsException({ message: 'A policy called gamma already exists.', $metadata: {} });
    if (command instanceof ListPoliciesCommand) return { Policies: listed, IsTruncated: false };
    if (command instanceof GetPolicyCommand) {
      const policy = readable.find((p) => p.Arn === command.input.PolicyArn);
      if (!policy) throw new NoSuchEntityException({ message: 'not found', $metadata: {} });
      return { Policy: policy };
    }
    if (command instanceof GetPolicyVersionCommand) return { PolicyVersion: { VersionId: 'v1', IsDefaultVersion: true, Document: encodeURIComponent(JSON.stringify(DOCUMENT)) } };
    throw new Error(`unexpected ${command.constructor.name}`);
  };
  return { iam: { send } as unknown as IAMClient, calls };
}

function reconciler(iam: IAMClient, clock: { now: number }) {
  const sts = { send: async () => ({ Account: ACCOUNT, Arn: `arn:aws:sts::${ACCOUNT}:assumed-role/worker/w` }) } as unknown as STSClient;
  return new IamReconciler({ iam, sts, config: loadConfig({}), metrics: new Metrics(), logger: silentLogger, visibilityWindowMs: 30_000, now: () => clock.now, sleep: async () => {} });
}

const DOCUMENT = { Version: '2012-10-17', Statement: [] };

const event = {
  specVersion: '1',
  eventId: 'e3',
  type: 'policy.upserted',
  policyName: 'gamma',
  policyPath: WANTED,
  pathGiven: true,
  document: DOCUMENT,
  tags: {},
} as unknown as PolicyUpserted;

const ours: Policy = { PolicyName: 'gamma', Arn: OLD, Path: '/stream-managed/', Tags: [{ Key: 'managed-by', Value: 'iam-policy-stream' }], DefaultVersionId: 'v1' };

test('a listed policy that is gone when read is a lagging list, not the name held: the step waits, it does not refuse the event', async (t) => {
  const { iam, calls } = heldIam([ours], []);
  const error = await t.throwsAsync(reconciler(iam, { now: 0 }).upsertStep(event, { likelyAbsent: true }));
  t.true(error instanceof TransientError, `${error?.name}: ${error?.message}`);
  t.is((error as TransientError).reason as string, 'iam-not-yet-visible');
  t.deepEqual(calls.slice(-2), ['ListPoliciesCommand', 'GetPolicyCommand'], 'the listed policy was read back');
});

test('our own policy shown under another path: read lag of our delete for the visibility window, then path-conflict', async (t) => {
  const clock = { now: 0 };
  const { iam } = heldIam([ours], [ours]);
  const r = reconciler(iam, clock);
  const early = await t.throwsAsync(r.upsertStep(event, { likelyAbsent: true }));
  t.true(early instanceof TransientError, early?.message);
  clock.now = 20_000;
  t.true((await t.throwsAsync(r.upsertStep(event, { likelyAbsent: true }))) instanceof TransientError);
  clock.now = 30_000;
  const late = await t.throwsAsync(r.upsertStep(event, { likelyAbsent: true }));
  t.true(late instanceof RejectedEventError, late?.message);
  t.is((late as RejectedEventError).reason, 'path-conflict');
  // The window stays passed: the next event of the policy gets its verdict at once, not a window of its own.
  const next = await t.throwsAsync(r.upsertStep({ ...event, eventId: 'e4' }, { likelyAbsent: true }));
  t.is((next as RejectedEventError).reason, 'path-conflict');
});

test("another's policy holding the name is not-owned at once", async (t) => {
  const foreign: Policy = { ...ours, Tags: [] };
  const { iam } = heldIam([foreign], [foreign]);
  const error = await t.throwsAsync(reconciler(iam, { now: 0 }).upsertStep(event, { likelyAbsent: true }));
  t.is((error as RejectedEventError).reason, 'not-owned');
});

test('our policy under another path, for an event that names no path: the policy wherever it lives', async (t) => {
  const { iam, calls } = heldIam([ours], [ours]);
  const step = await reconciler(iam, { now: 0 }).upsertStep({ ...event, pathGiven: false } as PolicyUpserted, { likelyAbsent: true });
  t.is(step.outcome, 'unchanged', 'its default version is the document');
  t.true(calls.includes('GetPolicyVersionCommand'));
});
