// docs/event-contract.schema.json and the processor's decoder agree on which
// events are valid. A producer in another language checks an event with the
// schema before it puts it; whatever the schema refuses, the processor
// rejects, and whatever it accepts, the processor accepts, except for the
// checks a schema cannot express, named below (DECODER_ONLY and the two
// checks inside a reason code) and excluded exactly: by the decoder's reason
// and, inside a reason code, by what the input holds.
//
// Records come from the hostile corpus, the docs' examples, the local demo,
// the load generator, generated valid events, and generated events with
// near-valid and wrong values in every slot. The schema is checked by ajv
// (draft 2020-12, strict mode) after the bytes are read as UTF-8 JSON, as a
// producer's serializer would have written them.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/config.js';
import { projectRoot } from '../../src/config/paths.js';
import { documentGuardFromConfig } from '../../src/policy/document-guard.js';
import { ALL_HASH_KEYS } from '../../src/contract/hash-key.js';
import { decodeRecord } from '../../src/contract/decode.js';
import type { Decoded } from '../../src/contract/decode.js';
import type { InputReason } from '../../src/faults/errors.js';
import { generateLoad } from '../../src/ops/load.js';
import { demoWaves } from '../../tools/local/demo.js';
import { hostileCorpus } from '../support/hostile-corpus.js';

const schema = JSON.parse(readFileSync(join(projectRoot(), 'docs', 'event-contract.schema.json'), 'utf8')) as Record<string, unknown>;
// ajv's strict mode (its default) refuses a schema with an unknown keyword or an unclear type.
const validate = new Ajv2020({ allErrors: true }).compile(schema);
const config = loadConfig({});
// As the pipeline builds them (pipeline/create.ts), from the default configuration.
// Decoded as a shard that owns every hash key: which shard a record landed on (hash-key-mismatch) is not part of the event either.
const decodeOptions = { managedPathPrefix: config.managedPathPrefix, guard: documentGuardFromConfig(config), hashKeyRange: ALL_HASH_KEYS };

/**
 * Reason codes the schema cannot decide, and why. A record the decoder
 * rejects with one of them is left out of the agreement.
 */
const DECODER_ONLY: Partial<Record<InputReason, string>> = {
  'record-too-large': "the record's bytes: Kinesis's 1 MiB (a put of a larger record fails anyway)",
  'partition-key-mismatch': 'the partition key is not part of the event',
  'admin-grant-refused': 'the guardrail: what a document grants, once wildcards are expanded',
  'document-too-large': "the document's size as IAM counts it",
};

/** Checks inside a reason code the schema shares: the input, not the reason alone, says whether one applied. */
const LENGTH_REASONS = ['invalid-event-id', 'invalid-description', 'invalid-tags'] as const;

/** Tag keys equal but for case: IAM holds them as one key. */
function hasCaseTwinTags(event: unknown): boolean {
  const tags = isObject(event) ? event.tags : undefined;
  if (!isObject(tags)) return false;
  const keys = Object.keys(tags);
  return new Set(keys.map((key) => key.toLowerCase())).size !== keys.length;
}

/**
 * The reasons whose length limit the input passes in characters (code points,
 * as JSON Schema counts) and breaks in UTF-16 code units (as the processor and
 * IAM count): a character outside the Basic Multilingual Plane counts twice.
 */
function utf16OnlyOverflows(event: unknown): Set<string> {
  const found = new Set<string>();
  if (!isObject(event)) return found;
  const over = (value: unknown, max: number) => typeof value === 'string' && [...value].length <= max && value.length > max;
  if (over(event.eventId, 128)) found.add('invalid-event-id');
  if (over(event.description, 1000)) found.add('invalid-description');
  if (isObject(event.tags) && Object.entries(event.tags).some(([key, value]) => over(key, 128) || over(value, 256))) found.add('invalid-tags');
  return found;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The bytes as JSON, or undefined: a schema checks a value, and bytes that are no JSON value are no event. */
function parse(data: Buffer): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(utf8.decode(data)) as unknown };
  } catch {
    return undefined;
  }
}

