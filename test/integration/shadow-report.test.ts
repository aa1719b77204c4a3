// `ips plan --shadow-report` judges each policy against the IAM of its own
// account, as `ips drift` does: a target account's policies against that
// account's IAM, read through its read-only audit role, never the workers'
// write role. A shadow pipeline of real parts (the shadow's DynamoDB ledger,
// its planning step reaching the target account through the same role) plans
// events for the workers' own account and a target account; then the report
// says where IAM of each disagrees. STS answers as it does on AWS (the
// realistic layer refuses AssumeRole of a role that does not exist or does
// not trust the caller), so an account without the audit role is reported
// as not read, though the write role exists there.
import test from 'ava';
import { CreatePolicyCommand, CreateRoleCommand } from '@aws-sdk/client-iam';
import type { IAMClient } from '@aws-sdk/client-iam';
import { createAwsClients, destroyAwsClients } from '../../src/aws/clients.js';
import { DEFAULT_TARGET_AUDIT_ROLE_NAME, loadConfig } from '../../src/config/config.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import { OWNER_TAG } from '../../src/contract/ownership.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { buildProcessParts } from '../../src/intake/process-parts.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { eventRecord } from '../../src/ops/producer.js';
import { provision } from '../../src/ops/provision.js';
import { shadowReport } from '../../src/ops/shadow-report.js';
import { createShardPipeline } from '../../src/pipeline/create.js';
import { useTestStack } from '../../tools/harness/stack.js';
import { startRealisticIam } from '../../tools/harness/realistic-iam.js';
import type { RealisticIam } from '../../tools/harness/realistic-iam.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { LOCAL_TARGET_ACCOUNTS, iamIn, targetTrustPolicy } from '../../tools/local/target-roles.js';
import { doc, silentLogger, streamRecords } from '../support/pipeline.js';

const stackOf = useTestStack(test, { shards: 1 });
const [WITH_AUDIT_ROLE, WITHOUT_AUDIT_ROLE] = LOCAL_TARGET_ACCOUNTS;

let layer: RealisticIam | undefined;
test.after.always(async () => {
  await layer?.close();
});

/** A policy under the managed path that the application owns, as a live worker would have left it. */
async function ownedPolicy(iam: IAMClient, name: string, document: object): Promise<void> {
  const { config } = stackOf();
  await iam.send(new CreatePolicyCommand({ PolicyName: name, Path: config.managedPathPrefix, PolicyDocument: JSON.stringify(document), Tags: [{ Key: OWNER_TAG, Value: config.appName }] }));
}

test.serial("a target account's policies are judged against that account's IAM, read through its audit role; an account without one is not read", async (t) => {
  const { stack } = stackOf();
  layer = await startRealisticIam({ target: stack.env.AWS_ENDPOINT_URL_IAM!, lagMs: [0, 0], enforceTrust: true });
  // The shadow as its deployment runs it: IPS_MODE=shadow, judged at once (no visibility window).
  const env = { ...stack.env, AWS_ENDPOINT_URL_IAM: layer.endpoint, AWS_ENDPOINT_URL_STS: layer.endpoint, IPS_MODE: 'shadow', IPS_IAM_VISIBILITY_WINDOW_MS: '0', IPS_RETRY_BASE_MS: '5' };
  const config = loadConfig(env);
  t.is(config.targetRoleName, DEFAULT_TARGET_AUDIT_ROLE_NAME);
  t.deepEqual(config.targetAccounts, [...LOCAL_TARGET_ACCOUNTS]);
  const aws = createAwsClients(config, { env });
  t.teardown(() => destroyAwsClients(aws));
  await provision(config, aws, 1);

  // The audit role in one target account only; both have the write role (the local stack's).
  const target = iamIn(stack.env, WITH_AUDIT_ROLE);
  t.teardown(() => target.destroy());
  await target.send(new CreateRoleCommand({ RoleName: DEFAULT_TARGET_AUDIT_ROLE_NAME, AssumeRolePolicyDocument: JSON.stringify(targetTrustPolicy(LOCAL_ACCOUNT_ID, undefined)) }));
  await ownedPolicy(target, 'report-agrees', doc('agrees'));
  await ownedPolicy(target, 'report-differs', doc('differs-before'));
  // The same name in the own account holds another document: judged against the wrong account, each would read otherwise.
  await ownedPolicy(aws.iam, 'report-differs', doc('differs-after'));
  await ownedPolicy(aws.iam, 'report-own', doc('own'));

  const parts = buildProcessParts(config, aws, silentLogger, new Metrics(), { env });
  t.teardown(() => parts.accounts?.destroy());
  const pipeline = createShardPipeline(parts, {
    shardId: 'shardId-000000000000',
    lineage: [],
    hashKeyRange: ALL_HASH_KEYS,
    epoch: 0,
    owner: 'shadow-report-test',
    accounts: { own: LOCAL_ACCOUNT_ID, targets: config.targetAccounts },
  });
  const settled = await pipeline.processBatch(
    streamRecords([
      eventRecord(upsertedEvent({ eventId: 'r1', account: WITH_AUDIT_ROLE, name: 'report-agrees', document: doc('agrees') })),
      eventRecord(upsertedEvent({ eventId: 'r2', account: WITH_AUDIT_ROLE, name: 'report-differs', document: doc('differs-after') })),
      eventRecord(upsertedEvent({ eventId: 'r3', name: 'report-own', document: doc('own') })),
    ]),
  );
  // What the live step would do (the shadow's outcome `planned{action}` is named from these): only IAM reads were made.
  t.deepEqual(
    settled.map((s) => s.outcome),
    ['unchanged', 'updated', 'unchanged'],
  );

  const report = await shadowReport(env, aws, { env });
  const byPolicy = Object.fromEntries(report.policies.map((policy) => [policy.policy, policy]));
  t.deepEqual(Object.keys(byPolicy).sort(), [`${WITH_AUDIT_ROLE}/report-agrees`, `${WITH_AUDIT_ROLE}/report-differs`, 'report-own']);
  t.like(byPolicy[`${WITH_AUDIT_ROLE}/report-agrees`], { planned: 'none', state: 'present', agrees: true });
  // Planned as an update in the target account, whose IAM still holds the old document.
  t.like(byPolicy[`${WITH_AUDIT_ROLE}/report-differs`], { planned: 'update', state: 'present', agrees: false });
  t.true(
    byPolicy[`${WITH_AUDIT_ROLE}/report-differs`]!.differs.some((detail) => /document/i.test(detail)),
    byPolicy[`${WITH_AUDIT_ROLE}/report-differs`]!.differs.join('; '),
  );
  t.like(byPolicy['report-own'], { planned: 'none', agrees: true });
  // The account without the audit role cannot be read, though its write role would let the caller in.
  t.deepEqual(
    report.failed.map((failure) => [failure.policy, failure.reason]),
    [[`${WITHOUT_AUDIT_ROLE}/*`, 'read-failed']],
  );
  t.regex(report.failed[0]!.detail, new RegExp(`${WITHOUT_AUDIT_ROLE}:role/${DEFAULT_TARGET_AUDIT_ROLE_NAME}`));
});
