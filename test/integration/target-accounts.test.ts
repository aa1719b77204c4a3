// A target account is reached through its role, as STS allows it: the
// realistic layer refuses AssumeRole unless the role exists in that account
// and trusts the worker's account (with the ExternalId it asks for), where
// moto alone lets anyone assume anything. An account whose role cannot be
// assumed is a clear, counted error naming the account and the role ARN,
// transient (its records wait), and never slows another account.
import test from 'ava';
import { GetPolicyCommand, IAMClient } from '@aws-sdk/client-iam';
import { createAwsClients, destroyAwsClients, roleSessionName } from '../../src/aws/clients.js';
import { AssumeRoleError, TransientError } from '../../src/faults/errors.js';
import { IamReconciler } from '../../src/iam/reconciler.js';
import { reconcilerApplier } from '../../src/intake/applier.js';
import { AccountTargets } from '../../src/intake/account-targets.js';
import { METRIC, Metrics, metricKey } from '../../src/metrics/metrics.js';
import type { PolicyUpserted } from '../../src/contract/event.js';
import { stepOf } from '../../src/contract/outcome.js';
import { startFaultProxy } from '../../tools/harness/fault-proxy.js';
import { startRealisticIam } from '../../tools/harness/realistic-iam.js';
import type { RealisticIam } from '../../tools/harness/realistic-iam.js';
import { provisionTargetRoles } from '../../tools/local/target-roles.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { startMoto } from '../support/moto.js';
import type { Moto } from '../support/moto.js';
import { silentLogger, testConfig } from '../support/pipeline.js';

const TRUSTED = '111111111111';
const UNTRUSTED = '222222222222';

let moto: Moto | undefined;
let layer: RealisticIam | undefined;
test.before(async () => {
  moto = await startMoto();
  layer = await startRealisticIam({ target: moto.endpoint, lagMs: [0, 0], enforceTrust: true });
});
test.after.always(async () => {
  await layer?.close();
  await moto?.stop();
});