function schemaAccepts(data: Buffer): boolean {
  const parsed = parse(data);
  return parsed !== undefined && validate(parsed.value) === true;
}

/** The name of the decoder-only check that rejected the record, if one did. */
function decoderOnly(data: Buffer, decoded: Decoded): string | undefined {
  if (decoded.ok) return undefined;
  if (DECODER_ONLY[decoded.reason] !== undefined) return decoded.reason;
  const value = parse(data)?.value;
  if (decoded.reason === 'invalid-tags' && hasCaseTwinTags(value)) return 'invalid-tags (keys equal but for case)';
  if ((LENGTH_REASONS as readonly string[]).includes(decoded.reason) && utf16OnlyOverflows(value).has(decoded.reason)) return `${decoded.reason} (length in UTF-16 code units)`;
  return undefined;
}

interface Tally {
  validAgreed: number;
  invalidAgreed: number;
  excluded: Record<string, number>;
  disagreed: string[];
}

const tally = (): Tally => ({ validAgreed: 0, invalidAgreed: 0, excluded: {}, disagreed: [] });
const totals = tally();

/** One record through both: counted as agreed or excluded by name; a disagreement is kept with its reason. */
function judge(into: Tally, name: string, data: Buffer, partitionKey: string): { schema: boolean; decoded: Decoded; excludedBy?: string } {
  const decoded = decodeRecord(data, partitionKey, decodeOptions);
  const schema = schemaAccepts(data);
  const excludedBy = decoderOnly(data, decoded);
  for (const t of [into, totals]) {
    if (excludedBy !== undefined) t.excluded[excludedBy] = (t.excluded[excludedBy] ?? 0) + 1;
    else if (schema !== decoded.ok)
      t.disagreed.push(`${name}: schema ${schema ? 'accepts' : `refuses (${ajvErrors()})`}, decoder ${decoded.ok ? 'accepts' : `rejects ${decoded.reason}: ${decoded.detail}`}`);
    else if (schema) t.validAgreed++;
    else t.invalidAgreed++;
  }
  return { schema, decoded, ...(excludedBy !== undefined ? { excludedBy } : {}) };
}

function ajvErrors(): string {
  return (validate.errors ?? [])
    .slice(0, 3)
    .map((error) => `${error.instancePath || '/'} ${error.message}`)
    .join('; ');
}

function report(t: ExecutionContext, what: string, counts: Tally): void {
  const excluded =
    Object.entries(counts.excluded)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ') || 'none';
  t.log(`${what}: valid agreed ${counts.validAgreed}, invalid agreed ${counts.invalidAgreed}, decoder-only (excluded) ${excluded}, disagreed ${counts.disagreed.length}`);
  t.deepEqual(counts.disagreed, [], `${what}: the schema and the decoder disagree`);
}

/** The record a producer writes: the partition key is `<account>/<name>` when the event names an account (a string), the name otherwise. */
const record = (event: unknown, partitionKey?: string) => {
  const name = isObject(event) && isObject(event.policy) && typeof event.policy.name === 'string' ? event.policy.name : 'k';
  const account = isObject(event) && typeof event.account === 'string' ? event.account : undefined;
  return { data: Buffer.from(JSON.stringify(event) ?? 'null'), partitionKey: partitionKey ?? (account !== undefined ? `${account}/${name}` : name) };
};

