// Decodes and validates one Kinesis record against the event contract,
// version 1 (docs/event-contract.md). It never throws: whatever the bytes,
// the answer is an event or a reason code, so bad input can never stop a
// shard or crash a worker. Unknown top-level fields are ignored, so
// producers may add fields ahead of the processor (forward compatibility).
import type { PolicyDocument, PolicyEvent, PolicyUpserted } from './event.js';
import { OWNER_TAG } from './ownership.js';
import { hashKeyOf, inHashKeyRange } from './hash-key.js';
import { ACCOUNT_ID, policyKey } from './policy-key.js';
import type { HashKeyRange } from './hash-key.js';
import { checkPolicyDocument } from './policy-document.js';
import { InvalidEventError } from '../faults/errors.js';
import type { InputReason } from '../faults/errors.js';
import type { DocumentGuard } from '../policy/document-guard.js';
import { defaultDocumentGuard } from '../policy/document-guard.js';

export interface DecodeOptions {
  managedPathPrefix: string;
  /** What a document may grant (policy/document-guard.ts). @default every default: admin-equivalent */
  guard?: DocumentGuard;
  /** The hash keys the record's shard owns (ListShards' HashKeyRange): a record whose partition key hashes elsewhere is refused. */
  hashKeyRange: HashKeyRange;
}

export type Decoded =
  /** `unknownActions`: action patterns of the document that no AWS service publishes (applied, and reported). */
  { ok: true; event: PolicyEvent; unknownActions?: string[] } | { ok: false; reason: InputReason; detail: string; eventId?: string; policyName?: string; account?: string };

const MAX_RECORD_BYTES = 1024 * 1024;
const POLICY_NAME = /^[A-Za-z0-9+=,.@_-]{1,128}$/;
const POLICY_PATH = /^\/([\x21-\x7e]*\/)?$/;
const CONTROL = /[\u0000-\u001f\u007f]/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

