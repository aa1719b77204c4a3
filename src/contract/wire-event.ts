// An event as producers write it: the JSON of the event contract, version 1
// (docs/event-contract.md). The operator tool's producer, the local demo and
// the tests build events here, so there is one place that knows the shape.
// (Decoding and validating what arrives is contract/decode.ts.)
export interface WireEvent {
  specVersion: '1';
  eventId: string;
  type: 'policy.upserted' | 'policy.deleted';
  /** The target account (12 digits); absent: the worker's own. */
  account?: string;
  policy: { name: string; path?: string };
  revision?: number;
  document?: object;
  description?: string;
  tags?: Record<string, string>;
  occurredAt?: string;
}

interface Common {
  eventId: string;
  account?: string;
  name: string;
  path?: string;
  revision?: number;
  occurredAt?: string;
}

function base(type: WireEvent['type'], fields: Common): WireEvent {
  return {
    specVersion: '1',
    eventId: fields.eventId,
    type,
    ...(fields.account !== undefined ? { account: fields.account } : {}),
    policy: { name: fields.name, ...(fields.path !== undefined ? { path: fields.path } : {}) },
    ...(fields.revision !== undefined ? { revision: fields.revision } : {}),
    ...(fields.occurredAt !== undefined ? { occurredAt: fields.occurredAt } : {}),
  };
}

export function upsertedEvent(fields: Common & { document: object; description?: string; tags?: Record<string, string> }): WireEvent {
  return {
    ...base('policy.upserted', fields),
    document: fields.document,
    ...(fields.description !== undefined ? { description: fields.description } : {}),
    ...(fields.tags !== undefined ? { tags: fields.tags } : {}),
  };
}

export function deletedEvent(fields: Common): WireEvent {
  return base('policy.deleted', fields);
}