test.serial('the schema is draft 2020-12 and compiles under ajv strict mode', (t) => {
  t.is(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  t.is(typeof validate, 'function');
});

test.serial('hostile corpus: the schema refuses what the decoder rejects, but for the decoder-only checks, whose records it accepts', (t) => {
  const counts = tally();
  for (const hostile of hostileCorpus) {
    const { schema: accepted, excludedBy } = judge(counts, hostile.name, hostile.data, hostile.partitionKey);
    // Excluded only where the shape is right and only the named check fails (bytes that are no JSON aside).
    if (excludedBy !== undefined && parse(hostile.data) !== undefined) t.true(accepted, `${hostile.name}: excluded by ${excludedBy}, yet the schema refuses it (${ajvErrors()})`);
  }
  report(t, `hostile corpus (${hostileCorpus.length} records)`, counts);
  t.is(counts.validAgreed, 0, 'every corpus record is invalid');
});

test.serial('each decoder-only check has a record the schema accepts and the decoder rejects for that reason alone', (t) => {
  const base = {
    specVersion: '1',
    eventId: 'only-1',
    type: 'policy.upserted',
    policy: { name: 'only' },
    document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/*' }] },
  };
  const witnesses: [string, { data: Buffer; partitionKey: string }][] = [
    ['record-too-large', record({ ...base, padding: 'x'.repeat(1024 * 1024) })],
    ['partition-key-mismatch', record(base, 'another-key')],
    ['partition-key-mismatch', record({ ...base, account: '111111111111' }, 'only')],
    ['admin-grant-refused', record({ ...base, document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } })],
    [
      'document-too-large',
      record({ ...base, document: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObject', Resource: Array.from({ length: 300 }, (_, i) => `arn:aws:s3:::bucket-${i}/*`) }] } }),
    ],
    ['invalid-event-id (length in UTF-16 code units)', record({ ...base, eventId: '\u{1F600}'.repeat(100) })],
    ['invalid-description (length in UTF-16 code units)', record({ ...base, description: '\u{1F600}'.repeat(600) })],
    ['invalid-tags (length in UTF-16 code units)', record({ ...base, tags: { team: '\u{1F600}'.repeat(200) } })],
  ];
  t.deepEqual(
    [...new Set(witnesses.map(([name]) => name.split(' ')[0]))].filter((reason) => DECODER_ONLY[reason as InputReason] !== undefined),
    Object.keys(DECODER_ONLY),
    'a witness for every decoder-only reason code',
  );
  for (const [name, { data, partitionKey }] of witnesses) {
    t.true(schemaAccepts(data), `${name}: the schema accepts it (${ajvErrors()})`);
    const decoded = decodeRecord(data, partitionKey, decodeOptions);
    t.is(decoderOnly(data, decoded), name, `${name}: the decoder rejects it for that check (${decoded.ok ? 'accepted' : `${decoded.reason}: ${decoded.detail}`})`);
  }
  // Two tag keys equal but for case are one key to IAM: the schema cannot tell; the decoder may refuse them, for that reason only.
  const twins = record({ ...base, tags: { team: 'a', Team: 'b' } });
  t.true(schemaAccepts(twins.data));
  const decoded = decodeRecord(twins.data, twins.partitionKey, decodeOptions);
  t.true(decoded.ok || decoderOnly(twins.data, decoded) === 'invalid-tags (keys equal but for case)', decoded.ok ? '' : decoded.detail);
});

/** The ```json blocks of docs/event-contract.md. */
function docsExamples(): unknown[] {
  const text = readFileSync(join(projectRoot(), 'docs', 'event-contract.md'), 'utf8');
  return [...text.matchAll(/```json\n([\s\S]*?)```/g)].map((match) => JSON.parse(match[1]!) as unknown);
}

test.serial("valid examples: the docs' examples, the demo's events and the load generator's are valid to both; their malformed records invalid to both", (t) => {
  const examples = docsExamples();
  t.true(examples.length >= 2, 'the docs show examples');
  const docs = tally();
  for (const [i, example] of examples.entries()) {
    const { data, partitionKey } = record(example);
    const { schema: accepted, decoded } = judge(docs, `docs example ${i + 1}`, data, partitionKey);
    t.true(accepted && decoded.ok, `docs example ${i + 1} is valid`);
  }
  report(t, `docs examples (${examples.length})`, docs);

  const demo = tally();
  const demoRecords = demoWaves().flat();
  for (const [i, { record: r, expect }] of demoRecords.entries()) judge(demo, `demo ${i + 1} (${expect})`, r.data, r.partitionKey);
  report(t, `demo events (${demoRecords.length})`, demo);

  const load = tally();
  const generated = generateLoad({
    policies: 40,
    events: 2_000,
    seed: 22,
    deleteRatio: 0.2,
    duplicateRatio: 0.05,
    staleRatio: 0.05,
    malformedRatio: 0.1,
    paths: [undefined, '/stream-managed/team-a/', '/stream-managed/'],
    pathOmitRatio: 0.3,
  });
  for (const [i, r] of generated.entries()) {
    const { schema: accepted } = judge(load, `load ${i} (${r.kind})`, r.data, r.partitionKey);
    if (r.kind !== 'malformed') t.true(accepted, `load ${i} (${r.kind}) is valid to the schema (${ajvErrors()})`);
  }
  report(t, `load generator (${generated.length})`, load);
});

// ---- generated events ----

const valid = {
  eventId: fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9._:#-]{1,128}$/),
    fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }).filter((s) => s.length <= 128 && !/[\u0000-\u001f\u007f]/.test(s)),
  ),
  name: fc.stringMatching(/^[A-Za-z0-9+=,.@_-]{1,128}$/),
  account: fc.stringMatching(/^[0-9]{12}$/),
  path: fc
    .array(
      fc.stringMatching(/^[!-.0-~]{1,12}$/).filter((s) => s !== '.' && s !== '..'),
      { maxLength: 3 },
    )
    .map((segments) => `/stream-managed/${segments.map((s) => `${s}/`).join('')}`),
  revision: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
  occurredAt: fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => d.toISOString()),
  action: fc.constantFrom('s3:GetObject', 's3:List*', 'ec2:Describe*', 'logs:?etLogEvents', 'dynamodb:GetItem', 'sqs:ReceiveMessage', 'cloudwatch:GetMetricData'),
  resource: fc.constantFrom('*', 'arn:aws:s3:::reports/*', 'arn:aws:s3:::reports', 'arn:aws:logs:us-east-1:123456789012:log-group:app:*', 'arn:aws:dynamodb:*:*:table/orders'),
  condition: fc.constantFrom(
    {},
    { StringEquals: { 'aws:RequestedRegion': 'eu-west-1' } },
    { Bool: { 'aws:SecureTransport': true } },
    { NumericLessThan: { 's3:max-keys': [10, 20] } },
    { StringLike: { 's3:prefix': ['home/', 'shared/*'] } },
  ),
  tagKey: fc.stringMatching(/^[A-Za-z0-9 _.:/=+@-]{1,128}$/).filter((k) => k.toLowerCase() !== 'managed-by'),
  tagValue: fc.stringMatching(/^[A-Za-z0-9 _.:/=+@-]{0,256}$/),
};