function fail(reason: InputReason, detail: string): never {
  throw new InvalidEventError(reason, detail);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Quotes a value for a detail message, bounded so a hostile value cannot flood logs. */
function show(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
}

export function decodeRecord(data: Buffer, partitionKey: string, options: DecodeOptions): Decoded {
  // Whatever could be read before a check failed, so the dead letter names it.
  const known: { eventId?: string; policyName?: string; account?: string } = {};
  try {
    const raw = readObject(data);
    if (typeof raw.eventId === 'string' && raw.eventId.length <= 128) known.eventId = raw.eventId;
    if (isObject(raw.policy) && typeof raw.policy.name === 'string' && raw.policy.name.length <= 128) known.policyName = raw.policy.name;
    if (typeof raw.account === 'string' && ACCOUNT_ID.test(raw.account)) known.account = raw.account;
    const findings: { unknownActions?: string[] } = {};
    const event = checkEvent(raw, options, findings);
    // Kinesis keeps order per partition key only, and the ledger orders a
    // policy's records by its shard lineage: a policy written under another
    // key could land on another shard and be compared with records it has no
    // order with. Refused, so a producer learns it at once. With an account,
    // the key is `<account>/<name>` (contract/policy-key.ts).
    const expected = policyKey(event);
    if (partitionKey !== expected) {
      const what = event.account === undefined ? 'the policy name' : 'the account and policy name';
      fail('partition-key-mismatch', `partition key ${show(partitionKey)} is not ${what} ${show(expected)}`);
    }
    // The same order, seen from the shard: a producer's ExplicitHashKey (or a
    // KPL user record's) can route a record to any shard, where it has no order
    // with the policy's records on the shard its partition key hashes into.
    // Only that shard may apply it; anywhere else it is refused, not ordered by
    // guess. (The KCL's own check reads the explicit hash key, so it lets such
    // a record through.)
    const hashKey = hashKeyOf(partitionKey);
    if (!inHashKeyRange(hashKey, options.hashKeyRange)) {
      const { startingHashKey, endingHashKey } = options.hashKeyRange;
      fail('hash-key-mismatch', `partition key ${show(partitionKey)} hashes to ${hashKey}, outside this shard's hash key range ${startingHashKey}..${endingHashKey}`);
    }
    return { ok: true, event, ...(findings.unknownActions?.length ? { unknownActions: findings.unknownActions } : {}) };
  } catch (error) {
    const invalid = error instanceof InvalidEventError;
    return {
      ok: false,
      // Deep nesting can exhaust the stack inside JSON.parse or the checks: still bad input.
      reason: invalid ? error.reason : 'invalid-json',
      detail: invalid ? error.detail : `could not be read: ${error instanceof Error ? error.message.slice(0, 120) : 'unknown error'}`,
      ...(known.eventId !== undefined ? { eventId: known.eventId } : {}),
      ...(known.policyName !== undefined ? { policyName: known.policyName } : {}),
      ...(known.account !== undefined ? { account: known.account } : {}),
    };
  }
}

/** The bytes as a JSON object: size, UTF-8, JSON, object. */
function readObject(data: Buffer): Record<string, unknown> {
  if (data.length > MAX_RECORD_BYTES) fail('record-too-large', `record has ${data.length} bytes; at most ${MAX_RECORD_BYTES}`);
  let text: string;
  try {
    text = utf8.decode(data);
  } catch {
    fail('invalid-encoding', 'record is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    fail('invalid-json', `not JSON: ${error instanceof Error ? error.message.slice(0, 120) : 'parse error'}`);
  }
  if (!isObject(parsed)) fail('not-an-object', `expected a JSON object, got ${Array.isArray(parsed) ? 'an array' : parsed === null ? 'null' : typeof parsed}`);
  return parsed;
}

/** The event the object describes, every field checked against the contract, in the order the reason codes are documented. */
function checkEvent(raw: Record<string, unknown>, options: DecodeOptions, findings: { unknownActions?: string[] }): PolicyEvent {
  if (raw.specVersion === undefined) fail('missing-field', 'specVersion is required');
  if (raw.specVersion !== '1') fail('unknown-spec-version', `specVersion ${show(raw.specVersion)} is not supported (expected "1")`);

  if (raw.eventId === undefined) fail('missing-field', 'eventId is required');
  if (typeof raw.eventId !== 'string' || raw.eventId.length < 1 || raw.eventId.length > 128 || CONTROL.test(raw.eventId)) {
    fail('invalid-event-id', `eventId must be a string of 1..128 characters without control characters, got ${show(raw.eventId)}`);
  }

  if (raw.type === undefined) fail('missing-field', 'type is required');
  if (raw.type !== 'policy.upserted' && raw.type !== 'policy.deleted') fail('unknown-event-type', `type ${show(raw.type)} is not policy.upserted or policy.deleted`);

  const account = optionalAccount(raw.account);
  const policy = checkPolicyRef(raw.policy, options);
  const base = {
    specVersion: '1' as const,
    eventId: raw.eventId,
    ...account,
    policyName: policy.name,
    policyPath: policy.path,
    pathGiven: policy.pathGiven,
    ...optionalRevision(raw.revision),
    ...optionalOccurredAt(raw.occurredAt),
  };
  if (raw.type === 'policy.deleted') return { ...base, type: 'policy.deleted' };
  return { ...base, type: 'policy.upserted', ...checkUpsertBody(raw, options, findings) };
}

/** `policy`: its name, and its path or the managed prefix. */
function checkPolicyRef(value: unknown, options: DecodeOptions): { name: string; path: string; pathGiven: boolean } {
  if (value === undefined) fail('missing-field', 'policy is required');
  if (!isObject(value)) fail('invalid-field', 'policy must be an object');
  if (value.name === undefined) fail('missing-field', 'policy.name is required');
  if (typeof value.name !== 'string' || !POLICY_NAME.test(value.name)) {
    fail('invalid-policy-name', `policy.name must be 1..128 of [A-Za-z0-9+=,.@_-], got ${show(value.name)}`);
  }
  if (value.path === undefined) return { name: value.name, path: options.managedPathPrefix, pathGiven: false };
  if (typeof value.path !== 'string' || value.path.length > 512 || !POLICY_PATH.test(value.path) || value.path.includes('//')) {
    fail('invalid-policy-path', `policy.path must be "/" or "/segment/.../" of printable ASCII, at most 512 characters, got ${show(value.path)}`);
  }
  if (!value.path.startsWith(options.managedPathPrefix) || /\/\.\.?\//.test(value.path)) {
    fail('path-not-managed', `policy.path ${show(value.path)} is not under the managed prefix ${options.managedPathPrefix}`);
  }
  return { name: value.name, path: value.path, pathGiven: true };
}

/** `account`: the target AWS account, 12 digits as a string (a number would lose leading zeros). */
function optionalAccount(value: unknown): { account?: string } {
  if (value === undefined) return {};
  if (typeof value !== 'string' || !ACCOUNT_ID.test(value)) fail('invalid-account', `account must be a string of 12 digits, got ${show(value)}`);
  return { account: value };
}

function optionalRevision(value: unknown): { revision?: number } {
  if (value === undefined) return {};
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) fail('invalid-revision', `revision must be an integer >= 0, got ${show(value)}`);
  return { revision: value };
}

function optionalOccurredAt(value: unknown): { occurredAt?: string } {
  if (value === undefined) return {};
  if (typeof value !== 'string' || !RFC3339.test(value) || Number.isNaN(Date.parse(value))) {
    fail('invalid-occurred-at', `occurredAt must be an RFC 3339 date-time, got ${show(value)}`);
  }
  return { occurredAt: value };
}

/** An upsert's document, description and tags. */
function checkUpsertBody(raw: Record<string, unknown>, options: DecodeOptions, findings: { unknownActions?: string[] }): Pick<PolicyUpserted, 'document' | 'tags' | 'description'> {
  if (raw.document === undefined) fail('missing-field', 'document is required for policy.upserted');
  findings.unknownActions = checkPolicyDocument(raw.document, options.guard ?? defaultDocumentGuard()).unknownActions;
  let description: string | undefined;
  if (raw.description !== undefined) {
    if (typeof raw.description !== 'string' || raw.description.length > 1000) fail('invalid-description', 'description must be a string of at most 1000 characters');
    description = raw.description;
  }
  return { document: raw.document as PolicyDocument, tags: checkTags(raw.tags), ...(description !== undefined ? { description } : {}) };
}

/**
 * The tags, in an object without a prototype: every key IAM accepts is a
 * plain key there, `__proto__` and `constructor` included. IAM treats keys
 * that differ only in case as one key, so the reserved `managed-by` is
 * compared without case, and two such keys are refused.
 */
function checkTags(value: unknown): Record<string, string> {
  const tags: Record<string, string> = Object.create(null) as Record<string, string>;
  if (value === undefined) return tags;
  if (!isObject(value)) fail('invalid-tags', 'tags must be an object of string to string');
  const entries = Object.entries(value);
  if (entries.length > 50) fail('invalid-tags', `at most 50 tags, got ${entries.length}`);
  const seen = new Map<string, string>();
  for (const [key, tagValue] of entries) {
    if (key.length < 1 || key.length > 128) fail('invalid-tags', `tag key ${show(key)} must be 1..128 characters`);
    if (typeof tagValue !== 'string' || tagValue.length > 256) fail('invalid-tags', `tag ${show(key)} must have a string value of at most 256 characters`);
    const folded = key.toLowerCase();
    if (folded === OWNER_TAG.toLowerCase()) fail('invalid-tags', `tag key ${show(key)} is reserved for the processor ("${OWNER_TAG}", in any case)`);
    const other = seen.get(folded);
    if (other !== undefined) fail('invalid-tags', `tag keys ${show(other)} and ${show(key)} differ only in case; IAM treats them as one key`);
    seen.set(folded, key);
    tags[key] = tagValue;
  }
  return tags;
}