const event = (account: string, name: string): PolicyUpserted => ({
  specVersion: '1',
  eventId: `${account}-${name}`,
  type: 'policy.upserted',
  account,
  policyName: name,
  policyPath: '/stream-managed/',
  document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${account}/*` }] },
  tags: {},
});

/** The worker's clients and its AccountTargets, with IAM and STS at `endpoint`; only the trusted account has the role (as the local stack provisions it). */
async function targetsAt(endpoint: string) {
  const env = { ...moto!.env, AWS_ENDPOINT_URL_IAM: endpoint, AWS_ENDPOINT_URL_STS: endpoint };
  const config = testConfig({ IPS_TARGET_ACCOUNTS: `${TRUSTED},${UNTRUSTED}`, IPS_TARGET_EXTERNAL_ID: 'org-secret-1' });
  await provisionTargetRoles(moto!.env, { ...config, targetAccounts: [TRUSTED] }, LOCAL_ACCOUNT_ID);
  const metrics = new Metrics();
  const clients = createAwsClients(config, { env });
  const own = reconcilerApplier(new IamReconciler({ iam: clients.iam, sts: clients.sts, config, metrics, logger: silentLogger }));
  const targets = new AccountTargets({ config, logger: silentLogger, metrics, sts: clients.sts, own, clientOptions: { env } });
  return { metrics, clients, targets };
}

test.serial('a trusted account is written through its role; an untrusted one fails AssumeRole with the account and role ARN, counted, transient, and does not hold the other', async (t) => {
  const { metrics, clients, targets } = await targetsAt(layer!.endpoint);
  try {
    const applier = targets.applierFor('shardId-000000000001');
    const refused = await t.throwsAsync(applier.apply(event(UNTRUSTED, 'p')));
    t.true(refused instanceof AssumeRoleError, `an AssumeRoleError, got ${String(refused)}`);
    t.true(refused instanceof TransientError && refused.retriable, 'transient: the records wait, they are not rejected');
    t.regex(refused!.message, new RegExp(`arn:aws:iam::${UNTRUSTED}:role/iam-policy-stream-target`), 'names the role ARN');
    t.regex(refused!.message, /AccessDenied/);
    t.is((refused as AssumeRoleError).account, UNTRUSTED);
    t.true((metrics.summary().counters[metricKey(METRIC.assumeRoleFailures, { account: UNTRUSTED, code: 'AccessDenied' })] ?? 0) >= 1, 'counted with the account');

    // The trusted account is written, in its own account, while the other keeps failing.
    t.is(stepOf(await applier.apply(event(TRUSTED, 'p'))).outcome, 'created');
    await t.throwsAsync(applier.apply(event(UNTRUSTED, 'p')), { instanceOf: AssumeRoleError });
    t.is(stepOf(await applier.apply(event(TRUSTED, 'q'))).outcome, 'created');
    const inTrusted = new IAMClient({ region: moto!.env.AWS_REGION, endpoint: moto!.endpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
    inTrusted.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { headers: Record<string, string> }).headers['x-moto-account-id'] = TRUSTED;
        return next(args);
      },
      { step: 'build' },
    );
    const held = await inTrusted.send(new GetPolicyCommand({ PolicyArn: `arn:aws:iam::${TRUSTED}:policy/stream-managed/p` }));
    t.is(held.Policy?.PolicyName, 'p', 'the policy lives in the target account');
    inTrusted.destroy();
    await t.throwsAsync(
      clients.iam.send(new GetPolicyCommand({ PolicyArn: `arn:aws:iam::${LOCAL_ACCOUNT_ID}:policy/stream-managed/p` })),
      { name: 'NoSuchEntityException' },
      "not in the worker's own account",
    );
    t.true((metrics.summary().counters[metricKey(METRIC.iamOutcomes, { outcome: 'created', account: TRUSTED })] ?? 0) >= 2, 'IAM outcomes carry the account');
    // One breaker per account: each target's state is its own series beside the own account's.
    const gauges = metrics.summary().gauges;
    for (const labels of [{}, { account: TRUSTED }, { account: UNTRUSTED }] as Record<string, string>[]) t.is(gauges[metricKey(METRIC.iamBreakerState, labels)], 0, JSON.stringify(labels));
  } finally {
    targets.destroy();
    destroyAwsClients(clients);
  }
});

test.serial(
  "a shard's target accounts are reached before its first record: each role is assumed once per process, when the shard is prepared, and the account's IAM and STS clients share the credentials; a role that cannot be assumed is told then, and holds nothing",
  async (t) => {
    // Counted on the way: every AssumeRole the process sends passes the proxy.
    const proxy = await startFaultProxy({ target: layer!.endpoint, protocol: 'iam', rate: 0 });
    const { metrics, clients, targets } = await targetsAt(proxy.endpoint);
    const shard = 'shardId-000000000002';
    try {
      await targets.prepare(shard);
      t.deepEqual(Object.fromEntries(proxy.assumeRoles()), { [TRUSTED]: 1, [UNTRUSTED]: 1 }, 'each role assumed once, before any record');
      t.true((metrics.summary().counters[metricKey(METRIC.assumeRoleFailures, { account: UNTRUSTED, code: 'AccessDenied' })] ?? 0) >= 1, 'the refused role is told at once');

      // The records then use what was assumed: the IAM step and the reconciler's STS call alike.
      const applier = targets.applierFor(shard);
      t.is(stepOf(await applier.apply(event(TRUSTED, 'prepared-1'))).outcome, 'created');
      t.is(stepOf(await applier.apply(event(TRUSTED, 'prepared-2'))).outcome, 'created');
      t.is(proxy.assumeRoles().get(TRUSTED), 1, "no other AssumeRole: the account's IAM and STS clients share the credentials");
    } finally {
      targets.destroy();
      destroyAwsClients(clients);
      await proxy.close();
    }
  },
);

test.serial('the wrong ExternalId is refused as STS refuses it', async (t) => {
  const env = { ...moto!.env, AWS_ENDPOINT_URL_IAM: layer!.endpoint, AWS_ENDPOINT_URL_STS: layer!.endpoint };
  const config = testConfig({ IPS_TARGET_ACCOUNTS: TRUSTED, IPS_TARGET_EXTERNAL_ID: 'not-the-one' });
  const metrics = new Metrics();
  const clients = createAwsClients(config, { env });
  const own = reconcilerApplier(new IamReconciler({ iam: clients.iam, sts: clients.sts, config, metrics, logger: silentLogger }));
  const targets = new AccountTargets({ config, logger: silentLogger, metrics, sts: clients.sts, own, clientOptions: { env } });
  try {
    await t.throwsAsync(targets.applierFor('shardId-000000000001').apply(event(TRUSTED, 'r')), { instanceOf: AssumeRoleError, message: /AccessDenied/ });
  } finally {
    targets.destroy();
    destroyAwsClients(clients);
  }
});

test("the session name names the worker and the shard, within STS's 64 characters of [\\w+=,.@-]", (t) => {
  t.is(roleSessionName('ip-10-0-1-7.ec2.internal', 'shardId-000000000003'), 'ip-10-0-1-7.ec2.internal@shardId-000000000003');
  const long = roleSessionName(`task/${'a'.repeat(100)}:x`, 'shardId-000000000003');
  t.true(long.length <= 64);
  t.regex(long, /^[\w+=,.@-]{2,64}$/);
  t.true(long.endsWith('@shardId-000000000003'), 'the shard kept whole');
});