const oneOrList = <T>(arb: fc.Arbitrary<T>) => fc.oneof(arb, fc.array(arb, { minLength: 1, maxLength: 4 }));
/** Mostly the right kind of value, now and then one near the edge or past it. */
const mostly = <T, U>(right: fc.Arbitrary<T>, edge: fc.Arbitrary<U>, weight = 8) =>
  fc.oneof({ weight, arbitrary: right as fc.Arbitrary<T | U> }, { weight: 1, arbitrary: edge as fc.Arbitrary<T | U> });

const validStatement = fc.record(
  {
    Sid: fc.stringMatching(/^[A-Za-z0-9]{0,12}$/),
    Effect: fc.constantFrom('Allow', 'Deny'),
    Action: oneOrList(valid.action),
    Resource: oneOrList(valid.resource),
    Condition: valid.condition,
  },
  { requiredKeys: ['Effect', 'Action', 'Resource'] },
);

const validDocument = fc.record(
  { Version: fc.constantFrom('2012-10-17', '2008-10-17'), Id: fc.string({ maxLength: 20 }), Statement: fc.oneof(validStatement, fc.array(validStatement, { minLength: 1, maxLength: 4 })) },
  { requiredKeys: ['Statement'] },
);

const validEvent = fc
  .record(
    {
      eventId: valid.eventId,
      type: fc.constantFrom('policy.upserted', 'policy.deleted'),
      account: valid.account,
      name: valid.name,
      path: valid.path,
      revision: valid.revision,
      occurredAt: valid.occurredAt,
      document: validDocument,
      description: fc.string({ maxLength: 1000 }),
      tags: fc.dictionary(valid.tagKey, valid.tagValue, { maxKeys: 50 }).filter((tags) => new Set(Object.keys(tags).map((k) => k.toLowerCase())).size === Object.keys(tags).length),
      extra: fc.jsonValue({ maxDepth: 2 }),
    },
    { requiredKeys: ['eventId', 'type', 'name', 'document'] },
  )
  .map(({ eventId, type, account, name, path, revision, occurredAt, document, description, tags, extra }) => ({
    specVersion: '1',
    eventId,
    type,
    ...(account !== undefined ? { account } : {}),
    policy: { name, ...(path !== undefined ? { path } : {}) },
    ...(revision !== undefined ? { revision } : {}),
    ...(occurredAt !== undefined ? { occurredAt } : {}),
    ...(type === 'policy.upserted' ? { document, ...(description !== undefined ? { description } : {}), ...(tags !== undefined ? { tags } : {}) } : {}),
    ...(extra !== undefined ? { producerField: extra } : {}),
  }));

