// Decodes and validates one Kinesis record against the event contract,
// version 1 (docs/event-contract.md). It never throws: whatever the bytes,
// the answer is an event or a reason code, so bad input can never stop a
// shard or crash a worker. Unknown top-level fields are ignored, so
// producers may add fields ahead of the processor (forward compatibility).
import type { PolicyDocument, PolicyEvent } from './event.js';
import { OWNER_TAG } from './ownership.js';
import { checkPolicyDocument } from './policy-document.js';
import { InvalidEventError } from '../faults/errors.js';
import type { InputReason } from '../faults/errors.js';

export interface DecodeOptions {
  managedPathPrefix: string;
  refuseAdminGrant: boolean;
}

export type Decoded =
  | { ok: true; event: PolicyEvent }
  | { ok: false; reason: InputReason; detail: string; eventId?: string; policyName?: string };

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
  let eventId: string | undefined;
  let policyName: string | undefined;
  try {
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
    const raw = parsed;
    if (typeof raw.eventId === 'string' && raw.eventId.length <= 128) eventId = raw.eventId;
    if (isObject(raw.policy) && typeof raw.policy.name === 'string' && raw.policy.name.length <= 128) policyName = raw.policy.name;

    if (raw.specVersion === undefined) fail('missing-field', 'specVersion is required');
    if (raw.specVersion !== '1') fail('unknown-spec-version', `specVersion ${show(raw.specVersion)} is not supported (expected "1")`);

    if (raw.eventId === undefined) fail('missing-field', 'eventId is required');
    if (typeof raw.eventId !== 'string' || raw.eventId.length < 1 || raw.eventId.length > 128 || CONTROL.test(raw.eventId)) {
      fail('invalid-event-id', `eventId must be a string of 1..128 characters without control characters, got ${show(raw.eventId)}`);
    }

    if (raw.type === undefined) fail('missing-field', 'type is required');
    if (raw.type !== 'policy.upserted' && raw.type !== 'policy.deleted') fail('unknown-event-type', `type ${show(raw.type)} is not policy.upserted or policy.deleted`);

    if (raw.policy === undefined) fail('missing-field', 'policy is required');
    if (!isObject(raw.policy)) fail('invalid-field', 'policy must be an object');
    const policy = raw.policy;
    if (policy.name === undefined) fail('missing-field', 'policy.name is required');
    if (typeof policy.name !== 'string' || !POLICY_NAME.test(policy.name)) {
      fail('invalid-policy-name', `policy.name must be 1..128 of [A-Za-z0-9+=,.@_-], got ${show(policy.name)}`);
    }
    let path = options.managedPathPrefix;
    if (policy.path !== undefined) {
      if (typeof policy.path !== 'string' || policy.path.length > 512 || !POLICY_PATH.test(policy.path) || policy.path.includes('//')) {
        fail('invalid-policy-path', `policy.path must be "/" or "/segment/.../" of printable ASCII, at most 512 characters, got ${show(policy.path)}`);
      }
      if (!policy.path.startsWith(options.managedPathPrefix) || /\/\.\.?\//.test(policy.path)) {
        fail('path-not-managed', `policy.path ${show(policy.path)} is not under the managed prefix ${options.managedPathPrefix}`);
      }
      path = policy.path;
    }

    let revision: number | undefined;
    if (raw.revision !== undefined) {
      if (typeof raw.revision !== 'number' || !Number.isSafeInteger(raw.revision) || raw.revision < 0) {
        fail('invalid-revision', `revision must be an integer >= 0, got ${show(raw.revision)}`);
      }
      revision = raw.revision;
    }

    let occurredAt: string | undefined;
    if (raw.occurredAt !== undefined) {
      if (typeof raw.occurredAt !== 'string' || !RFC3339.test(raw.occurredAt) || Number.isNaN(Date.parse(raw.occurredAt))) {
        fail('invalid-occurred-at', `occurredAt must be an RFC 3339 date-time, got ${show(raw.occurredAt)}`);
      }
      occurredAt = raw.occurredAt;
    }

    const base = {
      specVersion: '1' as const,
      eventId: raw.eventId,
      policyName: policy.name,
      policyPath: path,
      pathGiven: policy.path !== undefined,
      ...(revision !== undefined ? { revision } : {}),
      ...(occurredAt !== undefined ? { occurredAt } : {}),
    };
    let event: PolicyEvent;
    if (raw.type === 'policy.deleted') {
      event = { ...base, type: 'policy.deleted' };
    } else {
      if (raw.document === undefined) fail('missing-field', 'document is required for policy.upserted');
      checkPolicyDocument(raw.document, options);
      let description: string | undefined;
      if (raw.description !== undefined) {
        if (typeof raw.description !== 'string' || raw.description.length > 1000) fail('invalid-description', 'description must be a string of at most 1000 characters');
        description = raw.description;
      }
      const tags: Record<string, string> = {};
      if (raw.tags !== undefined) {
        if (!isObject(raw.tags)) fail('invalid-tags', 'tags must be an object of string to string');
        const entries = Object.entries(raw.tags);
        if (entries.length > 50) fail('invalid-tags', `at most 50 tags, got ${entries.length}`);
        for (const [key, value] of entries) {
          if (key.length < 1 || key.length > 128) fail('invalid-tags', `tag key ${show(key)} must be 1..128 characters`);
          if (typeof value !== 'string' || value.length > 256) fail('invalid-tags', `tag ${show(key)} must have a string value of at most 256 characters`);
          if (key === OWNER_TAG) fail('invalid-tags', `tag key "${OWNER_TAG}" is reserved for the processor`);
          tags[key] = value;
        }
      }
      event = {
        ...base,
        type: 'policy.upserted',
        document: raw.document as PolicyDocument,
        tags,
        ...(description !== undefined ? { description } : {}),
      };
    }
    // Kinesis keeps order per partition key only, and the ledger orders a
    // policy's records by its shard lineage: a policy written under another
    // key could land on another shard and be compared with records it has no
    // order with. Refused, so a producer learns it at once.
    if (partitionKey !== event.policyName) {
      fail('partition-key-mismatch', `partition key ${show(partitionKey)} is not the policy name ${show(event.policyName)}`);
    }
    return { ok: true, event };
  } catch (error) {
    const known = error instanceof InvalidEventError;
    return {
      ok: false,
      // Deep nesting can exhaust the stack inside JSON.parse or the checks: still bad input.
      reason: known ? error.reason : 'invalid-json',
      detail: known ? error.detail : `could not be read: ${error instanceof Error ? error.message.slice(0, 120) : 'unknown error'}`,
      ...(eventId !== undefined ? { eventId } : {}),
      ...(policyName !== undefined ? { policyName } : {}),
    };
  }
}
