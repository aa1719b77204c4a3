// End to end through the daemon: one stream serves many accounts. The same
// policy name in three accounts (the worker's own and two targets, each
// reached through its assumed role) ends with each account holding its own
// document; an event for an account not on the allow-list is rejected
// `account-not-allowed` and dead-lettered, and nothing reaches that account.
import test from 'ava';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { CreatePolicyVersionCommand, ListPoliciesCommand } from '@aws-sdk/client-iam';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../src/config/paths.js';
import { policyArn } from '../../src/iam/policies.js';
import type { IAMClient } from '@aws-sdk/client-iam';
import { documentsEqual } from '../../src/iam/document.js';
import { policyDocument } from '../../src/ops/load.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { DynamoDbDeadLetterStore } from '../../src/deadletter/dead-letter-store.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { sentRecordId } from '../../tools/oracle/outcome-log.js';
import { readManagedPolicy } from '../support/iam-state.js';
import { assumedIam } from '../support/assumed-iam.js';

const TARGETS = ['111111111111', '222222222222'];
const NOT_ALLOWED = '333333333333';

let testStack: TestStack | undefined;
let daemon: TestDaemon | undefined;
const readers: IAMClient[] = [];
test.before(async () => {
  testStack = await startTestStack({ shards: 2, settings: { IPS_TARGET_ACCOUNTS: TARGETS.join(',') } });
  daemon = startTestDaemon(testStack);
});
test.after.always(async () => {
  for (const reader of readers) reader.destroy();
  await daemon?.stop();
  await testStack?.stack.stop();
});

/** IAM of `account` as the test reads it: the stack's own credentials for the own account, the assumed target role for the others. */
function iamOf(account: string): IAMClient {
  if (account === LOCAL_ACCOUNT_ID) return testStack!.clients().iam;
  const reader = assumedIam(testStack!.stack.env, account);
  readers.push(reader);
  return reader;
}

/** A document only `account`'s copy of the policy holds. */
const documentFor = (account: string, revision: number) => policyDocument(`shared-${account}`, revision);

test.serial('the same policy name in three accounts ends with each account holding its own document; an account not allowed is rejected account-not-allowed and dead-lettered', async (t) => {
  const { config, clients, stack } = testStack!;
  const aws = clients();
  const own = await aws.sts.send(new GetCallerIdentityCommand({}));
  t.is(own.Account, LOCAL_ACCOUNT_ID, "moto's default account is the worker's own");

  const name = 'shared-policy';
  const accounts = [LOCAL_ACCOUNT_ID, ...TARGETS];
  const wave = (revision: number) => accounts.map((account) => upsertedEvent({ eventId: `${name}-${account}-${revision}`, account, name, revision, document: documentFor(account, revision) }));
  const refused = upsertedEvent({ eventId: `${name}-${NOT_ALLOWED}-1`, account: NOT_ALLOWED, name, revision: 1, document: documentFor(NOT_ALLOWED, 1) });
  // The worker's own account without the field: today's events, unchanged.
  const unnamed = upsertedEvent({ eventId: 'own-unnamed-1', name: 'own-unnamed', revision: 1, document: policyDocument('own-unnamed', 1) });

  // Wave 1 creates each account's copy; wave 2 (once wave 1 settled, so nothing is coalesced) updates each.
  const first = [...wave(1), refused, unnamed].map(eventRecord);
  t.is(first[1]!.partitionKey, `111111111111/${name}`, 'partition key <account>/<name>');
  const firstPuts = await putRecords(aws.kinesis, config.streamName, first);
  const firstOutcomes = await waitForOutcomes([daemon!.logFile], firstPuts);
  const firstOf = (i: number) => firstOutcomes.get(sentRecordId(firstPuts[i]!));
  t.deepEqual(
    firstPuts.map((_, i) => firstOf(i)?.outcome),
    ['created', 'created', 'created', 'rejected', 'created'],
    "each account's copy created; the account not allowed rejected",
  );
  t.is(firstOf(3)?.reason, 'account-not-allowed');
  t.is(firstOf(1)?.account, '111111111111', 'the outcome line names the account');
  t.is(firstOf(4)?.account, undefined, 'an event without an account names none');

  const secondPuts = await putRecords(aws.kinesis, config.streamName, wave(2).map(eventRecord));
  const secondOutcomes = await waitForOutcomes([daemon!.logFile], secondPuts);
  t.deepEqual(
    secondPuts.map((put) => secondOutcomes.get(sentRecordId(put))?.outcome),
    ['updated', 'updated', 'updated'],
    "each account's copy updated",
  );

  for (const account of accounts) {
    const held = await readManagedPolicy(iamOf(account), account, config.managedPathPrefix, name);
    t.truthy(held, `${account} holds ${name}`);
    t.true(held !== undefined && documentsEqual(held.document, documentFor(account, 2)), `${account} holds its own latest document`);
    t.is(held?.versions, 2, `${account}: its own two versions, no other account's`);
  }
  const unnamedHeld = await readManagedPolicy(aws.iam, LOCAL_ACCOUNT_ID, config.managedPathPrefix, 'own-unnamed');
  t.true(unnamedHeld !== undefined && documentsEqual(unnamedHeld.document, policyDocument('own-unnamed', 1)), 'an event without an account acts in the own account');
  for (const account of TARGETS) {
    const listed = await iamOf(account).send(new ListPoliciesCommand({ Scope: 'Local' }));
    t.deepEqual(
      listed.Policies?.map((p) => p.PolicyName),
      [name],
      `${account} holds only its own copy`,
    );
  }

  const letter = await new DynamoDbDeadLetterStore(aws.dynamodb, config.deadLetterTable).get(sentRecordId(firstPuts[3]!));
  t.is(letter?.reason, 'account-not-allowed');
  t.is(letter?.account, NOT_ALLOWED, 'the dead letter names the account');
  t.is(letter?.policyName, name);
  t.regex(letter?.detail ?? '', /333333333333/);
  const notAllowed = await iamOf(NOT_ALLOWED).send(new ListPoliciesCommand({ Scope: 'Local' }));
  t.deepEqual(notAllowed.Policies ?? [], [], 'nothing reached the account not allowed');
  t.truthy(stack.env.IPS_TARGET_ACCOUNTS);
});