test.serial('generated valid events: the schema accepts every one, and so does the decoder but for its own checks', (t) => {
  const counts = tally();
  let n = 0;
  fc.assert(
    fc.property(validEvent, (event) => {
      const { data, partitionKey } = record(event);
      const { schema: accepted } = judge(counts, `valid ${n++}: ${data.toString('utf8').slice(0, 300)}`, data, partitionKey);
      return accepted;
    }),
    { numRuns: 3_000, seed: 22 },
  );
  report(t, `generated valid events (${n})`, counts);
  t.true(counts.validAgreed >= n * 0.9, 'most generated events are valid to both');
});

// Values near the rules' edges and past them, for every slot an event has.
const emoji = (n: number) => '\u{1F600}'.repeat(n);
const edgy = {
  specVersion: fc.constantFrom('1', '2', 1, null, '01'),
  eventId: fc.oneof(valid.eventId, fc.constantFrom('', 'e'.repeat(128), 'e'.repeat(129), 'a\u001bb', 'a\u007fb', 'a\u009bb', 'a\u202eb', 'a\nb', emoji(64), emoji(65), 7, null, ['x'])),
  type: fc.constantFrom('policy.upserted', 'policy.deleted', 'Policy.Upserted', 'policy.renamed', null, ['policy.deleted']),
  account: fc.constantFrom(
    '',
    '12345678901',
    '1234567890123',
    '12345678901a',
    ' 123456789012',
    '123456789012\n',
    '\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662',
    123456789012,
    null,
    ['123456789012'],
  ),
  name: fc.oneof(valid.name, fc.constantFrom('', 'p'.repeat(128), 'p'.repeat(129), 'a b', 'a/b', 'pölicy', '#epoch', 'a\n', '\ud800', 12, null)),
  path: fc.oneof(
    valid.path,
    fc.constantFrom(
      '/',
      '/stream-managed',
      'stream-managed/',
      '/stream-managed//',
      '/stream-managed/./',
      '/stream-managed/../admin/',
      '/stream-managed/.../',
      '/stream-managed/a./',
      '/stream-managed/ /',
      '/stream-managed/é/',
      '/stream-managed/a\n/',
      '/stream-managed-evil/',
      '/admin/',
      `/stream-managed/${'a'.repeat(495)}/`,
      `/stream-managed/${'a'.repeat(496)}/`,
      5,
      null,
    ),
  ),
  revision: fc.oneof(valid.revision, fc.constantFrom(-1, 1.5, Number.MAX_SAFE_INTEGER + 1, 1e300, '3', null, true)),
  occurredAt: fc.oneof(
    valid.occurredAt,
    fc
      .tuple(
        fc.stringMatching(/^[0-9]{4}$/),
        fc.constantFrom('00', '01', '02', '12', '13'),
        fc.constantFrom('00', '01', '29', '30', '31', '32'),
        fc.constantFrom('T', 't', ' '),
        fc.constantFrom('00', '23', '24', '25'),
        fc.constantFrom('00', '59', '60'),
        fc.constantFrom('00', '59', '60'),
        fc.constantFrom('', '.0', '.000', '.5', '.123456789'),
        fc.constantFrom('Z', 'z', '+00:00', '-23:59', '+24:00', '+05:60', '', '+0530'),
      )
      .map(([y, mo, d, sep, h, mi, s, frac, zone]) => `${y}-${mo}-${d}${sep}${h}:${mi}:${s}${frac}${zone}`),
    fc.constantFrom('yesterday', '2024-01-01', 1_700_000_000, null, '2024-01-01T00:00:00Z\n'),
  ),
  effect: fc.constantFrom('Allow', 'Deny', 'allow', null),
  action: fc.oneof(
    valid.action,
    fc.constantFrom('*', '*:*', 'iam:*', 'iam:PassRole', 'S3:GetObject', 'SNS:Publish', 's3:get*', 's3:Get Object', 's3:Get-Object', 'GetObject', 's3:', ':GetObject', '', 's3:GetObject\n', 5, null),
  ),
  resource: fc.oneof(valid.resource, fc.constantFrom('*', '', 'arn:*:*:*:*:*', 5, null)),
  sid: fc.constantFrom('', 'Read1', 'a-b', 'a b', 5),
  condition: fc.oneof(
    valid.condition,
    fc.constantFrom(
      'true',
      [],
      { StringEquals: 'x' },
      { StringEquals: { k: [] } },
      { StringEquals: { k: null } },
      { StringEquals: { k: { nested: 1 } } },
      { StringEquals: { k: [1, 'a', true] } },
      { StringEquals: { k: [[1]] } },
    ),
  ),
  description: fc.constantFrom('', 'd'.repeat(1000), 'd'.repeat(1001), emoji(500), emoji(501), 1, null),
  tagKey: fc.oneof(valid.tagKey, fc.constantFrom('', 'k'.repeat(128), 'k'.repeat(129), 'managed-by', 'Managed-By', 'MANAGED-BY', 'team', 'Team', '__proto__', emoji(64), emoji(65), 'a\u001bb')),
  tagValue: fc.oneof(valid.tagValue, fc.constantFrom('', 'v'.repeat(256), 'v'.repeat(257), emoji(128), emoji(129), 1, null, 'a\u001bb')),
};

