// End to end through the daemon: one account's IAM cannot be reached (STS
// refuses its role: the trust policy no longer names the worker) while the
// others are healthy. The healthy accounts' events are applied; the failing
// account's are parked after IPS_PARK_AFTER_MS, and a later one joins them,
// so the shard moves on; `ips parked list` shows the park; once the trust is
// back, the redriver applies the parked records in order, and nothing takes
// effect twice.
import test from 'ava';
import { UpdateAssumeRolePolicyCommand } from '@aws-sdk/client-iam';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot } from '../../src/config/paths.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { documentsEqual } from '../../src/iam/document.js';
import { policyDocument } from '../../src/ops/load.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import type { PutResult } from '../../src/ops/producer.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { iamIn, provisionTargetRoles, targetTrustPolicy } from '../../tools/local/target-roles.js';
import { startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startRealisticIam } from '../../tools/harness/realistic-iam.js';
import type { RealisticIam } from '../../tools/harness/realistic-iam.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { outcomeRecordId, readOutcomes, sentRecordId } from '../../tools/oracle/outcome-log.js';
import type { OutcomeLine } from '../../tools/oracle/outcome-log.js';
import { assumedIam } from '../support/assumed-iam.js';
import { readManagedPolicy } from '../support/iam-state.js';

const HEALTHY = '111111111111';
const FAILING = '222222222222';
const NAME = 'parked-policy';

let testStack: TestStack | undefined;
let layer: RealisticIam | undefined;
let daemon: TestDaemon | undefined;
test.before(async () => {
  testStack = await startTestStack({ shards: 1, settings: { IPS_TARGET_ACCOUNTS: [HEALTHY, FAILING].join(',') } });
  const { env } = testStack.stack;
  // STS as it is: a role is assumed only if its trust policy names the caller (moto lets anyone assume anything).
  layer = await startRealisticIam({ target: env.AWS_ENDPOINT_URL_IAM!, lagMs: [0, 0], enforceTrust: true });
  await setTrust(FAILING, '999999999999');
  daemon = startTestDaemon(testStack, 'worker-1', {
    AWS_ENDPOINT_URL_IAM: layer.endpoint,
    AWS_ENDPOINT_URL_STS: layer.endpoint,
    IPS_PARK_AFTER_MS: '3000',
    IPS_REDRIVE_EVERY_MS: '1000',
    IPS_RETRY_BACKOFF_CAP_MS: '1000',
  });
});
test.after.always(async () => {
  await daemon?.stop();
  await layer?.close();
  await testStack?.stack.stop();
});

/** The target role of `account` trusts `trusted` (another account: the worker can no longer assume it). */
async function setTrust(account: string, trusted: string): Promise<void> {
  const iam = iamIn(testStack!.stack.env, account);
  try {
    await iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: testStack!.config.targetRoleName, PolicyDocument: JSON.stringify(targetTrustPolicy(trusted, undefined)) }));
  } finally {
    iam.destroy();
  }
}

const documentFor = (account: string, revision: number) => policyDocument(`${NAME}-${account}`, revision);
const event = (account: string, revision: number) => eventRecord(upsertedEvent({ eventId: `${account}-${revision}`, account, name: NAME, revision, document: documentFor(account, revision) }));

/** Every outcome line of each record, in log order. */
function linesOf(puts: PutResult[]): OutcomeLine[][] {
  const all = readOutcomes(daemon!.logFile);
  return puts.map((put) => all.filter((line) => outcomeRecordId(line) === sentRecordId(put)));
}

async function ipsParked(args: string[]): Promise<{ code: number; stdout: string }> {
  const run = promisify(execFile);
  try {
    const { stdout } = await run(process.execPath, [join(projectRoot(), 'dist', 'ops', 'cli.js'), 'parked', ...args], { env: { ...process.env, ...testStack!.stack.env } });
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code: number; stdout: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, stdout: failed.stdout };
  }
}

test('with one account unreachable, the others are applied; its records are parked, not waited on, then applied in order once it is back; nothing twice', async (t) => {
  const { config, clients, stack } = testStack!;
  const aws = clients();
  const kinesis = aws.kinesis;

  // Revision 1 in all three accounts; the failing account's cannot be written.
  const first = await putRecords(
    kinesis,
    config.streamName,
    [LOCAL_ACCOUNT_ID, HEALTHY, FAILING].map((account) => event(account, 1)),
  );
  const firstOutcomes = await waitForOutcomes([daemon!.logFile], first, 180_000);
  t.deepEqual(
    first.map((put) => firstOutcomes.get(sentRecordId(put))?.outcome),
    ['created', 'created', 'parked'],
    'the healthy accounts are applied; the unreachable one is parked',
  );
  t.is(firstOutcomes.get(sentRecordId(first[2]!))?.reason, 'assume-role-failed');

  // The shard moved on: revision 2 everywhere; the failing account's joins the park behind revision 1.
  const second = await putRecords(
    kinesis,
    config.streamName,
    [LOCAL_ACCOUNT_ID, HEALTHY, FAILING].map((account) => event(account, 2)),
  );
  const secondOutcomes = await waitForOutcomes([daemon!.logFile], second, 120_000);
  t.deepEqual(
    second.map((put) => secondOutcomes.get(sentRecordId(put))?.outcome),
    ['updated', 'updated', 'parked'],
  );
  t.is(secondOutcomes.get(sentRecordId(second[2]!))?.reason, 'behind-parked');

  const listed = await ipsParked(['list', '--json']);
  t.is(listed.code, 0);
  t.deepEqual(
    (JSON.parse(listed.stdout) as { policy: string; records: number; account: string }[]).map((p) => [p.policy, p.account, p.records]),
    [[`${FAILING}/${NAME}`, FAILING, 2]],
  );
  t.is(await readManagedPolicy(assumedIam(stack.env, FAILING), FAILING, config.managedPathPrefix, NAME), undefined, 'nothing reached the failing account');

  // The account is back: the redriver applies its park, in order.
  await provisionTargetRoles(stack.env, config, LOCAL_ACCOUNT_ID);
  const parked = [first[2]!, second[2]!];
  const deadline = Date.now() + 120_000;
  while (!linesOf(parked).every((lines) => lines.some((line) => line.redriven)) && Date.now() < deadline) await sleep(500);
  const redriven = linesOf(parked).map((lines) => lines.find((line) => line.redriven)?.outcome);
  t.deepEqual(redriven, ['superseded', 'created'], 'revision 2 is what the account gets; revision 1 is superseded by it');

  for (const account of [LOCAL_ACCOUNT_ID, HEALTHY, FAILING]) {
    const iam = account === LOCAL_ACCOUNT_ID ? aws.iam : assumedIam(stack.env, account);
    const held = await readManagedPolicy(iam, account, config.managedPathPrefix, NAME);
    t.true(held !== undefined && documentsEqual(held.document, documentFor(account, 2)), `${account} holds its revision 2`);
  }
  for (const lines of linesOf([...first, ...second])) {
    t.true(lines.filter((line) => ['created', 'updated', 'deleted'].includes(line.outcome)).length <= 1, 'no record takes effect twice');
  }
  const after = await ipsParked(['list', '--json']);
  t.deepEqual(JSON.parse(after.stdout), [], 'the park is gone');
});
