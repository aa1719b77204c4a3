// The guardrail end to end: events put into the emulated stream, the real
// MultiLangDaemon, the record processor, the emulated IAM. Admin-equivalent
// documents are refused with reason and detail and dead-lettered; broad but
// safe ones are created; every AWS managed policy document that fits is
// created as sent or refused by the guardrail, exactly as the unit check
// judges it.
import test from 'ava';
import { ListPolicyTagsCommand } from '@aws-sdk/client-iam';
import { DynamoDbDeadLetterStore } from '../../src/deadletter/dead-letter-store.js';
import { documentsEqual } from '../../src/iam/document.js';
import { policyArn } from '../../src/iam/policies.js';
import { DocumentGuard } from '../../src/policy/document-guard.js';
import { eventRecord, putRecords } from '../../src/ops/producer.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';
import { LOCAL_ACCOUNT_ID } from '../../tools/local/stack.js';
import { fittingManagedPolicies, judge } from '../../tools/corpus/aws-managed-policies.js';
import { sentRecordId } from '../../tools/oracle/outcome-log.js';
import { startTestDaemon, waitForOutcomes } from '../../tools/harness/daemon.js';
import type { TestDaemon } from '../../tools/harness/daemon.js';
import { startTestStack } from '../../tools/harness/stack.js';
import type { TestStack } from '../../tools/harness/stack.js';
import { readManagedPolicy } from '../support/iam-state.js';

let testStack: TestStack | undefined;
let daemon: TestDaemon | undefined;
const stackOf = () => testStack!;
test.before(async () => {
  testStack = await startTestStack({ shards: 2 });
  daemon = startTestDaemon(testStack);
});
test.after.always(async () => {
  await daemon?.stop();
  await testStack?.stack.stop();
});

const doc = (...Statement: object[]) => ({ Version: '2012-10-17', Statement });

async function send(events: { name: string; document: object; tags?: Record<string, string> }[], prefix: string) {
  const { config, clients } = stackOf();
  const records = events.map((e, i) => eventRecord(upsertedEvent({ eventId: `${prefix}-${i}`, name: e.name, document: e.document, ...(e.tags ? { tags: e.tags } : {}) })));
  const puts = await putRecords(clients().kinesis, config.streamName, records);
  const outcomes = await waitForOutcomes([daemon!.logFile], puts);
  return puts.map((put) => ({ put, line: outcomes.get(sentRecordId(put))! }));
}

const actual = (name: string) => readManagedPolicy(stackOf().clients().iam, LOCAL_ACCOUNT_ID, stackOf().config.managedPathPrefix, name);

test.serial('the four admin-equivalent shapes are refused with reason and detail and dead-lettered; broad but safe documents are created', async (t) => {
  const refused = [
    { name: 'gr-notaction', document: doc({ Effect: 'Allow', NotAction: 's3:GetObject', Resource: '*' }) },
    { name: 'gr-iam-star', document: doc({ Effect: 'Allow', Action: 'iam:*', Resource: '*' }) },
    { name: 'gr-notresource', document: doc({ Effect: 'Allow', Action: '*', NotResource: 'arn:aws:s3:::nothing' }) },
    { name: 'gr-every-arn', document: doc({ Effect: 'Allow', Action: ['*'], Resource: ['arn:*:*:*:*:*'] }) },
    { name: 'gr-nbsp', document: doc({ Effect: 'Allow', Action: 's3:GetObject', Resource: '*', Condition: { StringEquals: { 'aws:PrincipalTag/team': '\u00a0'.repeat(7_000) } } }) },
  ];
  const created = [
    { name: 'gr-poweruser', document: doc({ Effect: 'Allow', NotAction: ['iam:*', 'organizations:*', 'account:*'], Resource: '*' }) },
    { name: 'gr-s3-all', document: doc({ Effect: 'Allow', Action: 's3:*', Resource: '*' }) },
    { name: 'gr-upper-case', document: doc({ Effect: 'Allow', Action: ['SNS:Publish', 'securityHub:GetFindings'], Resource: '*' }) },
    { name: 'gr-proto-tag', document: doc({ Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }), tags: JSON.parse('{"__proto__":"kept","team":"a"}') as Record<string, string> },
  ];
  const results = await send([...refused, ...created], 'gr');
  t.deepEqual(
    results.map((r) => [r.line.partitionKey, r.line.outcome, r.line.reason]),
    [...refused.slice(0, 4).map((e) => [e.name, 'rejected', 'admin-grant-refused']), ['gr-nbsp', 'rejected', 'document-too-large'], ...created.map((e) => [e.name, 'created', undefined])],
  );
  const { config, clients } = stackOf();
  const letters = await new DynamoDbDeadLetterStore(clients().dynamodb, config.deadLetterTable).list();
  for (const { put } of results.slice(0, 5)) {
    const letter = letters.find((l) => l.id === sentRecordId(put));
    t.truthy(letter, `a dead letter for ${put.partitionKey}`);
    if (letter?.reason === 'admin-grant-refused') t.regex(letter.detail, /^Statement\[0\] grants (every action|iam:\w+)/, letter.detail);
  }
  for (const e of [...refused]) t.is(await actual(e.name), undefined, `${e.name} is not in IAM`);
  for (const e of created) t.true(documentsEqual((await actual(e.name))?.document, e.document), e.name);
  const tags = await clients().iam.send(new ListPolicyTagsCommand({ PolicyArn: policyArn({ account: LOCAL_ACCOUNT_ID }, config.managedPathPrefix, 'gr-proto-tag') }));
  t.is(tags.Tags?.find((tag) => tag.Key === '__proto__')?.Value, 'kept');
});

test.serial('every AWS managed policy that fits is created as sent or refused by the guardrail, as the unit check judges it', async (t) => {
  const expected = judge(fittingManagedPolicies(), new DocumentGuard());
  const results = await send(
    expected.map((v) => ({ name: `aws-${v.policy.name}`, document: v.policy.document })),
    'mp',
  );
  const wrong: string[] = [];
  const emulatorRefused: string[] = [];
  let created = 0;
  let refused = 0;
  for (const [i, { line }] of results.entries()) {
    const want = expected[i]!;
    if (want.verdict === 'admin-grant-refused') {
      if (line.outcome === 'rejected' && line.reason === 'admin-grant-refused') refused++;
      else wrong.push(`${want.policy.name}: ${line.outcome} ${line.reason ?? ''}, the guardrail refuses it`);
    } else if (line.outcome === 'created') {
      created++;
    } else if (line.outcome === 'rejected' && /^iam:MalformedPolicyDocument(Exception)?$/.test(line.reason ?? '')) {
      // moto refuses some documents IAM accepts (ENGINEERING notes): the emulator's verdict, not the processor's.
      emulatorRefused.push(want.policy.name);
    } else {
      wrong.push(`${want.policy.name}: ${line.outcome} ${line.reason ?? ''}`);
    }
  }
  t.log(`${results.length} AWS managed policies: created ${created}, refused by the guardrail ${refused}, refused by the emulator ${emulatorRefused.length} (${emulatorRefused.join(', ')})`);
  t.deepEqual(wrong, []);
  t.true(emulatorRefused.length < 20, 'the emulator refuses only a few');
  // What was created is what was sent (a sample of 200, every 7th).
  const createdNames = expected.filter((v, i) => v.verdict === 'accepted' && results[i]!.line.outcome === 'created').map((v) => v.policy);
  for (const policy of createdNames.filter((_, i) => i % 7 === 0).slice(0, 200)) {
    t.true(documentsEqual((await actual(`aws-${policy.name}`))?.document, policy.document), policy.name);
  }
});