/** A statement with each key mostly right, now and then absent, doubled or wrong, and keys no statement may have. */
const edgyStatement = fc
  .record(
    {
      Sid: fc.oneof(fc.stringMatching(/^[A-Za-z0-9]{0,8}$/), edgy.sid),
      Effect: mostly(fc.constantFrom('Allow', 'Deny'), edgy.effect),
      actionKey: mostly(fc.constantFrom('Action', 'NotAction'), fc.constantFrom('both', 'neither')),
      actions: mostly(oneOrList(valid.action), fc.oneof(edgy.action, fc.array(edgy.action, { maxLength: 3 })), 4),
      resourceKey: mostly(fc.constantFrom('Resource', 'NotResource'), fc.constantFrom('both', 'neither')),
      resources: mostly(oneOrList(valid.resource), fc.oneof(edgy.resource, fc.array(edgy.resource, { maxLength: 3 })), 4),
      Condition: mostly(valid.condition, edgy.condition, 4),
      stray: fc.constantFrom('Principal', 'NotPrincipal', 'Effects', '__proto__', 'sid'),
    },
    { requiredKeys: ['actionKey', 'actions', 'resourceKey', 'resources'] },
  )
  .chain((statement) => fc.nat(9).map((roll) => ({ ...statement, stray: roll === 0 ? statement.stray : undefined, Effect: roll === 1 ? statement.Effect : (statement.Effect ?? 'Allow') })))
  .map(({ actionKey, actions, resourceKey, resources, stray, ...rest }) => {
    const statement: Record<string, unknown> = JSON.parse(JSON.stringify(rest)) as Record<string, unknown>;
    if (actionKey === 'Action' || actionKey === 'both') statement.Action = actions;
    if (actionKey === 'NotAction' || actionKey === 'both') statement.NotAction = actions;
    if (resourceKey === 'Resource' || resourceKey === 'both') statement.Resource = resources;
    if (resourceKey === 'NotResource' || resourceKey === 'both') statement.NotResource = resources;
    // An own __proto__ key, as JSON.parse makes it from a record.
    if (stray !== undefined) Object.defineProperty(statement, stray, { value: '*', enumerable: true, configurable: true, writable: true });
    return statement;
  });