/** `ips drift ...` as operators run it: a separate process, --json; its exit code and report. */
async function ipsDrift(args: string[]): Promise<{ code: number; report: { drift: { policy: string; kinds: string[] }[]; failed: unknown[] } }> {
  const run = promisify(execFile);
  const env = { ...process.env, ...testStack!.stack.env, IPS_IAM_VISIBILITY_WINDOW_MS: '0' };
  try {
    const { stdout } = await run(process.execPath, [join(projectRoot(), 'dist', 'ops', 'cli.js'), 'drift', '--json', ...args], { env, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, report: JSON.parse(stdout) };
  } catch (error) {
    const failed = error as { code: number; stdout: string };
    if (typeof failed.code !== 'number' || !failed.stdout) throw error;
    return { code: failed.code, report: JSON.parse(failed.stdout) };
  }
}

test.serial('ips drift audits every target account through its role by default, one with --account, and --repair converges the drifted account only', async (t) => {
  const { config } = testStack!;
  const name = 'shared-policy';
  const clean = await ipsDrift([]);
  t.is(clean.code, 0, JSON.stringify(clean.report));
  t.deepEqual(clean.report.drift, []);

  // Account 111111111111's copy changed behind the processor's back.
  const arn = policyArn({ account: '111111111111' }, config.managedPathPrefix, name);
  await iamOf('111111111111').send(new CreatePolicyVersionCommand({ PolicyArn: arn, PolicyDocument: JSON.stringify(documentFor('changed-by-hand', 9)), SetAsDefault: true }));

  const all = await ipsDrift([]);
  t.is(all.code, 1);
  t.deepEqual(
    all.report.drift.map((d) => [d.policy, d.kinds]),
    [[`111111111111/${name}`, ['document']]],
    "only that account's copy drifted, named by its key",
  );
  t.deepEqual(all.report.failed, []);
  const other = await ipsDrift(['--account', '222222222222']);
  t.is(other.code, 0, 'the other account alone: no drift');
  const refused = await ipsDrift(['--account', '333333333333']).catch((error: Error) => error);
  t.true(refused instanceof Error, 'an account the workers do not write to is a usage error');

  const repaired = await ipsDrift(['--account', '111111111111', '--repair', '--yes']);
  t.is(repaired.code, 0, JSON.stringify(repaired.report));
  const held = await readManagedPolicy(iamOf('111111111111'), '111111111111', config.managedPathPrefix, name);
  t.true(held !== undefined && documentsEqual(held.document, documentFor('111111111111', 2)), "the repair wrote the ledger's document back through the role");
  t.is((await ipsDrift([])).code, 0);
});