const edgyDocument = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .record(
        {
          Version: mostly(fc.constantFrom('2012-10-17', '2008-10-17'), fc.constantFrom('2020-01-01', null)),
          Id: mostly(fc.constant('doc'), fc.constant(5)),
          Statement: mostly(fc.oneof(edgyStatement, fc.array(edgyStatement, { minLength: 1, maxLength: 3 })), fc.constantFrom(null, 'allow all', [], [[]]), 12),
          Extra: fc.constant(1),
        },
        { requiredKeys: [] },
      )
      .chain((document) =>
        fc.nat(9).map((roll) => (roll === 0 ? document : (({ Extra: _extra, ...rest }) => ({ Statement: document.Statement ?? [{ Effect: 'Deny', Action: '*', Resource: '*' }], ...rest }))(document))),
      ),
  },
  { weight: 1, arbitrary: fc.constantFrom('{"Version":"2012-10-17"}', [], null, 5) },
);

const edgyTags = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .array(fc.tuple(mostly(valid.tagKey, edgy.tagKey, 4), mostly(valid.tagValue, edgy.tagValue, 4)), { maxLength: 4 })
      .map((entries) => JSON.parse(`{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`) as unknown),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, 'v'])),
      Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])),
      ['a'],
      null,
      'team=a',
    ),
  },
);

/** Mostly right, each slot now and then wrong or absent: events the two must judge alike. */
const edgyEvent = fc
  .record(
    {
      specVersion: mostly(fc.constant('1'), edgy.specVersion, 20),
      eventId: mostly(valid.eventId, edgy.eventId, 3),
      type: mostly(fc.constantFrom('policy.upserted', 'policy.deleted'), edgy.type, 20),
      account: mostly(valid.account, edgy.account, 4),
      policy: mostly(
        fc.record({ name: mostly(valid.name, edgy.name), path: mostly(valid.path, edgy.path, 4) }, { requiredKeys: ['name'] }),
        fc.oneof(fc.record({ name: edgy.name, path: edgy.path }, { requiredKeys: [] }), fc.constantFrom('hostile', ['hostile'], null)),
        20,
      ),
      revision: mostly(valid.revision, edgy.revision, 4),
      occurredAt: mostly(valid.occurredAt, edgy.occurredAt, 2),
      document: mostly(validDocument, edgyDocument, 1),
      description: mostly(fc.string({ maxLength: 40 }), edgy.description, 4),
      tags: edgyTags,
      extra: fc.jsonValue({ maxDepth: 2 }),
    },
    { requiredKeys: ['specVersion', 'eventId', 'type', 'policy'] },
  )
  .map(({ extra, ...event }) => ({ ...event, ...(extra !== undefined ? { producerField: extra } : {}) }));

test.serial('generated events with near-valid and wrong values in every slot: the two agree on each, but for the decoder-only checks', (t) => {
  const counts = tally();
  let n = 0;
  fc.assert(
    fc.property(edgyEvent, fc.nat(19), (event, roll) => {
      const keyIsName = roll !== 0;
      const { data, partitionKey } = record(event, keyIsName ? undefined : 'another-key');
      judge(counts, `event ${n++}: ${data.toString('utf8').slice(0, 400)}`, data, partitionKey);
      return counts.disagreed.length === 0;
    }),
    { numRuns: 20_000, seed: 22 },
  );
  report(t, `generated edge events (${n})`, counts);
  t.true(counts.validAgreed > 3_000 && counts.invalidAgreed > 3_000, 'both sides of the line are exercised');
});

test.serial('agreement over every record above', (t) => {
  report(t, 'all records', totals);
});
